"""The 数据 (analytics) pages as managers, analysts and operators see them: the numbers shown,
what each role may see, empty periods, bad ranges, and downloads that say exactly what the
page says.

The cast (`build_cast`, shared with test_analytics_api.py), Shanghai time, for the period
2026-11-02 … 2026-11-03:

    小王的群 (founding; the operator 小王's)     别人的群 (activation; 老张's)     空群 (retention;
    p1  member since 10-20, stays                p4  member since 10-28, stays    老张's): nobody
    p2  member since 10-25, left 11-02 09:00         speaks 11-02 15:00
    p3  joined 11-02 10:00 through 小王的码,          orders ¥20.00 11-03 16:00
        stays                                    p5  joined 11-03 10:00 through 老张的码, stays

    小王的码 (小王's, leads into 小王的群): 100 exposures 11-02
    老张的码 (老张's, leads into 别人的群): 50 exposures 11-03
    小王 follows p1, p2, p3; 老张 follows p4, p5; all since 10-01, nobody blocks anyone.

Everyone's numbers (managers, analysts): members at the start p1, p2, p4 = 3; during P
p1 … p5 = 5; at the end p1, p3, p4, p5 = 4; p2 left. 小王's: 2 at the start (p1, p2), 3
during P, 2 at the end (p1, p3); nobody spoke or ordered.
"""

import csv
import io
import json
import re
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from analytics.events import record
from analytics.group_snapshot import snapshot_take
from analytics.metrics import Period
from analytics.models import EventType
from analytics.pages import GROUP_SORTS
from analytics.rollups import rollup_recent
from contacts.models import ChannelCode, Follow
from groups.models import Group, GroupMembership
from groups.services import membership_join
from scrm.models import Role, User
from tests.factories import ContactFactory, GroupFactory, StaffFactory

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
RANGE = "first=2026-11-02&last=2026-11-03"
RANGE_PERIOD = Period(date(2026, 11, 2), date(2026, 11, 3))
SH_NOV_2 = datetime(2026, 11, 2, 12, tzinfo=ZoneInfo("Asia/Shanghai"))
# Long before anything happened.
EMPTY_RANGE = "first=2026-06-01&last=2026-06-02"
PAGES = [
    "/analytics/",
    "/analytics/groups/",
    "/analytics/channels/",
    "/analytics/cohorts/",
    "/analytics/customers/",
    "/analytics/funnel/",
]
# Each page's tables (by data-table key), for the download test.
PAGE_TABLES = [
    ("/analytics/", "metrics"),
    ("/analytics/", "daily"),
    ("/analytics/groups/", "groups"),
    ("/analytics/channels/", "channels"),
    ("/analytics/cohorts/", "cohorts"),
    ("/analytics/cohorts/?unit=day", "cohorts"),
    ("/analytics/customers/", "types"),
    ("/analytics/funnel/", "funnel"),
]
APIS = [
    "/api/analytics/overview/",
    "/api/analytics/groups/",
    "/api/analytics/channels/",
    "/api/analytics/funnel/",
    "/api/analytics/cohorts/",
    "/api/analytics/customer-types/",
    "/api/analytics/series/",
]


def at(month, day, hour=12) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=SH)


def build_cast() -> SimpleNamespace:
    """The users, groups, codes, people and events of the module docstring."""
    manager = User.objects.create_user("boss", role=Role.ADMIN)
    analyst = User.objects.create_user("laoli", role=Role.ANALYST)
    operator = User.objects.create_user("xiaowang", role=Role.OPERATOR)
    xiaowang = StaffFactory(name="小王", user=operator)
    laozhang = StaffFactory(name="老张")

    mine = GroupFactory(name="小王的群", owner=xiaowang, stage=Group.Stage.FOUNDING)
    theirs = GroupFactory(name="别人的群", owner=laozhang, stage=Group.Stage.ACTIVATION)
    empty = GroupFactory(name="空群", owner=laozhang, stage=Group.Stage.RETENTION)
    my_code = ChannelCode.objects.create(name="小王的码", kind=ChannelCode.Kind.GROUP, state="m")
    their_code = ChannelCode.objects.create(name="老张的码", kind=ChannelCode.Kind.GROUP, state="t")
    my_code.staff.add(xiaowang)
    their_code.staff.add(laozhang)
    mine.join_codes.add(my_code)
    theirs.join_codes.add(their_code)

    p = {n: ContactFactory(name=f"p{n}") for n in range(1, 6)}
    for group, person, joined, left in (
        (mine, 1, at(10, 20), None),
        (mine, 2, at(10, 25), at(11, 2, 9)),
        (mine, 3, at(11, 2, 10), None),
        (theirs, 4, at(10, 28), None),
        (theirs, 5, at(11, 3, 10), None),
    ):
        GroupMembership.objects.create(
            group=group, contact=p[person], joined_at=joined, left_at=left
        )
    for staff, people in ((xiaowang, (1, 2, 3)), (laozhang, (4, 5))):
        for person in people:
            Follow.objects.create(contact=p[person], staff=staff, added_at=at(10, 1))

    n = iter(range(100))

    def event(type, when, **fields):
        record(type=type, occurred_at=when, key=f"pages-{next(n)}", **fields)

    event(EventType.CHANNEL_EXPOSURE, at(11, 2, 8), channel=my_code, amount=100)
    event(EventType.CHANNEL_EXPOSURE, at(11, 3, 8), channel=their_code, amount=50)
    event(EventType.GROUP_JOINED, at(11, 2, 10), contact=p[3], group=mine, channel=my_code)
    event(EventType.GROUP_JOINED, at(11, 3, 10), contact=p[5], group=theirs, channel=their_code)
    event(EventType.MESSAGE, at(11, 2, 15), contact=p[4], group=theirs)
    event(
        EventType.ORDER_PAID, at(11, 3, 16), contact=p[4], amount=2_000, payload={"order_no": "D1"}
    )
    rollup_recent()  # as the 5-minute refresh would have: every group's overview reads it
    return SimpleNamespace(
        manager=manager,
        analyst=analyst,
        operator=operator,
        xiaowang=xiaowang,
        mine=mine,
        theirs=theirs,
        empty=empty,
        my_code=my_code,
        their_code=their_code,
        people=p,
    )


@pytest.fixture
def cast(db) -> SimpleNamespace:
    return build_cast()


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"  # the assertions read English
    return client


class TableReader(HTMLParser):
    """The text of each cell of <table data-table=key>, row by row (body only)."""

    def __init__(self, key: str):
        super().__init__()
        self.key, self.inside, self.in_body = key, False, False
        self.rows: list[list[str]] = []
        self.classes: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("data-table") == self.key:
            self.inside = True
        elif self.inside and tag == "tbody":
            self.in_body = True
        elif self.in_body and tag == "tr":
            self.rows.append([])
            self.classes.append([])
        elif self.in_body and tag in ("td", "th"):
            self.cell = []
            self.classes[-1].append(attrs.get("class") or "")

    def handle_endtag(self, tag):
        if self.in_body and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "table" and self.inside:
            self.inside = self.in_body = False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def shown_table(html: str, key: str) -> TableReader:
    reader = TableReader(key)
    reader.feed(html)
    # Hidden helper text for screen readers is not part of the number.
    reader.rows = [[c.replace(" (stage focus)", "") for c in row] for row in reader.rows]
    return reader


def chart_spec(html: str, chart_id: str) -> dict:
    found = re.search(rf'<script id="{chart_id}" type="application/json">(.*?)</script>', html)
    assert found, f"no chart {chart_id}"
    return json.loads(found.group(1))


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def with_range(url: str, range_: str = RANGE) -> str:
    return f"{url}{'&' if '?' in url else '?'}{range_}"


def test_every_analytics_page_and_api_opens_for_managers_and_analysts(cast):
    for user in (cast.manager, cast.analyst):
        client = login(user)
        for url in PAGES:
            html = page(client, f"{url}?{RANGE}")
            assert 'aria-current="page">Analytics<' in html
        for url in APIS:
            assert client.get(f"{url}?{RANGE}").status_code == 200, url


def test_every_page_and_api_needs_a_login(cast):
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url
    for url in APIS:
        # 403 rather than 401: session authentication comes first in the project's settings.
        response = client.get(url)
        assert response.status_code in (401, 403), url
        assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_the_range_defaults_to_the_last_30_days_ending_yesterday(cast):
    html = page(login(cast.manager), "/analytics/")

    yesterday = timezone.localdate(timezone.now(), SH) - timedelta(days=1)
    first = yesterday - timedelta(days=29)
    assert f'value="{first.isoformat()}"' in html
    assert f'value="{yesterday.isoformat()}"' in html


def test_the_overview_shows_each_metric_with_what_it_divides(cast):
    html = page(login(cast.manager), f"/analytics/?{RANGE}")

    assert dict(shown_table(html, "metrics").rows) == {
        "Members at the start": "3",
        "Members at the end": "4",
        "Leave rate": "20.0%（1 / 5）",
        "Retention": "66.7%（2 / 3）",
        # 11-02: p4 of p1, p3, p4 spoke (1/3); 11-03: nobody of 4; the mean of the two days.
        "Interaction rate (daily mean)": "16.7%",
        "Messages per member (daily mean)": "0.17",
        "Conversion": "20.0%（1 / 5）",
        "Average order value": "¥20.00（¥20.00 / 1）",
        "Repurchase rate": "0.0%（0 / 1）",
        "Referral rate": "0.0%（0 / 1）",
        "Block rate": "0.0%（0 / 5）",
    }
    assert shown_table(html, "daily").rows == [
        ["2026-11-02", "33.3%（1 / 3）", "0.33（1 / 3）"],
        ["2026-11-03", "0.0%（0 / 4）", "0.00（0 / 4）"],
    ]


def test_an_operator_sees_only_their_own_groups_numbers_and_undefined_shows_a_dash(cast):
    client = login(cast.operator)

    html = page(client, f"/analytics/?{RANGE}")
    rows = dict(shown_table(html, "metrics").rows)
    assert rows["Members at the start"] == "2"
    assert rows["Leave rate"] == "33.3%（1 / 3）"
    assert rows["Conversion"] == "0.0%（0 / 3）"
    # Nobody of 小王's ordered: an average of nothing is undefined, not zero.
    assert rows["Average order value"] == "—"
    assert rows["Repurchase rate"] == "—"
    assert rows["Block rate"] == "0.0%（0 / 3）"  # over 小王's own customers

    html = page(client, f"/analytics/groups/?{RANGE}")
    assert [row[0] for row in shown_table(html, "groups").rows] == ["小王的群"]
    assert "别人的群" not in html

    html = page(client, f"/analytics/channels/?{RANGE}")
    assert shown_table(html, "channels").rows == [
        ["小王的码", "Join group (群活码)", "100", "1", "1.0%（1 / 100）", "—"]
    ]

    html = page(client, f"/analytics/funnel/?{RANGE}")
    assert [row[:2] for row in shown_table(html, "funnel").rows] == [
        ["Exposure", "100"],
        ["Join", "1"],
        ["Speak", "0"],
        ["Order", "0"],
        ["Repurchase", "0"],
        ["Refer", "0"],
    ]

    html = page(client, f"/analytics/cohorts/?{RANGE}")
    cohorts = shown_table(html, "cohorts").rows
    assert [row[:3] for row in cohorts] == [["2026-11-02", "1", "100.0%（1 / 1）"]]

    html = page(client, f"/analytics/customers/?{RANGE}")
    types = {row[0]: row[1:] for row in shown_table(html, "types").rows}
    assert types["Low-need (低需求)"] == ["3", "100.0%（3 / 3）"]


def test_a_manager_compares_every_live_group(cast):
    Group.objects.create(
        chat_id="wr-gone", name="解散的群", owner=cast.xiaowang, dismissed_at=timezone.now()
    )
    html = page(login(cast.manager), f"/analytics/groups/?{RANGE}")

    rows = {row[0]: row for row in shown_table(html, "groups").rows}
    assert set(rows) == {"小王的群", "别人的群", "空群"}
    assert rows["小王的群"][2:6] == ["2", "2", "1", "33.3%（1 / 3）"]
    assert rows["别人的群"][2:6] == ["1", "2", "1", "0.0%（0 / 2）"]
    # 空群 had no one: every rate is undefined.
    assert rows["空群"][2:6] == ["0", "0", "0", "—"]
    assert set(rows["空群"][5:]) == {"—"}


def test_a_groups_name_in_a_table_is_text_linking_to_the_group(cast):
    group = Group.objects.create(chat_id="wr-odd", name='<i>宝妈</i> & "朋友"', owner=cast.xiaowang)

    html = page(login(cast.manager), f"/analytics/groups/?{RANGE}")

    assert "<i>宝妈</i>" not in html
    name = "&lt;i&gt;宝妈&lt;/i&gt; &amp; &quot;朋友&quot;"
    assert f'<th scope="row"><a href="/groups/{group.pk}/">{name}</a></th>' in html


def test_the_group_stage_highlights_the_numbers_it_puts_first(cast):
    html = page(login(cast.manager), f"/analytics/groups/?{RANGE}")

    table = shown_table(html, "groups")
    columns = ["name", "stage", "members_start", "members_end", "joins", "leave_rate"]
    columns += ["retention", "interaction_rate", "messages_per_member"]
    focus = {
        row[0]: {c for c, cls in zip(columns, classes, strict=False) if "stage-focus" in cls}
        for row, classes in zip(table.rows, table.classes, strict=True)
    }
    assert focus == {
        "小王的群": {"joins", "leave_rate"},
        "别人的群": {"interaction_rate", "messages_per_member"},
        "空群": {"retention"},
    }


def test_the_group_table_sorts_by_a_column_with_undefined_last(cast):
    client = login(cast.manager)

    def order(sort: str) -> list[str]:
        html = page(client, f"/analytics/groups/?{RANGE}&sort={sort}")
        return [row[0] for row in shown_table(html, "groups").rows]

    assert order("name") == ["别人的群", "小王的群", "空群"]
    assert order("-name") == ["空群", "小王的群", "别人的群"]
    # 空群's leave rate is undefined: last whichever the direction.
    assert order("leave_rate") == ["别人的群", "小王的群", "空群"]
    assert order("-leave_rate") == ["小王的群", "别人的群", "空群"]
    assert order("-members_start") == ["小王的群", "别人的群", "空群"]
    assert order("members_start") == ["空群", "别人的群", "小王的群"]


@pytest.mark.parametrize("stored", [False, True], ids=["computed", "stored"])
@pytest.mark.parametrize("key", sorted(GROUP_SORTS))
def test_sorted_by_any_column_the_page_shows_the_downloads_rows_in_its_order(cast, key, stored):
    # The page sorts every group by that figure alone (computed, or read from the figures
    # the refresh stored) and then computes its page's groups whole; the download computes
    # every group whole: same rows, same order.
    if stored:
        assert snapshot_take(RANGE_PERIOD) is not None
    client = login(cast.manager)
    for sort in (key, f"-{key}"):
        url = f"/analytics/groups/?{RANGE}&sort={sort}"
        shown = shown_table(page(client, url), "groups").rows
        response = client.get(f"{url}&format=csv&table=groups")
        _header, *rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert shown == rows, sort


def test_a_sort_follows_people_joining_late_before_the_refresh_has_seen_them(cast):
    client = login(cast.manager)
    url = f"/analytics/groups/?{RANGE}&sort=-members_end"
    snapshot_take(RANGE_PERIOD)  # as the refresh stores them
    rows = shown_table(page(client, url), "groups").rows
    assert [(row[0], row[3]) for row in rows][-1] == ("空群", "0")

    # WeCom's callbacks arrive late: three people joined 空群 on the first day.
    for _n in range(3):
        membership_join(group=cast.empty, contact=ContactFactory(), joined_at=SH_NOV_2)

    rows = shown_table(page(client, url), "groups").rows
    assert [(row[0], row[3]) for row in rows][0] == ("空群", "3")


def test_the_group_chart_shows_the_sorted_column_in_the_tables_order(cast):
    html = page(login(cast.manager), f"/analytics/groups/?{RANGE}&sort=-leave_rate")

    chart = chart_spec(html, "chart-groups")
    assert chart["categories"] == ["小王的群", "别人的群", "空群"]
    assert chart["series"][0]["name"] == "Leave rate"
    assert chart["series"][0]["data"] == [0.3333, 0.0, None]
    assert chart["series"][0]["percent"] is True


@pytest.mark.parametrize(("url", "key"), PAGE_TABLES)
def test_the_csv_and_xlsx_downloads_hold_the_table_shown(cast, url, key):
    client = login(cast.manager)
    url = with_range(url)
    shown = shown_table(page(client, url), key).rows
    assert shown, "the table should have rows for this range"

    response = client.get(f"{url}&format=csv&table={key}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    header, *rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows == shown

    response = client.get(f"{url}&format=xlsx&table={key}")
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    cells = [
        ["" if v is None else str(v) for v in row]
        for row in sheet.iter_rows(min_row=2, values_only=True)
    ]
    assert cells == shown


def test_a_download_follows_the_sort_and_names_its_columns(cast):
    client = login(cast.manager)
    url = f"/analytics/groups/?{RANGE}&sort=-members_start"

    response = client.get(f"{url}&format=csv")
    header, *rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert header[:3] == ["Group", "Stage", "Members at start"]
    assert [row[0] for row in rows] == ["小王的群", "别人的群", "空群"]


def test_a_group_name_that_looks_like_a_formula_stays_text_in_the_download(cast):
    cast.theirs.name = "=HYPERLINK(1)"
    cast.theirs.save(update_fields=["name"])
    client = login(cast.manager)

    response = client.get(f"/analytics/groups/?{RANGE}&format=csv")
    assert "'=HYPERLINK(1)" in response.content.decode("utf-8-sig")
    response = client.get(f"/analytics/groups/?{RANGE}&format=xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    names = [row[0].value for row in sheet.iter_rows(min_row=2)]
    assert "=HYPERLINK(1)" in names
    assert all(row[0].data_type == "s" for row in sheet.iter_rows(min_row=2))


def test_a_period_without_data_says_so_instead_of_a_chart(cast):
    client = login(cast.manager)

    for url in ("/analytics/", "/analytics/cohorts/", "/analytics/funnel/"):
        html = page(client, f"{url}?{EMPTY_RANGE}")
        assert "No data for this period." in html, url
        assert 'class="chart"' not in html and "echarts" not in html, url
        assert "format=csv" not in html, url


def test_a_bad_date_on_a_page_is_shown_beside_its_field(cast):
    client = login(cast.manager)

    html = page(client, "/analytics/funnel/?first=2026-11-05&last=2026-11-01")
    field = re.search(r'<div class="field field-invalid">(.*?)</div>', html, re.S).group(1)
    assert 'id="id_last"' in field
    assert "The last day cannot be before the first." in field

    # No numbers for some other range than the one asked for.
    assert 'data-table="funnel"' not in html
    assert "Correct the fields above to see the numbers." in html

    html = page(client, "/analytics/?first=2026-13-01&last=2026-11-01")
    field = re.search(r'<div class="field field-invalid">(.*?)</div>', html, re.S).group(1)
    assert 'id="id_first"' in field and "Enter a valid date." in field
    response = client.get("/analytics/?first=2026-13-01&last=2026-11-01&format=csv")
    assert response.status_code == 400 and b"first" in response.content


def test_the_charts_draw_the_tables_numbers_from_our_own_static_files(cast):
    html = page(login(cast.manager), f"/analytics/funnel/?{RANGE}")

    chart = chart_spec(html, "chart-funnel")
    table = shown_table(html, "funnel").rows
    assert [[step["name"], str(step["value"])] for step in chart["data"]] == [
        row[:2] for row in table
    ]
    assert [row[1] for row in table] == ["150", "2", "1", "1", "0", "0"]
    scripts = re.findall(r'<script[^>]* src="([^"]+)"', html)
    assert scripts == [
        "/static/js/busy.js",  # every page's loading note (base.html)
        "/static/vendor/echarts/echarts.min.js",
        "/static/js/charts.js",
    ]


def test_the_overview_chart_and_its_table_show_the_same_days(cast):
    html = page(login(cast.manager), f"/analytics/?{RANGE}")

    chart = chart_spec(html, "chart-daily")
    assert chart["categories"] == [row[0] for row in shown_table(html, "daily").rows]
    assert chart["series"][0]["data"] == [0.3333, 0.0]


def test_an_operator_without_a_wecom_identity_sees_no_ones_numbers(cast):
    client = login(User.objects.create_user("newbie", role=Role.OPERATOR))

    for url in ("/analytics/", "/analytics/cohorts/", "/analytics/funnel/"):
        assert "No data for this period." in page(client, f"{url}?{RANGE}"), url
    for url in ("/analytics/groups/", "/analytics/channels/", "/analytics/customers/"):
        assert "No data for this period." in page(client, f"{url}?{RANGE}"), url
    overview = client.get(f"/api/analytics/overview/?{RANGE}").json()
    assert (overview["members_start"], overview["members_end"]) == (0, 0)
    assert client.get(f"/api/analytics/series/?{RANGE}").status_code == 403
