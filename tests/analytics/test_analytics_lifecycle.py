"""Customers' lifecycle week by week on the cohort page and in the cohorts API: every
customer's state per Monday-week, so shown to managers and analysts only.

The cast of test_analytics_pages.py (its p1 … p5 were added today, long after November; p4
spoke 11-02 and ordered 11-03), plus four customers, Shanghai time:

    a  added 10-01; spoke 10-20, 11-03, 11-10
    b  added 10-01; spoke 10-20; ordered 11-11
    c  added 11-03; spoke 11-04
    d  added 11-10; spoke 11-12

For 2026-11-02 … 2026-11-15 (weeks of Monday 11-02 and 11-09; nobody was active in the
week of 10-26):

    week 11-02  new 1 (c)  returning 0          resurrected 1 (a)  dormant 0
    week 11-09  new 1 (d)  returning 1 (a)      resurrected 1 (b)  dormant 2 (p4, c)

p4, c and d are active for the first time in their week: neither returning nor resurrected.
"""

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from analytics.events import record
from analytics.models import EventType
from analytics.rollups import rollup_recent
from tests.analytics.test_analytics_pages import (
    EMPTY_RANGE,
    build_cast,
    chart_spec,
    login,
    page,
    shown_table,
)
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
WEEKS = "first=2026-11-02&last=2026-11-15"
PAGE = f"/analytics/cohorts/?{WEEKS}"
SHOWN = [
    ["2026-11-02", "1", "0", "1", "0"],
    ["2026-11-09", "1", "1", "1", "2"],
]


def at(month, day, hour=12) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=SH)


@pytest.fixture
def cast(db):
    cast = build_cast()
    a, b = (ContactFactory(name=name, first_added_at=at(10, 1)) for name in "ab")
    c = ContactFactory(name="c", first_added_at=at(11, 3))
    d = ContactFactory(name="d", first_added_at=at(11, 10))
    n = iter(range(100))

    def spoke(person, when):
        record(
            type=EventType.MESSAGE,
            occurred_at=when,
            key=f"life-{next(n)}",
            contact=person,
            group=cast.mine,
        )

    spoke(a, at(10, 20)), spoke(a, at(11, 3)), spoke(a, at(11, 10))
    spoke(b, at(10, 20))
    record(
        type=EventType.ORDER_PAID,
        occurred_at=at(11, 11),
        key="life-order",
        contact=b,
        amount=1_000,
        payload={"order_no": "L1"},
    )
    spoke(c, at(11, 4))
    spoke(d, at(11, 12))
    rollup_recent()  # the refresh after these events: the lifecycle reads each one's activity
    return cast


def test_a_manager_sees_each_weeks_lifecycle_with_a_chart_of_the_same_numbers(cast):
    html = page(login(cast.manager), PAGE)

    assert "Customers&#x27; lifecycle week by week" in html
    assert shown_table(html, "lifecycle").rows == SHOWN
    chart = chart_spec(html, "chart-lifecycle")
    assert chart["type"] == "bar"
    assert chart["categories"] == ["2026-11-02", "2026-11-09"]
    assert {s["name"]: s["data"] for s in chart["series"]} == {
        "New": [1, 1],
        "Returning": [0, 1],
        "Resurrected": [1, 1],
        "Dormant": [0, 2],
    }
    # The join cohorts stay the page's first table.
    assert shown_table(html, "cohorts").rows


def test_an_analyst_sees_the_same_lifecycle_table(cast):
    html = page(login(cast.analyst), PAGE)

    assert shown_table(html, "lifecycle").rows == SHOWN


def test_an_operator_gets_no_lifecycle_table_but_a_note_why(cast):
    client = login(cast.operator)

    html = page(client, PAGE)
    assert 'data-table="lifecycle"' not in html and "chart-lifecycle" not in html
    assert "covers every customer, so only managers and analysts see it" in html
    # Their own join cohorts are still there.
    assert shown_table(html, "cohorts").rows
    assert client.get(f"{PAGE}&format=csv&table=lifecycle").status_code == 404


def test_the_lifecycle_csv_and_xlsx_hold_the_table_shown(cast):
    client = login(cast.manager)
    shown = shown_table(page(client, PAGE), "lifecycle").rows

    response = client.get(f"{PAGE}&format=csv&table=lifecycle")
    assert response.status_code == 200
    assert "cohorts-lifecycle-2026-11-02-2026-11-15.csv" in response["Content-Disposition"]
    header, *rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert header == ["Week (from Monday)", "New", "Returning", "Resurrected", "Dormant"]
    assert rows == shown == SHOWN

    response = client.get(f"{PAGE}&format=xlsx&table=lifecycle")
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    assert [[str(v) for v in row] for row in sheet.iter_rows(min_row=2, values_only=True)] == shown


def test_weeks_where_nothing_happened_say_so_instead_of_a_table(cast):
    html = page(login(cast.manager), f"/analytics/cohorts/?{EMPTY_RANGE}")

    assert 'data-table="lifecycle"' not in html and "chart-lifecycle" not in html
    assert "table=lifecycle" not in html


def test_the_cohorts_api_gives_managers_the_lifecycle_weeks_and_operators_null(cast):
    data = login(cast.manager).get(f"/api/analytics/cohorts/?{WEEKS}").json()
    assert data["lifecycle_weeks"] == [
        {"week": "2026-11-02", "new": 1, "returning": 0, "resurrected": 1, "dormant": 0},
        {"week": "2026-11-09", "new": 1, "returning": 1, "resurrected": 1, "dormant": 2},
    ]

    data = login(cast.operator).get(f"/api/analytics/cohorts/?{WEEKS}").json()
    assert data["lifecycle_weeks"] is None
    assert data["cohorts"]  # their own join cohorts still come


def test_the_schema_describes_the_lifecycle_weeks(cast):
    schema = login(cast.manager).get("/api/schema/", {"format": "json"}).json()

    field = schema["components"]["schemas"]["Cohorts"]["properties"]["lifecycle_weeks"]
    assert field["type"] == "array" and field["nullable"] is True
    week = schema["components"]["schemas"]["LifecycleWeek"]["properties"]
    assert set(week) == {"week", "new", "returning", "resurrected", "dormant"}
