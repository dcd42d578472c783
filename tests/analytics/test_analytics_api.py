"""The 数据 (analytics) API: every metric and series with numerator and denominator, null
when undefined, each login seeing only what its role allows. The cast and its history are
test_analytics_pages.py's (see its docstring)."""

from datetime import date

import pytest

from analytics.rollups import rollup_days
from tests.analytics.test_analytics_pages import APIS, RANGE, build_cast, login

pytestmark = pytest.mark.django_db


@pytest.fixture
def cast(db):
    return build_cast()


def ratio(value, numerator, denominator) -> dict:
    return {"value": value, "numerator": numerator, "denominator": denominator}


def test_the_overview_gives_each_ratio_with_numerator_and_denominator(cast):
    data = login(cast.manager).get(f"/api/analytics/overview/?{RANGE}").json()

    assert data["period"] == {"first": "2026-11-02", "last": "2026-11-03"}
    assert (data["members_start"], data["members_end"]) == (3, 4)
    assert data["leave_rate"] == ratio("0.2000", 1, 5)
    assert data["retention"] == ratio("0.6667", 2, 3)
    assert data["average_order_value"] == ratio("2000.0000", 2_000, 1)  # fen per buyer
    assert data["interaction_rate"]["value"] == "0.1667"
    assert data["interaction_rate"]["days"] == [
        {"day": "2026-11-02", **ratio("0.3333", 1, 3)},
        {"day": "2026-11-03", **ratio("0.0000", 0, 4)},
    ]


def test_an_operators_api_numbers_cover_only_their_groups_and_undefined_is_null(cast):
    client = login(cast.operator)

    overview = client.get(f"/api/analytics/overview/?{RANGE}").json()
    assert overview["members_start"] == 2
    assert overview["leave_rate"] == ratio("0.3333", 1, 3)
    assert overview["average_order_value"] == ratio(None, 0, 0)
    assert overview["repurchase_rate"] == ratio(None, 0, 0)

    groups = client.get(f"/api/analytics/groups/?{RANGE}").json()["groups"]
    assert [row["group"]["name"] for row in groups] == ["小王的群"]
    assert groups[0]["focus"] == ["joins", "leave_rate"]

    channels = client.get(f"/api/analytics/channels/?{RANGE}").json()["channels"]
    assert [(c["channel"]["name"], c["join_rate"]) for c in channels] == [
        ("小王的码", ratio("0.0100", 1, 100))
    ]

    steps = client.get(f"/api/analytics/funnel/?{RANGE}").json()["steps"]
    assert [s["count"] for s in steps] == [100, 1, 0, 0, 0, 0]
    assert steps[0]["from_previous"] is None
    assert steps[2]["from_previous"] == ratio("0.0000", 0, 1)  # of 1 joiner, nobody spoke
    assert steps[3]["from_previous"] == ratio(None, 0, 0)  # of no speakers: undefined


def test_the_funnel_api_counts_every_group_for_a_manager(cast):
    steps = login(cast.manager).get(f"/api/analytics/funnel/?{RANGE}").json()["steps"]

    assert [(s["key"], s["count"]) for s in steps] == [
        ("exposures", 150),
        ("joins", 2),
        ("speakers", 1),
        ("buyers", 1),
        ("repeat_buyers", 0),
        ("referrers", 0),
    ]
    assert steps[1]["from_first"] == ratio("0.0133", 2, 150)


def test_the_cohort_triangle_by_week(cast):
    data = login(cast.manager).get(f"/api/analytics/cohorts/?{RANGE}&horizon=2").json()

    # p3 (11-02) and p5 (11-03) first joined in the week of Monday 11-02; both stayed.
    assert (data["unit"], data["horizon"]) == ("week", 2)
    assert data["cohorts"] == [
        {"start": "2026-11-02", "size": 2, "retained": [ratio("1.0000", 2, 2)] * 3}
    ]


def test_the_cohort_triangle_by_day_for_an_operator_is_null_where_undefined(cast):
    data = login(cast.operator).get(f"/api/analytics/cohorts/?{RANGE}&unit=day&horizon=1").json()

    # Only p3 first joined 小王's group in the range; nobody on 11-03: nothing to divide.
    assert data["cohorts"] == [
        {"start": "2026-11-02", "size": 1, "retained": [ratio("1.0000", 1, 1)] * 2},
        {"start": "2026-11-03", "size": 0, "retained": [ratio(None, 0, 0)] * 2},
    ]


def test_a_cohort_not_yet_followed_that_far_is_null(cast):
    data = (
        login(cast.manager)
        .get("/api/analytics/cohorts/?first=2026-11-02&last=2026-11-02&horizon=52")
        .json()
    )

    # Today is after 11-02 but not a year after: the last columns have not come yet.
    retained = data["cohorts"][0]["retained"]
    assert retained[0] == ratio("1.0000", 1, 1)
    assert retained[-1] is None


def test_the_customer_types_come_with_their_thresholds_and_lists(cast):
    client = login(cast.manager)

    data = client.get("/api/analytics/customer-types/?last=2026-11-03").json()
    assert data["as_of"] == "2026-11-04T00:00:00+08:00"
    assert set(data["thresholds"]) == {
        "low_need_max_orders",
        "loyal_months",
        "bargain_aov_fen",
        "need_driven_quiet_days",
    }
    types = {t["type"]: t for t in data["types"]}
    assert types["low_need"]["count"] == 5
    assert types["low_need"]["share"] == ratio("1.0000", 5, 5)
    assert types["loyal"]["share"] == ratio("0.0000", 0, 5)
    assert types["low_need"]["list_url"] == "/contacts/?customer_type=low_need"

    mine = login(cast.operator).get("/api/analytics/customer-types/?last=2026-11-03").json()
    assert {t["type"]: t["count"] for t in mine["types"]}["low_need"] == 3  # p1, p2, p3


def test_the_daily_series_of_every_group(cast):
    rollup_days([date(2026, 11, 2), date(2026, 11, 3)])

    data = login(cast.analyst).get(f"/api/analytics/series/?{RANGE}").json()

    assert data["slice"] == "all"
    first, second = data["days"]
    assert first["day"] == "2026-11-02"
    assert (first["members_end"], first["joins"], first["leaves"], first["speakers"]) == (
        3,
        1,
        1,
        1,
    )
    assert first["interaction_rate"] == ratio("0.3333", 1, 3)
    assert first["average_order_value"] == ratio(None, 0, 0)
    assert (second["members_end"], second["buyers"], second["revenue_fen"]) == (4, 1, 2_000)
    assert second["average_order_value"] == ratio("2000.0000", 2_000, 1)
    # The rollups' daily values agree with the overview's, straight from the metrics.
    overview = login(cast.analyst).get(f"/api/analytics/overview/?{RANGE}").json()
    assert data["interaction_rate"]["value"] == overview["interaction_rate"]["value"]


def test_an_operators_series_is_their_own_groups_by_default(cast):
    rollup_days([date(2026, 11, 2), date(2026, 11, 3)])
    client = login(cast.operator)

    data = client.get(f"/api/analytics/series/?{RANGE}").json()
    assert data["slice"] == f"owner:{cast.xiaowang.pk}"
    assert [(d["members_end"], d["joins"], d["leaves"]) for d in data["days"]] == [
        (2, 1, 1),
        (2, 0, 0),
    ]

    data = client.get(f"/api/analytics/series/?{RANGE}&slice=channel:{cast.my_code.pk}").json()
    assert data["days"][0]["join_rate"] == ratio("0.0100", 1, 100)
    own_group = client.get(f"/api/analytics/series/?{RANGE}&slice=group:{cast.mine.pk}")
    assert own_group.status_code == 200


def test_an_operator_cannot_read_another_slice(cast):
    client = login(cast.operator)

    for slice in (
        "all",
        f"group:{cast.theirs.pk}",
        f"channel:{cast.their_code.pk}",
        "type:benefit",
        f"owner:{cast.theirs.owner_id}",
    ):
        response = client.get(f"/api/analytics/series/?{RANGE}&slice={slice}")
        assert response.status_code == 403, slice
        assert "slice" in response.json()["detail"]


def test_a_bad_query_names_its_field(cast):
    client = login(cast.manager)

    response = client.get("/api/analytics/overview/?first=2026-13-01")
    assert response.status_code == 400 and "first" in response.json()
    response = client.get("/api/analytics/funnel/?first=2026-11-05&last=2026-11-01")
    assert response.status_code == 400 and "last" in response.json()
    response = client.get(f"/api/analytics/cohorts/?{RANGE}&unit=month")
    assert response.status_code == 400 and "unit" in response.json()
    response = client.get(f"/api/analytics/cohorts/?{RANGE}&horizon=999")
    assert response.status_code == 400 and "horizon" in response.json()
    for slice in ("everything", "type:nonsense"):
        response = client.get(f"/api/analytics/series/?{RANGE}&slice={slice}")
        assert response.status_code == 400 and "slice" in response.json(), slice


def test_the_schema_describes_every_analytics_endpoint(cast):
    schema = login(cast.manager).get("/api/schema/", {"format": "json"}).json()

    for path in APIS:
        assert path in schema["paths"], path
        assert "200" in schema["paths"][path]["get"]["responses"], path
    ratio_schema = schema["components"]["schemas"]["Ratio"]
    assert ratio_schema["properties"]["value"]["nullable"] is True
    parameters = {p["name"] for p in schema["paths"]["/api/analytics/series/"]["get"]["parameters"]}
    assert parameters == {"first", "last", "slice"}
