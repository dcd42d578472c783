"""The SOP pages: plans, steps, go-live actions, preview, deliveries, content library and
completion, as managers, operators and analysts see them."""

import re
from datetime import time

import pytest
from django.test import Client
from django.utils import timezone

from scrm.models import Role, User
from sop.models import ContentItem, Delivery, MassMessage, Plan, SkipReason, Step
from sop.planner import plan_due
from tests.factories import GroupFactory, StaffFactory
from tests.sop.builders import group_plan, shanghai

pytestmark = pytest.mark.django_db


def login(user) -> Client:
    client = Client()
    client.force_login(user)
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
def analyst(db) -> User:
    return User.objects.create_user("laoli", role=Role.ANALYST)


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def test_every_sop_page_shows_the_plan_to_a_manager(manager, content):
    GroupFactory(name="宝妈福利群")
    plan = group_plan(content, at=time(9, 30), activated_at=timezone.now())
    client = login(manager)

    assert "福利群日常" in page(client, "/sop/")
    detail = page(client, f"/sop/plans/{plan.pk}/")
    assert "福利群日常" in detail and "早安打卡" in detail and "09:30" in detail
    assert 'aria-current="page">SOP<' in detail or "SOP" in detail
    preview = page(client, f"/sop/plans/{plan.pk}/preview/")
    assert "宝妈福利群" in preview and " 09:30" in preview
    assert "福利群日常" in page(client, f"/sop/plans/{plan.pk}/deliveries/")
    assert "早安打卡" in page(client, "/sop/content/")
    page(client, "/sop/completion/")
    page(client, "/sop/plans/new/?kind=journey")
    page(client, f"/sop/plans/{plan.pk}/edit/")
    page(client, f"/sop/plans/{plan.pk}/steps/new/")
    page(client, "/sop/content/new/")


def test_the_pages_need_a_login():
    response = Client().get("/sop/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_an_operator_builds_a_plan_on_their_own_groups(operator, content):
    mine = GroupFactory(name="我的群", owner=operator.staff)
    GroupFactory(name="别人的群")
    client = login(operator)

    form = page(client, "/sop/plans/new/?kind=group")
    assert "我的群" in form and "别人的群" not in form

    response = client.post(
        "/sop/plans/new/",
        {
            "kind": "group",
            "name": "我的日常",
            "priority": 60,
            "holiday_policy": "skip",
            "groups": [mine.pk],
        },
    )
    plan = Plan.objects.get(name="我的日常")
    assert response.status_code == 302 and response["Location"] == f"/sop/plans/{plan.pk}/"
    assert plan.staff == operator.staff and list(plan.groups.all()) == [mine]

    response = client.post(
        f"/sop/plans/{plan.pk}/steps/new/",
        {"position": 1, "content": content.pk, "at_time": "08:30", "weekdays": ["5", "6"]},
    )
    assert response.status_code == 302
    step = Step.objects.get(plan=plan)
    assert step.at_time == time(8, 30) and step.weekdays == [5, 6]

    client.post(f"/sop/plans/{plan.pk}/activate/")
    plan.refresh_from_db()
    assert plan.status == Plan.Status.ACTIVE


def test_the_edit_page_shows_the_plans_hand_picked_groups_chosen(manager, content):
    picked = GroupFactory(name="宝妈<福利>群", owner=StaffFactory(name="小李"))
    other = GroupFactory(name="别的群", owner=StaffFactory(name="小张"))
    plan = group_plan(content, activated_at=timezone.now())
    plan.groups.set([picked])

    form = page(login(manager), f"/sop/plans/{plan.pk}/edit/")

    select = re.search(r'<select name="groups"([^>]*)>(.*?)</select>', form, re.S)
    assert select and " multiple" in select.group(1)
    assert re.findall(r'<option value="(\d+)"( selected)?>([^<]*)</option>', select.group(2)) == [
        (str(other.pk), "", "别的群 · 小张"),
        (str(picked.pk), " selected", "宝妈&lt;福利&gt;群 · 小李"),
    ]


def test_a_group_plan_step_without_a_time_is_refused_beside_the_field(manager, content):
    plan = Plan.objects.create(name="无时间", kind=Plan.Kind.GROUP)

    response = login(manager).post(
        f"/sop/plans/{plan.pk}/steps/new/", {"position": 1, "content": content.pk}
    )

    assert response.status_code == 200
    assert 'id="id_at_time_error"' in response.content.decode()
    assert not plan.steps.exists()


def test_activating_a_plan_without_steps_says_why(manager):
    plan = Plan.objects.create(name="空计划", kind=Plan.Kind.GROUP)

    response = login(manager).post(f"/sop/plans/{plan.pk}/activate/")

    assert response.status_code == 400
    assert "请至少添加一个步骤。" in response.content.decode()
    plan.refresh_from_db()
    assert plan.status == Plan.Status.DRAFT


def test_pausing_through_the_page_skips_planned_deliveries(manager, content):
    GroupFactory.create_batch(3, owner=StaffFactory())
    plan = group_plan(content, at=time(9, 0), activated_at=shanghai(2026, 11, 23, 8, 0))
    plan_due(now=shanghai(2026, 11, 23, 9, 1))
    assert Delivery.objects.filter(plan=plan, status="planned").count() == 3
    client = login(manager)

    response = client.post(f"/sop/plans/{plan.pk}/pause/", follow=True)

    assert response.status_code == 200
    assert "3 条已排期的消息将不再发送" in response.content.decode()
    plan.refresh_from_db()
    assert plan.status == Plan.Status.PAUSED
    assert set(Delivery.objects.filter(plan=plan).values_list("status", "reason")) == {
        ("skipped", SkipReason.PLAN_PAUSED)
    }
    ledger = page(client, f"/sop/plans/{plan.pk}/deliveries/?reason=plan_paused")
    assert ledger.count(str(SkipReason.PLAN_PAUSED.label)) >= 3
    assert "2026-11-23 09:00" in ledger  # Shanghai time


def test_an_operator_cannot_open_or_change_another_operators_plan(operator, content):
    other = operator_named("xiaozhang", "小张")
    plan = group_plan(content, activated_at=timezone.now(), staff=other.staff)
    client = login(operator)

    assert client.get(f"/sop/plans/{plan.pk}/").status_code == 404
    assert client.get(f"/sop/plans/{plan.pk}/preview/").status_code == 404
    assert client.post(f"/sop/plans/{plan.pk}/pause/").status_code == 404
    assert client.post(f"/sop/plans/{plan.pk}/edit/", {"name": "x"}).status_code == 404
    assert "福利群日常" not in page(client, "/sop/")
    plan.refresh_from_db()
    assert plan.status == Plan.Status.ACTIVE


def test_an_analyst_reads_every_page_but_changes_nothing(analyst, content):
    plan = group_plan(content, activated_at=timezone.now())
    client = login(analyst)

    for url in (
        "/sop/",
        f"/sop/plans/{plan.pk}/",
        f"/sop/plans/{plan.pk}/preview/",
        f"/sop/plans/{plan.pk}/deliveries/",
        "/sop/content/",
        "/sop/completion/",
    ):
        page(client, url)
    assert "Pause" not in page(client, f"/sop/plans/{plan.pk}/")
    assert client.post(f"/sop/plans/{plan.pk}/pause/").status_code == 403
    assert client.get("/sop/plans/new/").status_code == 403
    assert client.post("/sop/content/new/", {"title": "x"}).status_code == 403
    assert client.post(f"/sop/content/{content.pk}/archive/").status_code == 403
    plan.refresh_from_db()
    assert plan.status == Plan.Status.ACTIVE


def test_content_with_a_broken_attachment_is_refused_beside_the_attachments(manager):
    client = login(manager)

    response = client.post(
        "/sop/content/new/",
        {
            "title": "小程序",
            "purpose": "conversion",
            "text": "点这里",
            "attachments": '[{"kind": "miniprogram", "title": "商城"}]',
        },
    )

    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="id_attachments_error"' in body and "appid" in body
    assert not ContentItem.objects.filter(title="小程序").exists()

    client.post(
        "/sop/content/new/",
        {"title": "小程序", "purpose": "conversion", "text": "点这里", "attachments": "[]"},
    )
    item = ContentItem.objects.get(title="小程序")
    assert item.created_by == manager
    client.post(f"/sop/content/{item.pk}/archive/")
    item.refresh_from_db()
    assert item.archived
    assert "小程序" not in page(client, "/sop/content/")


def test_completion_shows_each_staff_members_rate_for_the_chosen_days(manager, content):
    staff = StaffFactory(name="勤快")
    now = timezone.now()
    for confirmed in (True, False, False, False):
        MassMessage.objects.create(
            sender=staff,
            chat_type="group",
            content=content,
            confirmed_at=now if confirmed else None,
        )
    client = login(manager)

    body = page(client, "/sop/completion/")
    assert "勤快" in body and "25.0%" in body
    assert "勤快" not in page(client, "/sop/completion/?since=2020-01-01&until=2020-01-07")
    refused = page(client, "/sop/completion/?since=2026-11-20&until=2026-11-01")
    assert 'id="id_until_error"' in refused
