"""Exporting contacts and orders: the files' contents, whose rows, the job and its download."""

import csv
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics.events import record
from analytics.models import EventType
from campaigns.imports import orders_export
from campaigns.models import Campaign, Order
from contacts.exports import CONTACT_EXPORT_COLUMNS, contacts_export
from contacts.imports import contacts_import
from contacts.models import (
    ChannelCode,
    Contact,
    ContactNote,
    ContactTag,
    Follow,
    MemberTier,
    Tag,
    TagGroup,
)
from scrm.models import Job, Role, User
from tests.conftest import wait_for
from tests.factories import ContactFactory, GroupFactory, StaffFactory

PASSWORD = "plum-blossom-2026"
SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 5, 1, 10, 0, tzinfo=SHANGHAI)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def make_user(username: str, role: str) -> User:
    return User.objects.create_user(username, password=PASSWORD, role=role)


@pytest.fixture
def manager(db) -> User:
    return make_user("boss", Role.ADMIN)


@pytest.fixture
def operator(db) -> User:
    user = make_user("xiaowang", Role.OPERATOR)
    StaffFactory(userid="wang", name="小王", user=user)
    return user


def paid(contact: Contact, order_no: str, fen: int) -> None:
    record(
        type=EventType.ORDER_PAID,
        occurred_at=T0,
        key=f"order:{order_no}:paid",
        contact=contact,
        amount=fen,
        payload={"order_no": order_no},
    )


@pytest.fixture
def world(operator):
    """Two customers of 小王 (one well known), one of another staff member."""
    vip = MemberTier.objects.create(name="VIP2", level=2)
    interest = TagGroup.objects.create(name="兴趣")
    tea = Tag.objects.create(group=interest, name="茶")
    style = Tag.objects.create(group=TagGroup.objects.create(name="风格"), name="国潮")
    channel = ChannelCode.objects.create(name="门店海报", state="poster-01")
    other_staff = StaffFactory(userid="zhang", name="张姐")
    friend = ContactFactory(external_userid="wm-friend", name="赵敏")
    fang = ContactFactory(
        external_userid="wm-fang",
        name="王芳",
        gender=Contact.Gender.FEMALE,
        tier=vip,
        stage=Contact.Stage.REPEAT,
        source_channel=channel,
        referrer=friend,
        points_balance=320,
        opted_out=True,
    )
    stranger = ContactFactory(external_userid="wm-stranger", name="路人甲")
    for contact in (fang, friend):
        Follow.objects.create(contact=contact, staff=operator.staff, added_at=T0)
    Follow.objects.create(contact=stranger, staff=other_staff, added_at=T0)
    ContactTag.objects.create(contact=fang, tag=tea)
    ContactTag.objects.create(contact=fang, tag=style)
    ContactNote.objects.create(contact=fang, kind="identity", text="宝妈")
    ContactNote.objects.create(contact=fang, kind="purchase", text="=买过乌龙茶")
    paid(fang, "E-1", 12_800)
    paid(fang, "E-2", 1_990)
    return fang


def read_csv(path: Path) -> list[dict]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "no BOM: Excel would garble the Chinese"
    return list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))


def read_xlsx(path: Path) -> list[dict]:
    book = openpyxl.load_workbook(path, read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def test_the_contact_csv_has_a_bom_and_every_column_with_chinese_intact(tmp_path, manager, world):
    path = tmp_path / "contacts.csv"

    rows = contacts_export(user=manager, path=path, fmt="csv")

    assert rows == 3
    table = {row["external_userid"]: row for row in read_csv(path)}
    assert list(table["wm-fang"]) == list(CONTACT_EXPORT_COLUMNS)
    fang = table["wm-fang"]
    assert (fang["name"], fang["gender"], fang["tier"]) == ("王芳", "女", "VIP2")
    assert fang["tags"] == "兴趣:茶, 风格:国潮"
    assert fang["remark_identity"] == "宝妈"
    # Text a spreadsheet would run as a formula is kept as text.
    assert fang["remark_purchase"] == "'=买过乌龙茶"
    assert (fang["referrer"], fang["opted_out"]) == ("wm-friend", "是")
    assert (fang["staff_userid"], fang["staff_name"], fang["channel"]) == (
        "wang",
        "小王",
        "门店海报",
    )
    assert (fang["points"], fang["orders"], fang["spend_yuan"]) == ("320", "2", "147.90")
    assert table["wm-stranger"]["staff_name"] == "张姐"
    assert table["wm-friend"]["orders"] == "0"


def test_the_contact_xlsx_holds_the_same_rows(tmp_path, manager, world):
    path = tmp_path / "contacts.xlsx"

    contacts_export(user=manager, path=path, fmt="xlsx")

    table = {row["external_userid"]: row for row in read_xlsx(path)}
    assert set(table) == {"wm-fang", "wm-friend", "wm-stranger"}
    fang = table["wm-fang"]
    assert (fang["name"], fang["gender"], fang["tags"]) == ("王芳", "女", "兴趣:茶, 风格:国潮")
    assert fang["remark_purchase"] == "=买过乌龙茶"  # a text cell, not a formula
    assert (fang["points"], fang["orders"], float(fang["spend_yuan"])) == (320, 2, 147.9)


def test_an_operator_exports_only_their_own_contacts(tmp_path, operator, world):
    path = tmp_path / "mine.csv"

    contacts_export(user=operator, path=path, fmt="csv")

    assert sorted(row["external_userid"] for row in read_csv(path)) == ["wm-fang", "wm-friend"]


def test_an_export_of_chosen_contacts_holds_those_the_user_may_see(tmp_path, operator, world):
    stranger = Contact.objects.get(external_userid="wm-stranger")
    path = tmp_path / "chosen.csv"

    contacts_export(user=operator, path=path, fmt="csv", contacts=[world.pk, stranger.pk])

    assert [row["external_userid"] for row in read_csv(path)] == ["wm-fang"]
    by_query = tmp_path / "by-query.csv"
    contacts_export(
        user=operator,
        path=by_query,
        fmt="csv",
        contacts=lambda: Contact.objects.filter(name__startswith="赵"),
    )
    assert [row["external_userid"] for row in read_csv(by_query)] == ["wm-friend"]


def test_the_contact_export_costs_the_same_queries_for_few_or_many_contacts(tmp_path, manager):
    tag = Tag.objects.create(group=TagGroup.objects.create(name="兴趣"), name="茶")
    staff = StaffFactory()

    def export_queries(count: int) -> int:
        for _ in range(count):
            contact = ContactFactory()
            ContactTag.objects.create(contact=contact, tag=tag)
            ContactNote.objects.create(contact=contact, kind="identity", text="学生")
            Follow.objects.create(contact=contact, staff=staff, added_at=T0)
        with CaptureQueriesContext(connection) as queries:
            contacts_export(user=manager, path=tmp_path / f"{count}.csv", fmt="csv")
        return len(queries)

    assert export_queries(3) == export_queries(40)


def test_an_exported_contact_file_imports_back_without_changing_anything(tmp_path, manager, world):
    path = tmp_path / "round-trip.csv"
    contacts_export(user=manager, path=path, fmt="csv")
    notes, links = ContactNote.objects.count(), ContactTag.objects.count()

    outcome = contacts_import(path=path, name=path.name, user=manager)

    assert (outcome.created, outcome.updated, outcome.unchanged) == (0, 0, 3)
    assert (ContactNote.objects.count(), ContactTag.objects.count()) == (notes, links)
    assert "spend_yuan" not in outcome.ignored_columns


def make_orders(world) -> None:
    group = GroupFactory(chat_id="wr-benefit", name="福利群")
    campaign = Campaign.objects.create(name="618 拼团", type=Campaign.Type.GROUP_BUY)
    stranger = Contact.objects.get(external_userid="wm-stranger")
    Order.objects.create(
        order_no="O-1",
        contact=world,
        amount_fen=12_800,
        ordered_at=T0,
        items=[{"name": "乌龙茶", "quantity": 2}],
        group=group,
        campaign=campaign,
        referrer=world.referrer,
    )
    Order.objects.create(
        order_no="O-2",
        contact=stranger,
        amount_fen=5,
        ordered_at=T0.replace(hour=11),
        status=Order.Status.REFUNDED,
    )


def test_the_order_export_in_csv_and_xlsx_with_yuan_and_chinese(tmp_path, manager, world):
    make_orders(world)

    orders_export(user=manager, path=tmp_path / "orders.csv", fmt="csv")
    orders_export(user=manager, path=tmp_path / "orders.xlsx", fmt="xlsx")

    rows = read_csv(tmp_path / "orders.csv")
    assert [(r["order_no"], r["amount"], r["status"]) for r in rows] == [
        ("O-1", "128.00", "paid"),
        ("O-2", "0.05", "refunded"),
    ]
    first = rows[0]
    assert (first["customer_name"], first["ordered_at"], first["items"]) == (
        "王芳",
        "2026-05-01 10:00:00",
        "乌龙茶 ×2",
    )
    assert (first["group_chat_id"], first["group_name"], first["referrer"]) == (
        "wr-benefit",
        "福利群",
        "wm-friend",
    )
    sheet = read_xlsx(tmp_path / "orders.xlsx")
    assert [(r["order_no"], r["customer_name"], r["campaign_name"]) for r in sheet] == [
        ("O-1", "王芳", "618 拼团"),
        ("O-2", "路人甲", None),
    ]


def test_an_operator_exports_only_the_orders_of_their_own_customers(tmp_path, operator, world):
    make_orders(world)

    orders_export(user=operator, path=tmp_path / "orders.csv", fmt="csv")

    assert [r["order_no"] for r in read_csv(tmp_path / "orders.csv")] == ["O-1"]


# --- the job, the download and who may have it ---------------------------------------------------


def log_in(client, user: User):
    assert client.login(username=user.username, password=PASSWORD)


def finished(job_id: int):
    def condition():
        """the export job to finish"""
        return Job.objects.filter(pk=job_id, status__in=["done", "failed"]).first()

    return wait_for(condition, timeout=30)


@pytest.mark.django_db(transaction=True)
def test_an_analyst_exports_through_the_worker_and_downloads_the_file(
    client, celery_worker_thread, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    analyst = make_user("laoli", Role.ANALYST)
    ContactFactory(external_userid="wm-a", name="甲乙丙")
    log_in(client, analyst)

    response = client.post("/io/exports/contacts/", {"contacts-format": "xlsx"})

    job = Job.objects.get()
    assert response.url == f"/io/jobs/{job.pk}/"
    job = finished(job.pk)
    assert (job.status, job.percent, job.result["rows"]) == ("done", 100, 1)
    page = client.get(f"/io/jobs/{job.pk}/").content.decode()
    assert f'href="/io/jobs/{job.pk}/download"' in page
    download = client.get(f"/io/jobs/{job.pk}/download")
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith('attachment; filename="contacts-')
    path = tmp_path / "downloaded.xlsx"
    path.write_bytes(b"".join(download.streaming_content))
    assert [row["name"] for row in read_xlsx(path)] == ["甲乙丙"]


@pytest.mark.django_db(transaction=True)
def test_the_export_api_answers_202_and_the_job_api_gives_the_download(
    client, celery_worker_thread, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    manager = make_user("boss", Role.ADMIN)
    contact = ContactFactory(name="单独导出")
    ContactFactory(name="不导出")
    log_in(client, manager)

    response = client.post(
        "/io/api/exports/contacts",
        {"format": "csv", "contact_ids": [contact.pk]},
        content_type="application/json",
    )

    assert response.status_code == 202
    job = finished(response.json()["id"])
    status = client.get(f"/io/api/jobs/{job.pk}").json()
    assert status["status"] == "done"
    assert status["download_url"] == f"http://testserver/io/jobs/{job.pk}/download"
    content = b"".join(client.get(status["download_url"]).streaming_content)
    assert "单独导出" in content.decode("utf-8-sig")
    assert "不导出" not in content.decode("utf-8-sig")
    orders = client.post(
        "/io/api/exports/orders", {"format": "xlsx"}, content_type="application/json"
    )
    assert orders.status_code == 202
    assert finished(orders.json()["id"]).status == "done"
    bad = client.post("/io/api/exports/orders", {"format": "pdf"}, content_type="application/json")
    assert bad.status_code == 400 and "format" in bad.json()


def test_another_users_export_cannot_be_seen_or_downloaded(client, manager, operator, tmp_path):
    owner = make_user("xiaoli", Role.OPERATOR)
    file = Path(tmp_path / "media" / "exports" / "1" / "contacts.csv")
    file.parent.mkdir(parents=True)
    file.write_text("secret")
    job = Job.objects.create(
        kind="contacts_export",
        created_by=owner,
        status=Job.Status.DONE,
        result={"rows": 1, "file": "exports/1/contacts.csv"},
    )

    log_in(client, operator)
    refused = [
        client.get(f"/io/jobs/{job.pk}/download").status_code,
        client.get(f"/io/jobs/{job.pk}/").status_code,
        client.get(f"/io/jobs/{job.pk}.json").status_code,
        client.get(f"/io/api/jobs/{job.pk}").status_code,
    ]
    client.logout()
    log_in(client, manager)
    by_manager = client.get(f"/io/jobs/{job.pk}/download")
    client.logout()

    assert refused == [404, 404, 404, 404]
    assert by_manager.status_code == 200
    assert client.get(f"/io/jobs/{job.pk}/download").status_code == 302  # to the login
