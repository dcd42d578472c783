"""Importing contacts and orders: bad rows all reported, good files written whole, once."""

import csv
import io
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.utils import translation

from analytics.models import Event, EventType
from campaigns.imports import orders_import
from campaigns.models import Campaign, Order
from contacts.imports import (
    ImportFileError,
    ImportRejected,
    contacts_import,
    row_error_message,
)
from contacts.models import (
    ChannelCode,
    Contact,
    ContactNote,
    ContactTag,
    Follow,
    MemberTier,
    Tag,
    TagGroup,
    TagSource,
)
from scrm.jobs import job_progress
from scrm.models import Job, Role, User
from tests.conftest import wait_for
from tests.factories import ContactFactory, GroupFactory, StaffFactory

PASSWORD = "plum-blossom-2026"
SHANGHAI = ZoneInfo("Asia/Shanghai")
CONTACT_HEADER = [
    "external_userid",
    "name",
    "gender",
    "tier",
    "stage",
    "tags",
    "remark_identity",
    "remark_purchase",
    "referrer",
    "opted_out",
    "staff_userid",
]
ORDER_HEADER = [
    "order_no",
    "external_userid",
    "amount",
    "ordered_at",
    "status",
    "group_chat_id",
    "channel_state",
    "campaign_id",
    "referrer",
    "items",
]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def manager(db) -> User:
    return User.objects.create_user("boss", password=PASSWORD, role=Role.ADMIN)


@pytest.fixture
def operator(db) -> User:
    user = User.objects.create_user("xiaowang", password=PASSWORD, role=Role.OPERATOR)
    StaffFactory(userid="wang", name="小王", user=user)
    return user


@pytest.fixture
def analyst(db) -> User:
    return User.objects.create_user("laoli", password=PASSWORD, role=Role.ANALYST)


@pytest.fixture
def catalogue(db):
    """Tiers, a tag group with tags, a staff member: what good files refer to."""
    MemberTier.objects.create(name="VIP1", level=1)
    MemberTier.objects.create(name="VIP2", level=2, min_orders=1, min_order_fen=100)
    interest = TagGroup.objects.create(name="兴趣")
    Tag.objects.create(group=interest, name="茶")
    Tag.objects.create(group=TagGroup.objects.create(name="行为"), name="复购客户")
    return StaffFactory(userid="zhang", name="张姐")


def write_csv(path: Path, header: list[str], rows: list[list], *, encoding="utf-8-sig") -> Path:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def write_xlsx(path: Path, header: list[str], rows: list[list]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def contact_row(**cells) -> list:
    return [cells.get(column, "") for column in CONTACT_HEADER]


def order_row(**cells) -> list:
    return [cells.get(column, "") for column in ORDER_HEADER]


def import_contacts(path: Path, user) -> object:
    return contacts_import(path=path, name=path.name, user=user)


def problems(rejected: ImportRejected) -> list[tuple[int, str, str]]:
    return [(e.row, e.column, e.code) for e in rejected.errors]


def table_counts() -> dict[str, int]:
    """How many rows every table an import writes holds."""
    models = [Contact, ContactTag, ContactNote, Follow, Tag, TagGroup, Event, Order]
    return {model.__name__: model.objects.count() for model in models}


def log_in(client, user: User):
    assert client.login(username=user.username, password=PASSWORD)


# --- contacts: rejection -----------------------------------------------------------------------


def test_a_contacts_file_with_several_bad_rows_reports_every_one_and_writes_nothing(
    tmp_path, manager, catalogue
):
    ContactFactory(external_userid="wm-known")
    before = table_counts()
    path = write_csv(
        tmp_path / "contacts.csv",
        CONTACT_HEADER,
        [
            contact_row(external_userid="wm-good", name="李雷", gender="男", tags="兴趣:茶"),
            contact_row(external_userid="wm-2", name="韩梅梅", gender="M"),
            contact_row(external_userid="wm-3", tier="VIP9", tags="不存在的标签"),
            contact_row(external_userid="wm-good", name="重复"),
            contact_row(name="没有 ID 的人", opted_out="也许"),
            contact_row(external_userid="wm-6", referrer="wm-nobody", staff_userid="ghost"),
            contact_row(external_userid="wm-7", stage="半睡", remark_identity="宝妈"),
        ],
    )

    with pytest.raises(ImportRejected) as rejected:
        import_contacts(path, manager)

    assert problems(rejected.value) == [
        (3, "gender", "unknown_gender"),
        (4, "tier", "unknown_tier"),
        (4, "tags", "unknown_tag"),
        (5, "external_userid", "duplicate_in_file"),
        (6, "external_userid", "required"),
        (6, "opted_out", "bad_boolean"),
        (7, "referrer", "unknown_referrer"),
        (7, "staff_userid", "unknown_staff"),
        (8, "stage", "unknown_stage"),
    ]
    assert table_counts() == before
    with translation.override("en"):
        messages = [row_error_message(e.as_dict()) for e in rejected.value.errors]
    assert messages[0] == "Row 3, “gender”: unrecognised gender “M” (use 男, 女, 未知 or 0, 1, 2)"
    assert messages[3] == "Row 5, “external_userid”: “wm-good” also appears in row 2"


def test_a_tag_name_in_two_groups_must_be_written_with_its_group(tmp_path, manager, catalogue):
    Tag.objects.create(group=TagGroup.objects.get(name="行为"), name="茶")
    path = write_csv(
        tmp_path / "contacts.csv", CONTACT_HEADER, [contact_row(external_userid="wm-1", tags="茶")]
    )

    with pytest.raises(ImportRejected) as rejected:
        import_contacts(path, manager)

    assert problems(rejected.value) == [(2, "tags", "ambiguous_tag")]
    assert rejected.value.errors[0].params["groups"] == "兴趣、行为"


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("contacts.txt", b"external_userid\nwm-1\n", "unsupported_type"),
        ("contacts.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest", "old_excel"),
        ("contacts.xlsx", b"this is not a workbook", "unreadable"),
        ("contacts.csv", b"", "empty"),
        ("contacts.csv", b"\xef\xbb\xbf\n\n", "empty"),
        ("contacts.csv", "name,gender\n小明,男\n".encode(), "missing_columns"),
        ("contacts.csv", b"external_userid,name,NAME\nwm-1,a,b\n", "duplicate_column"),
        ("contacts.csv", b"external_userid,name\n", "no_rows"),
    ],
)
def test_a_file_that_cannot_be_imported_gets_one_clear_error(
    tmp_path, manager, name, content, code
):
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(ImportFileError) as problem:
        import_contacts(path, manager)

    assert problem.value.code == code
    assert Contact.objects.count() == 0
    with translation.override("en"):
        message = problem.value.message
    if code == "missing_columns":
        assert message == "the header row lacks the required column(s): external_userid"


# --- contacts: success -------------------------------------------------------------------------


def test_a_good_contacts_file_imports_contacts_with_tags_tier_remarks_referrer_and_staff(
    tmp_path, manager, catalogue
):
    existing = ContactFactory(external_userid="wm-old", name="老客户", gender=0)
    path = write_csv(
        tmp_path / "contacts.csv",
        CONTACT_HEADER,
        [
            contact_row(
                external_userid="wm-new",
                name="王芳",
                gender="女",
                tier="vip2",
                stage="first_order",
                tags="兴趣:茶，复购客户；风格:国潮",
                remark_identity="宝妈，两个孩子",
                remark_purchase="买过乌龙茶",
                # Referred by someone further down the file.
                referrer="wm-friend",
                opted_out="是",
                staff_userid="zhang",
            ),
            contact_row(external_userid="wm-friend", name="赵敏", gender="2"),
            contact_row(external_userid="wm-old", gender="1", referrer="wm-new"),
        ],
    )

    outcome = import_contacts(path, manager)

    assert (outcome.created, outcome.updated, outcome.unchanged) == (2, 1, 0)
    new = Contact.objects.get(external_userid="wm-new")
    friend = Contact.objects.get(external_userid="wm-friend")
    existing.refresh_from_db()
    assert (new.name, new.gender, new.tier.name, new.stage) == ("王芳", 2, "VIP2", "first_order")
    assert new.opted_out and new.opted_out_at is not None
    assert new.referrer == friend
    assert (existing.name, existing.gender, existing.referrer) == ("老客户", 1, new)
    assert sorted(
        ContactTag.objects.filter(contact=new).values_list("tag__group__name", "tag__name")
    ) == [("兴趣", "茶"), ("行为", "复购客户"), ("风格", "国潮")]
    assert Tag.objects.get(name="国潮").source == TagSource.IMPORT
    assert sorted(new.notes.values_list("kind", "text")) == [
        ("identity", "宝妈，两个孩子"),
        ("purchase", "买过乌龙茶"),
    ]
    assert new.notes.first().author == manager
    assert list(Follow.objects.filter(contact=new).values_list("staff__userid", flat=True)) == [
        "zhang"
    ]
    events = Event.objects.filter(contact=new)
    assert events.filter(type=EventType.TAG_ADDED).count() == 3
    tier_event = events.get(type=EventType.TIER_CHANGED)
    assert (tier_event.payload["from"], tier_event.payload["to"]) == (None, "VIP2")
    referral = Event.objects.get(type=EventType.REFERRAL, contact=friend)
    assert referral.payload["referred_contact_id"] == new.pk


def test_importing_the_same_contacts_file_twice_adds_nothing_the_second_time(
    tmp_path, manager, catalogue
):
    path = write_csv(
        tmp_path / "contacts.csv",
        CONTACT_HEADER,
        [
            contact_row(
                external_userid=f"wm-{n}",
                name=f"客户{n}",
                gender="男",
                tier="VIP1",
                tags="兴趣:茶",
                remark_identity="学生",
                staff_userid="zhang",
                referrer="wm-0" if n else "",
            )
            for n in range(5)
        ],
    )
    import_contacts(path, manager)
    after_first = table_counts()

    again = import_contacts(path, manager)

    assert table_counts() == after_first
    assert (again.created, again.updated, again.unchanged) == (0, 0, 5)
    assert (again.tags_added, again.notes_added, again.follows_added) == (0, 0, 0)


def test_an_xlsx_contacts_file_imports_like_a_csv_one(tmp_path, manager, catalogue):
    path = write_xlsx(
        tmp_path / "contacts.xlsx",
        CONTACT_HEADER,
        [
            # A number typed into a cell comes back as a number: 1 is still 男.
            contact_row(external_userid="wm-x1", name="陈晨", gender=1, tags="兴趣:茶"),
            [None] * len(CONTACT_HEADER),  # a blank row is skipped, not an error
            contact_row(external_userid="wm-x2", name="周周", gender="女", opted_out="否"),
        ],
    )

    outcome = import_contacts(path, manager)

    assert outcome.created == 2
    assert dict(Contact.objects.values_list("name", "gender")) == {"陈晨": 1, "周周": 2}
    assert ContactTag.objects.filter(contact__name="陈晨", tag__name="茶").exists()


def test_an_xlsx_file_reports_bad_rows_with_the_row_numbers_excel_shows(
    tmp_path, manager, catalogue
):
    path = write_xlsx(
        tmp_path / "contacts.xlsx",
        CONTACT_HEADER,
        [
            contact_row(external_userid="wm-x1"),
            [None] * len(CONTACT_HEADER),
            contact_row(external_userid="wm-x3", gender="M"),
        ],
    )

    with pytest.raises(ImportRejected) as rejected:
        import_contacts(path, manager)

    assert problems(rejected.value) == [(4, "gender", "unknown_gender")]


def test_a_csv_saved_by_chinese_excel_in_gbk_is_read(tmp_path, manager, catalogue):
    path = write_csv(
        tmp_path / "contacts.csv",
        CONTACT_HEADER,
        [contact_row(external_userid="wm-gbk", name="欧阳娜娜", gender="女")],
        encoding="gbk",
    )

    import_contacts(path, manager)

    assert Contact.objects.get(external_userid="wm-gbk").name == "欧阳娜娜"


def test_an_operator_imports_only_their_own_customers_and_new_ones_become_theirs(
    tmp_path, operator, catalogue
):
    theirs = ContactFactory(external_userid="wm-theirs")
    Follow.objects.create(contact=theirs, staff=operator.staff, added_at=theirs.first_added_at)
    someone_elses = ContactFactory(external_userid="wm-other")
    Follow.objects.create(contact=someone_elses, staff=catalogue, added_at=theirs.first_added_at)
    rejected_file = write_csv(
        tmp_path / "bad.csv",
        CONTACT_HEADER,
        [
            contact_row(external_userid="wm-other", name="改名"),
            contact_row(external_userid="wm-fresh", staff_userid="zhang"),
        ],
    )

    with pytest.raises(ImportRejected) as rejected:
        import_contacts(rejected_file, operator)

    assert problems(rejected.value) == [
        (2, "external_userid", "not_your_contact"),
        (3, "staff_userid", "not_your_staff"),
    ]
    good_file = write_csv(
        tmp_path / "good.csv",
        CONTACT_HEADER,
        [
            contact_row(external_userid="wm-theirs", name="老朋友"),
            contact_row(external_userid="wm-fresh", name="新朋友"),
        ],
    )
    import_contacts(good_file, operator)
    assert Contact.objects.get(external_userid="wm-theirs").name == "老朋友"
    assert Follow.objects.get(contact__external_userid="wm-fresh").staff == operator.staff
    assert Contact.objects.get(external_userid="wm-other").name != "改名"


# --- orders ------------------------------------------------------------------------------------


@pytest.fixture
def buyers(db):
    channel = ChannelCode.objects.create(name="门店海报", state="poster-01")
    buyer = ContactFactory(external_userid="wm-buyer", source_channel=channel)
    friend = ContactFactory(external_userid="wm-friend")
    group = GroupFactory(chat_id="wr-benefit")
    campaign = Campaign.objects.create(name="618 拼团", type=Campaign.Type.GROUP_BUY)
    return buyer, friend, group, campaign, channel


def test_a_good_orders_file_stores_exact_fen_and_records_order_paid_events(
    tmp_path, manager, buyers
):
    buyer, friend, group, campaign, channel = buyers
    path = write_csv(
        tmp_path / "orders.csv",
        ORDER_HEADER,
        [
            order_row(
                order_no="A-1",
                external_userid="wm-buyer",
                amount="0.1",
                ordered_at="2026-05-01 09:30",
                items="乌龙茶 ×2; 茶杯",
            ),
            order_row(
                order_no="A-2",
                external_userid="wm-buyer",
                amount="¥1,234.56",
                ordered_at="2026/05/02 20:15:30",
                status="paid",
                group_chat_id="wr-benefit",
                campaign_id=str(campaign.pk),
                referrer="wm-friend",
            ),
            order_row(
                order_no="A-3",
                external_userid="wm-friend",
                amount="19.99",
                ordered_at="2026-05-03 00:00:00",
                status="refunded",
                channel_state="poster-01",
            ),
        ],
    )

    outcome = orders_import(path=path, name=path.name, user=manager)

    assert (outcome.created, outcome.unchanged) == (3, 0)
    orders = {o.order_no: o for o in Order.objects.all()}
    assert {no: o.amount_fen for no, o in orders.items()} == {
        "A-1": 10,
        "A-2": 123_456,
        "A-3": 1_999,
    }
    assert orders["A-1"].ordered_at == datetime(2026, 5, 1, 9, 30, tzinfo=SHANGHAI)
    assert orders["A-1"].items == [
        {"name": "乌龙茶", "quantity": 2},
        {"name": "茶杯", "quantity": 1},
    ]
    assert orders["A-1"].channel == channel  # the buyer's own channel when none is given
    assert (orders["A-2"].group, orders["A-2"].campaign, orders["A-2"].referrer) == (
        group,
        campaign,
        friend,
    )
    assert orders["A-3"].status == Order.Status.REFUNDED
    paid = Event.objects.filter(type=EventType.ORDER_PAID).order_by("occurred_at")
    assert [(e.contact_id, e.amount, e.payload["order_no"]) for e in paid] == [
        (buyer.pk, 10, "A-1"),
        (buyer.pk, 123_456, "A-2"),
        (friend.pk, 1_999, "A-3"),
    ]
    second = paid[1]
    assert (second.group_id, second.campaign_id, second.payload["referrer_contact_id"]) == (
        group.pk,
        campaign.pk,
        friend.pk,
    )
    assert second.occurred_at == datetime(2026, 5, 2, 20, 15, 30, tzinfo=SHANGHAI)
    refund = Event.objects.get(type=EventType.ORDER_REFUNDED)
    assert (refund.payload["order_no"], refund.amount) == ("A-3", 1_999)


def test_an_orders_file_with_bad_rows_reports_every_one_and_writes_nothing(
    tmp_path, manager, buyers
):
    Order.objects.create(
        order_no="OLD-1",
        contact=buyers[0],
        amount_fen=500,
        ordered_at=datetime(2026, 4, 1, 10, 0, tzinfo=SHANGHAI),
    )
    before = table_counts()
    path = write_csv(
        tmp_path / "orders.csv",
        ORDER_HEADER,
        [
            order_row(order_no="B-1", external_userid="wm-buyer", amount="-5", ordered_at="x"),
            order_row(order_no="B-2", external_userid="wm-ghost", amount="1.005"),
            order_row(
                order_no="B-1", external_userid="wm-buyer", amount="abc", ordered_at="2026-05-01"
            ),
            order_row(
                order_no="OLD-1",
                external_userid="wm-buyer",
                amount="6",
                ordered_at="2026-04-01 10:00",
            ),
            order_row(
                order_no="B-5",
                external_userid="wm-buyer",
                amount="5",
                ordered_at="2026-05-01 10:00",
                status="shipped",
                group_chat_id="wr-none",
                channel_state="nope",
                campaign_id="999999",
                referrer="wm-ghost",
            ),
        ],
    )

    with pytest.raises(ImportRejected) as rejected:
        orders_import(path=path, name=path.name, user=manager)

    assert problems(rejected.value) == [
        (2, "amount", "negative_amount"),
        (2, "ordered_at", "bad_datetime"),
        (3, "external_userid", "unknown_contact"),
        (3, "amount", "too_many_decimals"),
        (3, "ordered_at", "required"),
        (4, "order_no", "duplicate_in_file"),
        (4, "amount", "bad_amount"),
        (4, "ordered_at", "bad_datetime"),
        (5, "order_no", "order_differs"),
        (6, "status", "unknown_status"),
        (6, "group_chat_id", "unknown_group"),
        (6, "channel_state", "unknown_channel"),
        (6, "campaign_id", "unknown_campaign"),
        (6, "referrer", "unknown_referrer"),
    ]
    assert table_counts() == before


def test_importing_the_same_orders_twice_adds_nothing_and_a_later_refund_is_recorded_once(
    tmp_path, manager, buyers
):
    rows = [
        order_row(
            order_no="C-1", external_userid="wm-buyer", amount="88", ordered_at="2026-05-01 10:00"
        ),
        order_row(
            order_no="C-2", external_userid="wm-buyer", amount="12.5", ordered_at="2026-05-02 10:00"
        ),
    ]
    path = write_csv(tmp_path / "orders.csv", ORDER_HEADER, rows)
    orders_import(path=path, name=path.name, user=manager)
    after_first = table_counts()

    again = orders_import(path=path, name=path.name, user=manager)

    assert table_counts() == after_first
    assert (again.created, again.unchanged) == (0, 2)
    rows[1][ORDER_HEADER.index("status")] = "refunded"
    refunded = write_csv(tmp_path / "orders-refunded.csv", ORDER_HEADER, rows)
    outcome = orders_import(path=refunded, name=refunded.name, user=manager)
    orders_import(path=refunded, name=refunded.name, user=manager)
    assert (outcome.created, outcome.refunded, outcome.unchanged) == (0, 1, 1)
    assert Order.objects.get(order_no="C-2").status == Order.Status.REFUNDED
    assert Event.objects.filter(type=EventType.ORDER_REFUNDED).count() == 1


def test_an_xlsx_orders_file_with_real_dates_and_numbers_imports(tmp_path, manager, buyers):
    path = write_xlsx(
        tmp_path / "orders.xlsx",
        ORDER_HEADER,
        [
            order_row(
                order_no="X-1",
                external_userid="wm-buyer",
                amount=19.9,
                ordered_at=datetime(2026, 5, 1, 14, 30),
            ),
            order_row(
                order_no="X-2",
                external_userid="wm-buyer",
                amount=128,
                ordered_at="2026-05-01 15:00",
            ),
        ],
    )

    orders_import(path=path, name=path.name, user=manager)

    assert dict(Order.objects.values_list("order_no", "amount_fen")) == {
        "X-1": 1_990,
        "X-2": 12_800,
    }
    assert Order.objects.get(order_no="X-1").ordered_at == datetime(
        2026, 5, 1, 14, 30, tzinfo=SHANGHAI
    )


def test_an_operator_may_import_orders_only_for_their_own_customers(tmp_path, operator, buyers):
    path = write_csv(
        tmp_path / "orders.csv",
        ORDER_HEADER,
        [
            order_row(
                order_no="D-1",
                external_userid="wm-buyer",
                amount="1",
                ordered_at="2026-05-01 10:00",
            )
        ],
    )

    with pytest.raises(ImportRejected) as rejected:
        orders_import(path=path, name=path.name, user=operator)

    assert problems(rejected.value) == [(2, "external_userid", "unknown_contact")]


# --- pages, API and the job ----------------------------------------------------------------------


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def csv_bytes(header: list[str], rows: list[list]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")


def test_an_analyst_cannot_import_in_the_page_or_the_api(client, analyst):
    log_in(client, analyst)
    content = csv_bytes(CONTACT_HEADER, [contact_row(external_userid="wm-1")])

    page = client.post("/io/imports/contacts/", {"contacts-file": upload("c.csv", content)})
    api = client.post("/io/api/imports/orders", {"file": upload("o.csv", content)})

    assert page.status_code == 403
    assert api.status_code == 403
    assert Job.objects.count() == 0
    home = client.get("/io/").content.decode()
    assert 'action="/io/imports/contacts/"' not in home
    assert 'action="/io/exports/contacts/"' in home


def test_uploading_a_file_of_the_wrong_type_shows_the_problem_on_the_form(client, manager):
    log_in(client, manager)

    response = client.post("/io/imports/contacts/", {"contacts-file": upload("c.pdf", b"%PDF")})

    assert response.status_code == 400
    assert "c.pdf" in response.content.decode()
    assert Job.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_an_import_runs_as_a_job_in_the_worker_and_its_page_reaches_100_percent(
    client, celery_worker_thread, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    manager = User.objects.create_user("boss", password=PASSWORD, role=Role.ADMIN)
    TagGroup.objects.create(name="兴趣")
    log_in(client, manager)
    rows = [
        contact_row(external_userid=f"wm-{n:04d}", name=f"客户{n}", tags="兴趣:茶")
        for n in range(1_200)
    ]

    response = client.post(
        "/io/imports/contacts/",
        {"contacts-file": upload("客户.csv", csv_bytes(CONTACT_HEADER, rows))},
    )

    job = Job.objects.get()
    assert response.status_code == 302
    assert response.url == f"/io/jobs/{job.pk}/"

    def finished():
        """the import job to finish"""
        return Job.objects.filter(pk=job.pk, status__in=["done", "failed"]).first()

    job = wait_for(finished, timeout=60)
    assert (job.status, job.error) == ("done", "")
    assert job.percent == 100
    assert Contact.objects.count() == 1_200
    assert ContactTag.objects.count() == 1_200
    status = client.get(f"/io/jobs/{job.pk}.json").json()
    assert (status["status"], status["percent"], status["finished"]) == ("done", 100, True)
    page = client.get(f"/io/jobs/{job.pk}/").content.decode()
    assert 'value="100"' in page
    assert "http-equiv" not in page  # finished: no more reloading
    assert ">1200<" in page
    listing = client.get("/io/jobs/").content.decode()
    assert f'href="/io/jobs/{job.pk}/"' in listing
    api = client.get(f"/io/api/jobs/{job.pk}").json()
    assert (api["status"], api["counts"]["created"], api["errors"]) == ("done", 1_200, [])


@pytest.mark.django_db(transaction=True)
def test_a_rejected_import_job_lists_every_problem_on_its_page_and_in_the_api(
    client, celery_worker_thread, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    manager = User.objects.create_user("boss", password=PASSWORD, role=Role.ADMIN)
    log_in(client, manager)
    content = csv_bytes(
        CONTACT_HEADER,
        [
            contact_row(external_userid="wm-1", gender="M"),
            contact_row(external_userid="wm-2"),
            contact_row(external_userid="wm-3", tier="金卡"),
        ],
    )

    response = client.post("/io/api/imports/contacts", {"file": upload("c.csv", content)})

    assert response.status_code == 202
    job_id = response.json()["id"]

    def finished():
        """the import job to finish"""
        return Job.objects.filter(pk=job_id, status__in=["done", "failed"]).first()

    job = wait_for(finished, timeout=30)
    assert job.status == "failed"
    assert Contact.objects.count() == 0
    api = client.get(f"/io/api/jobs/{job_id}").json()
    assert [(e["row"], e["column"], e["code"]) for e in api["errors"]] == [
        (2, "gender", "unknown_gender"),
        (4, "tier", "unknown_tier"),
    ]
    assert "“M”" in api["errors"][0]["message"]
    page = client.get(f"/io/jobs/{job_id}/").content.decode()
    assert '<td class="num">2</td><td><code>gender</code></td>' in page
    assert '<td class="num">4</td><td><code>tier</code></td>' in page
    assert "“金卡”" in page
    report = client.get(f"/io/jobs/{job_id}/errors.csv")
    lines = b"".join(report.streaming_content).decode("utf-8-sig").splitlines()
    assert len(lines) == 3 and lines[1].startswith("2,gender,")


def read_in_another_session(job_id: int) -> tuple[int, int, str]:
    """The job as the job page's request sees it: its own connection, committed rows only."""
    seen = {}

    def read():
        try:
            job = Job.objects.get(pk=job_id)
            seen["job"] = (job.done, job.total, job.result.get("phase"))
        finally:
            connection.close()

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    return seen["job"]


@pytest.mark.django_db(transaction=True)
def test_progress_reported_inside_the_import_transaction_is_seen_before_it_commits():
    job = Job.objects.create(kind="contacts_import", status=Job.Status.RUNNING)

    with transaction.atomic(), job_progress(job.pk) as progress:
        ContactFactory(external_userid="wm-still-uncommitted")
        progress(150, 200, phase="writing")
        during = read_in_another_session(job.pk)
        contact_seen = Contact.objects.filter(external_userid="wm-still-uncommitted").exists()

    assert during == (150, 200, "writing")
    assert contact_seen


def test_a_running_job_page_reloads_itself_without_javascript_and_polls_with_it(client, manager):
    job = Job.objects.create(
        kind="contacts_import", created_by=manager, status=Job.Status.RUNNING, done=30, total=120
    )
    log_in(client, manager)

    page = client.get(f"/io/jobs/{job.pk}/").content.decode()
    status = client.get(f"/io/jobs/{job.pk}.json").json()

    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in page
    assert f'data-status-url="/io/jobs/{job.pk}.json"' in page
    assert '<progress class="io-progress" id="job-bar" max="100" value="25">' in page
    assert (status["percent"], status["finished"], status["status"]) == (25, False, "running")
