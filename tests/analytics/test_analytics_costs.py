"""Costs (投入) entered per group, channel code or campaign and period, on the page and through
the API: who may record what, bad input named by field with nothing written, the list each
role sees, and the ROI that divides by them. The cast is test_analytics_pages.py's (see its
docstring): the operator 小王 owns 小王的群 and 小王的码; 老张 owns 别人的群 and 老张的码.
"""

import csv
import io

import pytest
from django.conf import settings
from django.test import Client

from analytics.models import Event, EventType
from campaigns.models import Campaign, Cost
from tests.analytics.test_analytics_pages import RANGE, build_cast, login, page, shown_table

pytestmark = pytest.mark.django_db


@pytest.fixture
def cast(db):
    cast = build_cast()
    cast.campaign = Campaign.objects.create(name="双十一拼团", type=Campaign.Type.GROUP_BUY)
    return cast


def costs_written() -> int:
    return Event.objects.filter(type=EventType.COST_RECORDED).count()


def form(target: str, amount: str = "5.00", first="2026-11-02", last="2026-11-03", note=""):
    return {"target": target, "amount": amount, "first": first, "last": last, "note": note}


def field_errors(html: str, field: str) -> str:
    """The error list rendered right beside a form field ("" when it has none)."""
    marker = f'<ul class="field-errors" id="id_{field}_error">'
    if marker not in html:
        return ""
    return html.split(marker, 1)[1].split("</ul>", 1)[0]


def test_an_operator_records_a_cost_on_their_code_and_its_roi_divides_by_it(cast):
    client = login(cast.operator)
    channels = f"/analytics/channels/?{RANGE}"
    assert shown_table(page(client, channels), "channels").rows[0][-1] == "—"

    response = client.post(
        "/analytics/costs/", form(f"channel:{cast.my_code.pk}", "5.00", note="地推物料")
    )

    assert response.status_code == 302 and response["Location"] == "/analytics/costs/"
    html = page(client, "/analytics/costs/")
    assert "Cost recorded." in html
    [row] = shown_table(html, "costs").rows
    assert row[1:] == [
        "小王的码",
        "Channel code",
        "2026-11-02",
        "2026-11-03",
        "¥5.00",
        "地推物料",
        "xiaowang",
    ]
    # Nothing is attributed to the code yet: sales 0 over the ¥5.00 now recorded.
    assert shown_table(page(client, channels), "channels").rows[0][-1] == "0.00（¥0.00 / ¥5.00）"

    event = Event.objects.get(type=EventType.COST_RECORDED)
    assert (event.channel_id, event.group_id, event.campaign_id) == (cast.my_code.pk, None, None)
    assert event.amount == 500 and event.staff_id == cast.xiaowang.pk
    assert event.payload == {
        "period_start": "2026-11-02",
        "period_end": "2026-11-03",
        "note": "地推物料",
        "recorded_by": cast.operator.pk,
    }


def test_an_operator_may_cost_only_their_own_groups_and_codes(cast):
    client = login(cast.operator)
    html = page(client, "/analytics/costs/")
    assert "小王的群" in html and "小王的码" in html
    # Someone else's targets and campaigns (which have no owner) are not offered.
    assert "别人的群" not in html and "老张的码" not in html and "双十一拼团" not in html

    for target in (
        f"group:{cast.theirs.pk}",
        f"channel:{cast.their_code.pk}",
        f"campaign:{cast.campaign.pk}",
    ):
        html = client.post("/analytics/costs/", form(target)).content.decode()
        assert "Select a valid choice" in field_errors(html, "target"), target
    assert costs_written() == 0


def test_bad_input_is_named_beside_its_field_and_nothing_is_written(cast):
    client = login(cast.manager)
    target = f"group:{cast.mine.pk}"

    html = client.post("/analytics/costs/", form(target, amount="0")).content.decode()
    assert "more than zero" in field_errors(html, "amount")
    html = client.post("/analytics/costs/", form(target, amount="-3")).content.decode()
    assert "more than zero" in field_errors(html, "amount")
    html = client.post(
        "/analytics/costs/", form(target, first="2026-11-05", last="2026-11-01")
    ).content.decode()
    assert "cannot be before the first" in field_errors(html, "last")
    assert field_errors(html, "amount") == ""
    html = client.post("/analytics/costs/", form("")).content.decode()
    assert "required" in field_errors(html, "target")

    assert costs_written() == 0


def test_submitting_the_same_form_twice_records_the_cost_once(cast):
    client = login(cast.manager)
    html = page(client, "/analytics/costs/")
    key = html.split('name="key" value="', 1)[1].split('"', 1)[0]
    data = {**form(f"campaign:{cast.campaign.pk}", "30.00"), "key": key}

    for _ in range(2):
        assert client.post("/analytics/costs/", data).status_code == 302

    assert costs_written() == 1
    # The campaigns' cost ledger has the one entry too.
    assert list(Cost.objects.values_list("campaign", "amount_fen")) == [(cast.campaign.pk, 3_000)]
    [row] = shown_table(page(client, "/analytics/costs/"), "costs").rows
    assert row[1:3] == ["双十一拼团", "Campaign"]


def test_the_list_is_newest_first_and_operators_see_only_their_own_targets(cast):
    manager = login(cast.manager)
    for target, amount in (
        (f"group:{cast.mine.pk}", "1.00"),
        (f"group:{cast.theirs.pk}", "2.00"),
        (f"campaign:{cast.campaign.pk}", "3.00"),
        (f"channel:{cast.my_code.pk}", "4.00"),
    ):
        assert manager.post("/analytics/costs/", form(target, amount)).status_code == 302

    rows = shown_table(page(manager, "/analytics/costs/"), "costs").rows
    assert [(row[1], row[5]) for row in rows] == [
        ("小王的码", "¥4.00"),
        ("双十一拼团", "¥3.00"),
        ("别人的群", "¥2.00"),
        ("小王的群", "¥1.00"),
    ]
    rows = shown_table(page(login(cast.operator), "/analytics/costs/"), "costs").rows
    assert [(row[1], row[7]) for row in rows] == [("小王的码", "boss"), ("小王的群", "boss")]


def test_an_analyst_reads_the_costs_but_cannot_record_one(cast):
    login(cast.manager).post("/analytics/costs/", form(f"group:{cast.mine.pk}"))
    client = login(cast.analyst)

    html = page(client, "/analytics/costs/")
    assert len(shown_table(html, "costs").rows) == 1
    assert "Record a cost" not in html
    assert client.post("/analytics/costs/", form(f"group:{cast.mine.pk}")).status_code == 403
    response = client.post(
        "/api/analytics/costs/",
        {
            "target_kind": "group",
            "target_id": cast.mine.pk,
            "amount_fen": 100,
            "first": "2026-11-02",
            "last": "2026-11-02",
        },
        content_type="application/json",
    )
    assert response.status_code == 403
    assert costs_written() == 1


def test_the_costs_page_and_api_need_a_login(cast):
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    response = client.get("/analytics/costs/")
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert client.get("/api/analytics/costs/").status_code in (401, 403)


def test_the_csv_download_holds_the_costs_shown(cast):
    client = login(cast.manager)
    client.post("/analytics/costs/", form(f"group:{cast.mine.pk}", "1234.50", note="=SUM(A1)"))
    shown = shown_table(page(client, "/analytics/costs/"), "costs").rows
    assert [row[5:7] for row in shown] == [["¥1,234.50", "=SUM(A1)"]]

    response = client.get("/analytics/costs/?format=csv&table=costs")
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    header, *rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert header[:2] == ["Recorded at", "Cost of"]
    # A note typed as a formula stays text in the file.
    assert rows == [row[:6] + ["'=SUM(A1)"] + row[7:] for row in shown]
    assert client.get("/analytics/costs/?format=pdf").status_code == 404


def test_the_api_records_a_cost_and_lists_it(cast):
    client = login(cast.manager)
    body = {
        "target_kind": "campaign",
        "target_id": cast.campaign.pk,
        "amount_fen": 3_000,
        "first": "2026-10-31",
        "last": "2026-11-04",
        "note": "海报",
        "key": "retry-me",
    }

    for expected in (201, 201):  # a retry with the same key returns the same cost
        response = client.post("/api/analytics/costs/", body, content_type="application/json")
        assert response.status_code == expected
    created = response.json()
    assert created["target_name"] == "双十一拼团" and created["amount_fen"] == 3_000
    assert (created["first"], created["last"], created["recorded_by"]) == (
        "2026-10-31",
        "2026-11-04",
        "boss",
    )
    assert costs_written() == 1

    listed = client.get("/api/analytics/costs/").json()["costs"]
    assert listed == [created]
    assert login(cast.operator).get("/api/analytics/costs/").json() == {"costs": []}


def test_a_bad_cost_through_the_api_names_its_field_and_writes_nothing(cast):
    client = login(cast.operator)
    good = {
        "target_kind": "group",
        "target_id": cast.mine.pk,
        "amount_fen": 100,
        "first": "2026-11-02",
        "last": "2026-11-03",
    }

    for changes, field in (
        ({"amount_fen": 0}, "amount_fen"),
        ({"amount_fen": -5}, "amount_fen"),
        ({"last": "2026-11-01"}, "last"),
        ({"first": "2026-13-01"}, "first"),
        ({"target_kind": "staff"}, "target_kind"),
        ({"target_id": cast.theirs.pk}, "target_id"),  # 老张's group
        ({"target_kind": "campaign", "target_id": cast.campaign.pk}, "target_id"),
        ({"note": "长" * 201}, "note"),
    ):
        response = client.post(
            "/api/analytics/costs/", {**good, **changes}, content_type="application/json"
        )
        assert response.status_code == 400, changes
        assert field in response.json(), (changes, response.json())
    assert costs_written() == 0


def test_the_schema_describes_the_costs_endpoints(cast):
    schema = login(cast.manager).get("/api/schema/", {"format": "json"}).json()

    operations = schema["paths"]["/api/analytics/costs/"]
    assert "200" in operations["get"]["responses"]
    assert "201" in operations["post"]["responses"]
    body = operations["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    required = schema["components"]["schemas"][body.rsplit("/", 1)[1]]["required"]
    assert set(required) == {"target_kind", "target_id", "amount_fen", "first", "last"}
