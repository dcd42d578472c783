"""The SOP REST API: content, plans and steps, go-live actions, preview, deliveries,
completion and content results, and who may see and change what."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from analytics.events import record
from analytics.models import EventType
from scrm.models import Role, User
from sop.models import Delivery, MassMessage, Plan, SkipReason
from sop.planner import plan_due
from tests.factories import GroupFactory, StaffFactory
from tests.sop.builders import customer, group_plan, shanghai

pytestmark = pytest.mark.django_db
SHANGHAI = ZoneInfo("Asia/Shanghai")


def login(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def manager(db) -> User:
    return User.objects.create_user("boss", role=Role.ADMIN)


def operator_named(username: str, name: str) -> User:
    user = User.objects.create_user(username, role=Role.OPERATOR)
    StaffFactory(name=name, user=user)
    return user


@pytest.fixture
def operator(db) -> User:
    return operator_named("xiaowang", "小王")


@pytest.fixture
def other_operator(db) -> User:
    return operator_named("xiaozhang", "小张")


@pytest.fixture
def analyst(db) -> User:
    return User.objects.create_user("laoli", role=Role.ANALYST)


def create_content(api, **fields) -> dict:
    data = {"title": "早安打卡", "purpose": "activation", "text": "{name}，早上好！", **fields}
    response = api.post("/api/sop/content/", data, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def create_plan(api, **fields) -> dict:
    data = {"name": "福利群日常", "kind": "group", **fields}
    response = api.post("/api/sop/plans/", data, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def add_step(api, plan_id: int, content_id: int, **fields) -> dict:
    data = {"plan": plan_id, "content": content_id, "at_time": "09:00", "position": 1, **fields}
    response = api.post("/api/sop/steps/", data, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_group_plan_built_through_the_api_goes_live_and_previews_its_groups(manager):
    api = login(manager)
    benefit = [GroupFactory(name=f"福利群{i}", type="benefit") for i in range(3)]
    GroupFactory(name="引流群", type="acquisition")
    content = create_content(api)
    plan = create_plan(api, group_types=["benefit"], priority=80)
    add_step(api, plan["id"], content["id"], weekdays=[])

    response = api.post(f"/api/sop/plans/{plan['id']}/activate/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "active"
    assert response.json()["staff"] is None  # a manager's plan reaches every matching group

    preview = api.get(f"/api/sop/plans/{plan['id']}/preview/").json()
    targets = {row["target"] for row in preview["rows"]}
    assert targets == {g.name for g in benefit}
    times = {
        datetime.fromisoformat(row["due_at"]).astimezone(SHANGHAI).time() for row in preview["rows"]
    }
    assert times == {time(9, 0)}
    assert preview["planned"] == len(preview["rows"]) >= 3 * 6  # 7 days of 09:00 slots
    assert Delivery.objects.count() == 0  # a preview keeps nothing


def test_activating_a_plan_that_cannot_go_live_names_the_field(manager):
    api = login(manager)
    plan = create_plan(api)

    response = api.post(f"/api/sop/plans/{plan['id']}/activate/")

    assert response.status_code == 400
    assert "steps" in response.json()
    assert Plan.objects.get(pk=plan["id"]).status == Plan.Status.DRAFT


def test_a_journey_without_a_trigger_is_refused_naming_the_trigger(manager):
    response = login(manager).post(
        "/api/sop/plans/", {"name": "新客旅程", "kind": "journey"}, format="json"
    )

    assert response.status_code == 400
    assert "trigger" in response.json()


def test_content_that_wecom_could_not_send_is_refused_naming_the_field(manager):
    api = login(manager)

    bad_link = api.post(
        "/api/sop/content/",
        {
            "title": "活动链接",
            "purpose": "conversion",
            "text": "看看这个",
            "attachments": [{"kind": "link", "title": "双十一"}],
        },
        format="json",
    )
    bad_variable = api.post(
        "/api/sop/content/",
        {"title": "问候", "purpose": "brand", "text": "{nickname} 你好"},
        format="json",
    )

    assert bad_link.status_code == 400
    assert "url" in bad_link.json()["attachments"][0]
    assert bad_variable.status_code == 400
    assert "{nickname}" in bad_variable.json()["text"][0]


def test_deleting_content_archives_it(manager):
    api = login(manager)
    content = create_content(api)

    assert api.delete(f"/api/sop/content/{content['id']}/").status_code == 204

    listed = api.get("/api/sop/content/").json()["results"]
    archived = api.get("/api/sop/content/", {"archived": "true"}).json()["results"]
    assert listed == [] and [c["id"] for c in archived] == [content["id"]]


def test_an_operators_plan_is_theirs_alone(operator, other_operator, manager):
    mine, theirs = login(operator), login(other_operator)
    own_group = GroupFactory(owner=operator.staff)
    other_group = GroupFactory(owner=other_operator.staff)
    content = create_content(mine)

    # An operator cannot pick another operator's group.
    refused = mine.post(
        "/api/sop/plans/", {"name": "x", "kind": "group", "groups": [other_group.pk]}, format="json"
    )
    assert refused.status_code == 400 and "groups" in refused.json()

    plan = create_plan(mine, groups=[own_group.pk])
    assert plan["staff"] == operator.staff.pk
    step = add_step(mine, plan["id"], content["id"])

    url = f"/api/sop/plans/{plan['id']}/"
    assert theirs.get(url).status_code == 404
    assert theirs.patch(url, {"name": "改名"}, format="json").status_code == 404
    assert theirs.post(url + "activate/").status_code == 404
    assert theirs.get(f"/api/sop/steps/{step['id']}/").status_code == 404
    assert theirs.get("/api/sop/plans/").json()["results"] == []
    stolen = theirs.post(
        "/api/sop/steps/", {"plan": plan["id"], "content": content["id"], "at_time": "10:00"}
    )
    assert stolen.status_code == 400 and "plan" in stolen.json()
    # The manager sees it; the owner puts it live.
    assert login(manager).get(url).status_code == 200
    assert mine.post(url + "activate/").json()["status"] == "active"
    assert Plan.objects.get(pk=plan["id"]).name == "福利群日常"


def test_an_analyst_reads_everything_and_changes_nothing(manager, analyst):
    api = login(manager)
    content = create_content(api)
    plan = create_plan(api)
    add_step(api, plan["id"], content["id"])
    reader = login(analyst)

    assert reader.get(f"/api/sop/plans/{plan['id']}/").status_code == 200
    assert reader.get(f"/api/sop/plans/{plan['id']}/preview/").status_code == 200
    assert reader.get("/api/sop/deliveries/").status_code == 200
    assert reader.get("/api/sop/completion/").status_code == 200
    assert reader.post(f"/api/sop/plans/{plan['id']}/activate/").status_code == 403
    assert reader.post("/api/sop/plans/", {"name": "x", "kind": "group"}).status_code == 403
    assert reader.post("/api/sop/content/", {"title": "x"}).status_code == 403
    assert reader.delete(f"/api/sop/content/{content['id']}/").status_code == 403
    assert Plan.objects.get(pk=plan["id"]).status == Plan.Status.DRAFT


def test_the_api_needs_a_login():
    assert APIClient().get("/api/sop/plans/").status_code in (401, 403)


def test_pausing_skips_planned_deliveries_and_the_ledger_filters_by_reason(manager, content):
    mine = StaffFactory()
    GroupFactory.create_batch(2, owner=mine)
    plan = group_plan(content, at=time(9, 0), activated_at=shanghai(2026, 11, 23, 8, 0))
    plan_due(now=shanghai(2026, 11, 23, 9, 1))
    api = login(manager)

    planned = api.get("/api/sop/deliveries/", {"plan": plan.pk, "status": "planned"}).json()
    assert planned["count"] == 2
    assert api.post(f"/api/sop/plans/{plan.pk}/pause/").json()["status"] == "paused"

    skipped = api.get("/api/sop/deliveries/", {"plan": plan.pk, "reason": "plan_paused"}).json()
    assert skipped["count"] == 2
    assert skipped["results"][0]["reason_display"] == str(SkipReason.PLAN_PAUSED.label)
    bad = api.get("/api/sop/deliveries/", {"status": "lost"})
    assert bad.status_code == 400 and "status" in bad.json()
    resumed = api.post(f"/api/sop/plans/{plan.pk}/resume/")
    assert resumed.json()["status"] == "active"


def test_an_operator_sees_only_the_deliveries_they_send(operator, content):
    GroupFactory(owner=operator.staff)
    GroupFactory(owner=StaffFactory())
    group_plan(content, at=time(9, 0), activated_at=shanghai(2026, 11, 23, 8, 0))
    plan_due(now=shanghai(2026, 11, 23, 9, 1))

    rows = login(operator).get("/api/sop/deliveries/").json()["results"]

    assert [r["sender"] for r in rows] == [operator.staff.pk]


def test_completion_counts_confirmed_mass_messages_per_staff_member(manager, content):
    diligent, idle = StaffFactory(name="勤快"), StaffFactory(name="偷懒")
    now = timezone.now()
    for sender, confirmed in ((diligent, True), (diligent, False), (idle, False)):
        MassMessage.objects.create(
            sender=sender,
            chat_type="group",
            content=content,
            status="confirmed" if confirmed else "sent",
            confirmed_at=now if confirmed else None,
        )

    rows = {r["staff_name"]: r for r in login(manager).get("/api/sop/completion/").json()}

    assert rows["勤快"]["messages"] == 2 and rows["勤快"]["rate"] == 0.5
    assert rows["偷懒"]["rate"] == 0.0
    long_ago = login(manager).get("/api/sop/completion/", {"until": "2020-01-07"}).json()
    assert long_ago == []
    bad = login(manager).get("/api/sop/completion/", {"since": "2026-11-20", "until": "2026-11-01"})
    assert bad.status_code == 400 and "until" in bad.json()


def test_content_results_count_what_followed_within_the_window(manager, content):
    staff = StaffFactory()
    group = GroupFactory(owner=staff)
    buyer, silent = customer(staff), customer(staff)
    plan = group_plan(content, activated_at=shanghai(2026, 11, 1, 7, 0))
    step = plan.steps.get()
    confirmed_at = timezone.now() - timedelta(days=5)
    message = MassMessage.objects.create(
        sender=staff, chat_type="group", content=content, confirmed_at=confirmed_at
    )
    common = {"plan": plan, "step": step, "sender": staff, "message": message}
    slot = {"slot_at": confirmed_at, "due_at": confirmed_at}
    days = {"due_day": confirmed_at.date(), "due_week": confirmed_at.date()}
    Delivery.objects.create(
        group=group, status="delivered", slot_day=days["due_day"], **common, **slot, **days
    )
    for contact in (buyer, silent):
        Delivery.objects.create(contact=contact, status="delivered", **common, **slot, **days)
    Delivery.objects.create(  # sent but never reached anyone: not counted
        contact=customer(staff), status="failed", **common, **slot, **days
    )
    hour = timedelta(hours=1)
    record(type=EventType.MESSAGE, occurred_at=confirmed_at + hour, key="m1", group=group, amount=4)
    record(type=EventType.MESSAGE, occurred_at=confirmed_at + 80 * hour, key="m2", group=group)
    record(
        type=EventType.ORDER_PAID,
        occurred_at=confirmed_at + 2 * hour,
        key="o1",
        contact=buyer,
        amount=9_900,
    )

    result = login(manager).get(f"/api/sop/content/{content.pk}/results/").json()

    assert result == {
        "delivered": 3,
        "confirmations": 1,
        "confirming_staff": 1,
        "group_messages": 4,  # the one 80 hours later is past the 72-hour window
        "contacts_reached": 2,
        "contacts_responded": 1,
        "orders": 1,
        "order_fen": 9_900,
    }


def test_the_schema_describes_the_sop_endpoints(manager):
    schema = login(manager).get("/api/schema/", {"format": "json"}).json()

    for path in (
        "/api/sop/plans/",
        "/api/sop/plans/{id}/activate/",
        "/api/sop/plans/{id}/pause/",
        "/api/sop/plans/{id}/resume/",
        "/api/sop/plans/{id}/archive/",
        "/api/sop/plans/{id}/preview/",
        "/api/sop/steps/",
        "/api/sop/deliveries/",
        "/api/sop/content/",
        "/api/sop/completion/",
    ):
        assert path in schema["paths"]
    parameters = {p["name"] for p in schema["paths"]["/api/sop/deliveries/"]["get"]["parameters"]}
    assert {"plan", "status", "reason", "contact", "group"} <= parameters
