"""The campaigns' REST API: managers create, change and move campaigns; operators and analysts
read; funnel and ROI, rejections and participants; bad input answers 400 naming the field."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from campaigns import services
from campaigns.models import Campaign, Rejection
from scrm.models import Role, User
from tests.campaigns.test_campaign_pages import (
    roi_case,
    running,
    type_with_required_rule,
    usable_type,
)
from tests.factories import StaffFactory
from tests.sop.builders import customer

pytestmark = pytest.mark.django_db


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def manager() -> User:
    return User.objects.create_user("boss", role=Role.ADMIN)


@pytest.fixture
def operator() -> User:
    user = User.objects.create_user("xiaowang", role=Role.OPERATOR)
    StaffFactory(name="小王", user=user)
    return user


@pytest.fixture
def analyst() -> User:
    return User.objects.create_user("laoli", role=Role.ANALYST)


def period(days_from_now: int = 1, length: int = 7) -> dict:
    starts = timezone.now() + timedelta(days=days_from_now)
    return {
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(days=length)).isoformat(),
    }


def test_the_api_needs_a_login():
    campaign = running()
    assert APIClient().get("/api/campaigns/").status_code == 403
    assert APIClient().get(f"/api/campaigns/{campaign.pk}/results/").status_code == 403


def test_a_manager_creates_updates_and_moves_a_campaign(manager):
    campaign_type, rules = usable_type()
    client = api(manager)
    body = {"name": "春节打卡", "type": campaign_type, "rules": rules, "budget_fen": 50_000}
    response = client.post("/api/campaigns/", {**body, **period()}, format="json")
    assert response.status_code == 201, response.data
    assert response.data["state"] == "draft" and response.data["budget_fen"] == 50_000
    pk = response.data["id"]
    assert Campaign.objects.get(pk=pk).created_by == manager

    response = client.patch(f"/api/campaigns/{pk}/", {"name": "春节打卡挑战"}, format="json")
    assert response.status_code == 200 and response.data["name"] == "春节打卡挑战"

    response = client.post(f"/api/campaigns/{pk}/move/", {"to": "scheduled"}, format="json")
    assert response.status_code == 200 and response.data["state"] == "scheduled"
    response = client.post(f"/api/campaigns/{pk}/move/", {"to": "running"}, format="json")
    assert response.status_code == 200 and response.data["state"] == "running"
    assert Campaign.objects.get(pk=pk).starts_at <= timezone.now()  # started early


@pytest.mark.parametrize("role", ["operator", "analyst"])
def test_operators_and_analysts_read_but_cannot_change(role, request):
    client = api(request.getfixturevalue(role))
    campaign = running()
    assert client.get("/api/campaigns/").data["count"] == 1
    assert client.get(f"/api/campaigns/{campaign.pk}/").status_code == 200
    assert client.get(f"/api/campaigns/{campaign.pk}/results/").status_code == 200
    assert client.get(f"/api/campaigns/{campaign.pk}/rejections/").status_code == 200
    assert client.get(f"/api/campaigns/{campaign.pk}/participants/").status_code == 200

    body = {"name": "x", "type": "coupon", "rules": {}}
    assert client.post("/api/campaigns/", body, format="json").status_code == 403
    assert (
        client.patch(f"/api/campaigns/{campaign.pk}/", {"name": "y"}, format="json").status_code
        == 403
    )
    response = client.post(f"/api/campaigns/{campaign.pk}/move/", {"to": "ended"}, format="json")
    assert response.status_code == 403
    campaign.refresh_from_db()
    assert campaign.name == "老带新" and campaign.state == Campaign.State.RUNNING
    assert Campaign.objects.count() == 1


def test_bad_input_answers_400_naming_the_field(manager):
    client = api(manager)
    backwards = period()
    backwards["starts_at"], backwards["ends_at"] = backwards["ends_at"], backwards["starts_at"]
    response = client.post(
        "/api/campaigns/", {"name": "反了", "type": "coupon", **backwards}, format="json"
    )
    assert response.status_code == 400 and "ends_at" in response.data
    response = client.post(
        "/api/campaigns/", {"name": "规则", "type": "coupon", "rules": [1]}, format="json"
    )
    assert response.status_code == 400 and "rules" in response.data
    response = client.post("/api/campaigns/", {"name": "类型", "type": "nope"}, format="json")
    assert response.status_code == 400 and "type" in response.data
    response = client.post(
        "/api/campaigns/", {"name": "预算", "type": "coupon", "budget_fen": -1}, format="json"
    )
    assert response.status_code == 400 and "budget_fen" in response.data
    assert client.get("/api/campaigns/?state=bogus").data.keys() == {"state"}
    assert not Campaign.objects.exists()

    campaign = running()
    response = client.post(f"/api/campaigns/{campaign.pk}/move/", {"to": "bogus"}, format="json")
    assert response.status_code == 400 and "to" in response.data
    response = client.post(f"/api/campaigns/{campaign.pk}/move/", {"to": "draft"}, format="json")
    assert response.status_code == 400 and "state" in response.data


def test_a_missing_rule_is_named_under_rules(manager):
    campaign_type, rule = type_with_required_rule()
    response = api(manager).post(
        "/api/campaigns/", {"name": "缺规则", "type": campaign_type, "rules": {}}, format="json"
    )
    assert response.status_code == 400
    assert rule in response.data["rules"]


def test_going_live_without_a_period_names_the_fields(manager):
    campaign_type, rules = usable_type()
    draft = Campaign.objects.create(name="没有时间", type=campaign_type, rules=rules)
    response = api(manager).post(
        f"/api/campaigns/{draft.pk}/move/", {"to": "running"}, format="json"
    )
    assert response.status_code == 400
    assert {"starts_at", "ends_at"} <= set(response.data)


def test_the_list_filters_by_type_state_and_name(analyst):
    running(name="老带新打卡", type=Campaign.Type.CHECKIN)
    running(name="秒杀专场", type=Campaign.Type.FLASH_SALE)
    Campaign.objects.create(name="拼团草稿", type=Campaign.Type.GROUP_BUY)
    client = api(analyst)

    def names(query: str) -> set[str]:
        return {row["name"] for row in client.get(f"/api/campaigns/?{query}").data["results"]}

    assert names("type=checkin") == {"老带新打卡"}
    assert names("state=draft") == {"拼团草稿"}
    assert names("q=秒杀") == {"秒杀专场"}
    assert len(names("")) == 3


def test_results_give_the_funnel_and_roi(manager):
    campaign, _ = roi_case(manager)
    data = api(manager).get(f"/api/campaigns/{campaign.pk}/results/").data
    assert [(s["key"], s["count"]) for s in data["funnel"]] == [
        ("reached", 3),
        ("joined", 3),
        ("completed", 2),
        ("rewarded", 1),
        ("ordered", 1),
    ]
    assert data["funnel"][0]["conversion"] is None
    assert data["funnel"][2]["conversion"] == {
        "value": "0.6667",
        "numerator": 2,
        "denominator": 3,
    }
    assert data["roi"] == {"value": "2.5000", "numerator": 25_000, "denominator": 10_000}


def test_rejections_are_grouped_by_reason(operator):
    campaign = running()
    for reason in ("not_in_audience", "not_in_audience", "sold_out"):
        services.reject(campaign, None, reason)
    data = api(operator).get(f"/api/campaigns/{campaign.pk}/rejections/").data
    assert [(r["reason"], r["count"]) for r in data] == [("not_in_audience", 2), ("sold_out", 1)]
    assert data[0]["label"] == str(Rejection.Reason.NOT_IN_AUDIENCE.label)


def test_participants_are_paged_and_an_operator_sees_their_own(operator, manager):
    campaign = running()
    mine = customer(operator.staff, name="我的客户")
    theirs = customer(StaffFactory(), name="别人的客户")
    services.participate(campaign, mine)
    services.participate(campaign, theirs)

    data = api(operator).get(f"/api/campaigns/{campaign.pk}/participants/").data
    assert [row["contact"] for row in data["results"]] == [mine.pk]
    assert data["results"][0]["progress_state"] == "joined"
    data = api(manager).get(f"/api/campaigns/{campaign.pk}/participants/").data
    assert data["count"] == 2 and {r["contact_name"] for r in data["results"]} == {
        "我的客户",
        "别人的客户",
    }
