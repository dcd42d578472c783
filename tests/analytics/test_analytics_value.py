"""The customer value page and API (客户价值): buyers' RFM layers and lifetime value per source
channel, worked out by hand below; managers and analysts only, downloads as shown.

Five buyers b1 … b5: b<i> orders i times, ¥<i>0.00 each, the last on 10-<i> (Shanghai), so
each lands in quintile i on recency, frequency and money; revenue b1 ¥10, b2 ¥40, b3 ¥90,
b4 ¥160, b5 ¥250. b5's extra order "X" on 10-06 is refunded in full and counts nowhere.
地推 brought b1, b2 and n (never bought) and cost ¥30.00: per customer ¥10.00 to acquire and
(¥50.00 − ¥30.00) / 3 = ¥6.67 of lifetime value. b3, b4, b5 came through no channel:
¥500.00 / 3 = ¥166.67 each.
"""

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from analytics.events import record
from analytics.models import EventType
from contacts.models import ChannelCode
from scrm.models import Role, User
from tests.analytics.test_analytics_pages import chart_spec, login, page, shown_table
from tests.factories import ContactFactory, StaffFactory

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
AS_OF = "first=2026-11-01&last=2026-11-03"


def at(month, day, hour=12) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=SH)


@pytest.fixture
def users(db):
    operator = User.objects.create_user("xiaowang", role=Role.OPERATOR)
    StaffFactory(name="小王", user=operator)
    return {
        "manager": User.objects.create_user("boss", role=Role.ADMIN),
        "analyst": User.objects.create_user("laoli", role=Role.ANALYST),
        "operator": operator,
    }


@pytest.fixture
def history(users):
    ditui = ChannelCode.objects.create(name="地推", kind=ChannelCode.Kind.STAFF, state="d")
    buyers = {
        i: ContactFactory(name=f"b{i}", source_channel=ditui if i <= 2 else None)
        for i in range(1, 6)
    }
    ContactFactory(name="n", source_channel=ditui)
    for i, buyer in buyers.items():
        for n in range(i):
            record(
                type=EventType.ORDER_PAID,
                occurred_at=at(10, i, 9 + n),
                key=f"value-{i}-{n}",
                contact=buyer,
                amount=i * 1_000,
                payload={"order_no": f"B{i}-{n}"},
            )
    for type, key in ((EventType.ORDER_PAID, "paid"), (EventType.ORDER_REFUNDED, "refund")):
        record(
            type=type,
            occurred_at=at(10, 6),
            key=f"value-x-{key}",
            contact=buyers[5],
            amount=99_900,
            payload={"order_no": "X"},
        )
    record(
        type=EventType.COST_RECORDED,
        occurred_at=at(9, 30),
        key="value-cost",
        channel=ditui,
        amount=3_000,
        payload={"period_start": "2026-09-01", "period_end": "2026-09-30"},
    )
    return ditui


def test_the_rfm_layers_put_each_buyer_in_their_quintiles(users, history):
    html = page(login(users["manager"]), f"/analytics/value/?{AS_OF}")

    assert shown_table(html, "rfm").rows == [
        ["5", "5", "5", "1", "20.0%（1 / 5）", "¥250.00"],
        ["4", "4", "4", "1", "20.0%（1 / 5）", "¥160.00"],
        ["3", "3", "3", "1", "20.0%（1 / 5）", "¥90.00"],
        ["2", "2", "2", "1", "20.0%（1 / 5）", "¥40.00"],
        ["1", "1", "1", "1", "20.0%（1 / 5）", "¥10.00"],
    ]
    chart = chart_spec(html, "chart-rfm")
    assert chart["type"] == "heatmap"
    assert chart["y"] == ["R 5", "R 4", "R 3", "R 2", "R 1"]
    # Each buyer on the diagonal: frequency i (x = i − 1) beside recency i (y = 5 − i).
    assert sorted(chart["data"]) == sorted([[i - 1, 5 - i, 1] for i in range(1, 6)])


def test_lifetime_value_per_channel_is_revenue_minus_cost_per_customer(users, history):
    html = page(login(users["analyst"]), f"/analytics/value/?{AS_OF}")

    assert shown_table(html, "channels").rows == [
        ["地推", "3", "¥50.00", "¥30.00", "¥10.00（¥30.00 / 3）", "¥6.67（¥20.00 / 3）"],
        [
            "No source channel",
            "3",
            "¥500.00",
            "¥0.00",
            "¥0.00（¥0.00 / 3）",
            "¥166.67（¥500.00 / 3）",
        ],
    ]
    chart = chart_spec(html, "chart-channels")
    assert chart["categories"] == ["地推", "No source channel"]
    assert chart["series"][0]["data"] == [6.6667, 166.6667]


def test_the_value_is_as_of_the_end_of_the_last_day(users, history):
    # By the end of 10-03 only b1, b2 and b3 had bought (b3 all three orders, on 10-03).
    html = page(login(users["manager"]), "/analytics/value/?first=2026-10-01&last=2026-10-03")

    rows = shown_table(html, "rfm").rows
    assert sum(int(row[3]) for row in rows) == 3
    assert sorted(row[5] for row in rows) == ["¥10.00", "¥40.00", "¥90.00"]

    html = page(login(users["manager"]), "/analytics/value/?first=2026-09-01&last=2026-09-02")
    assert shown_table(html, "rfm").rows == []
    assert "chart-rfm" not in html


def test_operators_cannot_open_customer_value(users, history):
    client = login(users["operator"])

    assert client.get(f"/analytics/value/?{AS_OF}").status_code == 403
    assert client.get("/api/analytics/customer-value/").status_code == 403
    # Nor is it offered among their analytics pages.
    assert "/analytics/value/" not in page(client, "/analytics/")
    assert "/analytics/value/" in page(login(users["manager"]), "/analytics/")


@pytest.mark.parametrize("key", ["rfm", "channels"])
def test_the_csv_and_xlsx_downloads_hold_the_table_shown(users, history, key):
    client = login(users["manager"])
    url = f"/analytics/value/?{AS_OF}"
    shown = shown_table(page(client, url), key).rows

    response = client.get(f"{url}&format=csv&table={key}")
    assert response.status_code == 200
    _header, *rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows == shown

    response = client.get(f"{url}&format=xlsx&table={key}")
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    cells = [
        ["" if v is None else str(v) for v in row]
        for row in sheet.iter_rows(min_row=2, values_only=True)
    ]
    assert cells == shown


def test_the_api_gives_the_layers_and_channel_values(users, history):
    client = login(users["analyst"])

    data = client.get("/api/analytics/customer-value/?last=2026-11-03").json()

    assert data["as_of"] == "2026-11-04T00:00:00+08:00"
    assert data["rfm"][0] == {
        "recency": 5,
        "frequency": 5,
        "monetary": 5,
        "contacts": 1,
        "revenue_fen": 25_000,
    }
    ditui, nowhere = data["channels"]
    assert ditui["channel_id"] == history.pk and ditui["cost_fen"] == "3000"
    assert ditui["acquisition_cost_fen"] == {
        "value": "1000.0000",
        "numerator": 3_000,
        "denominator": 3,
    }
    assert ditui["lifetime_value_fen"]["value"] == "666.6667"
    assert nowhere["channel_id"] is None and nowhere["revenue_fen"] == 50_000

    response = client.get("/api/analytics/customer-value/?last=2026-11-31")
    assert response.status_code == 400 and "last" in response.json()


def test_the_schema_describes_the_customer_value_endpoint(users):
    schema = login(users["manager"]).get("/api/schema/", {"format": "json"}).json()

    operation = schema["paths"]["/api/analytics/customer-value/"]["get"]
    assert "200" in operation["responses"]
    assert {p["name"] for p in operation["parameters"]} == {"last"}
