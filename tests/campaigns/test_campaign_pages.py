"""The operators' campaign pages: managers create, move and announce; operators and analysts
read; the funnel, ROI, participants, rewards and rejections of a hand-made campaign."""

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from analytics.costs import cost_record
from analytics.events import record
from analytics.models import EventType
from campaigns import services
from campaigns.models import Campaign, Order, Rejection, Reward
from campaigns.selectors import type_available
from campaigns.tokens import landing_read
from campaigns.types import TYPE_MODULES, rules_check
from scrm.models import Role, User
from sop.models import Plan
from tests.factories import ContactFactory, StaffFactory
from tests.sop.builders import customer, make_content

pytestmark = pytest.mark.django_db

# Rules known to suit a type; the first whose module is installed and accepts them is used.
CANDIDATE_RULES = [
    (Campaign.Type.COUPON, {}),
    (Campaign.Type.FLASH_SALE, {}),
    (Campaign.Type.CHECKIN, {"days_needed": 3, "reward": {"points": 10}}),
    (Campaign.Type.INVITE_TASK, {"invites_needed": 3, "window_hours": 72, "reward": {"points": 5}}),
]


def usable_type() -> tuple[str, dict]:
    """A campaign type whose module is installed, with rules it accepts; skip otherwise (the
    type modules are written alongside these pages)."""
    for campaign_type, rules in CANDIDATE_RULES:
        if not type_available(campaign_type):
            continue
        try:
            rules_check(campaign_type, rules)
        except ValidationError:
            continue
        return campaign_type, rules
    pytest.skip("no campaign type module accepting known rules is installed yet")


def type_with_required_rule() -> tuple[str, str]:
    """An installed type that names a missing rule when given none: (type, rule name)."""
    for campaign_type in TYPE_MODULES:
        if not type_available(campaign_type):
            continue
        try:
            rules_check(campaign_type, {})
        except ValidationError as exc:
            return campaign_type, next(iter(exc.message_dict))
    pytest.skip("no installed campaign type requires a rule")


def running(**fields) -> Campaign:
    """A running campaign made directly: no type module is needed to read or end it."""
    now = timezone.now()
    fields.setdefault("name", "老带新")
    fields.setdefault("type", Campaign.Type.INVITE_TASK)
    fields.setdefault("starts_at", now - timedelta(days=1))
    fields.setdefault("ends_at", now + timedelta(days=7))
    return Campaign.objects.create(state=Campaign.State.RUNNING, **fields)


def roi_case(manager) -> tuple[Campaign, list]:
    """3 participants, 2 completed, 1 rewarded, one attributed paid order of ¥250 and a
    recorded cost of ¥100: ROI 2.50."""
    campaign = running(name="双11拉新")
    people = [ContactFactory() for _ in range(3)]
    joined = [services.participate(campaign, person) for person in people]
    services.complete(joined[0])
    services.complete(joined[1])
    services.reward(campaign, people[0], kind=Reward.Kind.POINTS, amount=10, key="done:1")
    paid_at = timezone.now()
    Order.objects.create(
        order_no="CA-1",
        contact=people[1],
        amount_fen=25_000,
        ordered_at=paid_at,
        campaign=campaign,
    )
    record(
        type=EventType.ORDER_PAID,
        occurred_at=paid_at,
        key="order:CA-1:paid",
        contact=people[1],
        campaign=campaign,
        amount=25_000,
        payload={"order_no": "CA-1"},
    )
    today = timezone.localdate()
    cost_record(
        target_kind="campaign",
        target_id=campaign.pk,
        amount_fen=10_000,
        first=today,
        last=today,
        note="海报",
        user=manager,
    )
    return campaign, people


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
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


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def test_the_pages_need_a_login():
    campaign = running()
    for url in ("/campaigns/", f"/campaigns/{campaign.pk}/", "/campaigns/new/"):
        response = Client().get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


def test_the_list_filters_by_type_and_state_and_searches_names(operator):
    running(name="老带新打卡", type=Campaign.Type.CHECKIN)
    running(name="秒杀专场", type=Campaign.Type.FLASH_SALE)
    Campaign.objects.create(name="拼团草稿", type=Campaign.Type.GROUP_BUY)
    client = login(operator)

    everything = page(client, "/campaigns/")
    assert "老带新打卡" in everything and "秒杀专场" in everything and "拼团草稿" in everything
    checkins = page(client, "/campaigns/?type=checkin")
    assert "老带新打卡" in checkins and "秒杀专场" not in checkins
    drafts = page(client, "/campaigns/?state=draft")
    assert "拼团草稿" in drafts and "老带新打卡" not in drafts
    found = page(client, "/campaigns/?q=秒杀")
    assert "秒杀专场" in found and "拼团草稿" not in found
    assert 'aria-current="page">Campaigns<' in everything


@pytest.mark.parametrize("role", ["operator", "analyst"])
def test_operators_and_analysts_read_campaigns_but_cannot_change_them(role, request):
    user = request.getfixturevalue(role)
    campaign = running()
    content = make_content()
    client = login(user)

    detail = page(client, f"/campaigns/{campaign.pk}/")
    assert "老带新" in detail and 'name="to"' not in detail  # no move buttons
    assert client.get("/campaigns/new/").status_code == 403
    assert client.post("/campaigns/new/", {"name": "x"}).status_code == 403
    assert client.get(f"/campaigns/{campaign.pk}/edit/").status_code == 403
    assert client.post(f"/campaigns/{campaign.pk}/move/", {"to": "ended"}).status_code == 403
    announce = {"content": content.pk, "reach": "audience", "send_at": "2030-01-01T10:00"}
    assert client.post(f"/campaigns/{campaign.pk}/announce/", announce).status_code == 403
    campaign.refresh_from_db()
    assert campaign.state == Campaign.State.RUNNING
    assert not Plan.objects.filter(campaign=campaign).exists()


def test_a_manager_creates_a_campaign_and_schedules_it(manager):
    campaign_type, rules = usable_type()
    StaffFactory(name="活动号")
    client = login(manager)
    assert "活动号" in page(client, "/campaigns/new/")  # the sender to pick
    starts = timezone.localtime() + timedelta(days=1)
    response = client.post(
        "/campaigns/new/",
        {
            "name": "春节打卡",
            "type": campaign_type,
            "starts_at": starts.strftime("%Y-%m-%dT%H:%M"),
            "ends_at": (starts + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"),
            "budget_yuan": "1000.50",
            "rules": json.dumps(rules),
        },
    )
    assert response.status_code == 302
    campaign = Campaign.objects.get(name="春节打卡")
    assert response["Location"] == f"/campaigns/{campaign.pk}/"
    assert campaign.budget_fen == 100_050 and campaign.rules == rules
    assert campaign.state == Campaign.State.DRAFT and campaign.created_by == manager

    detail = page(client, f"/campaigns/{campaign.pk}/")
    assert "Schedule" in detail and "Start now" in detail and "¥1,000.50" in detail
    response = client.post(f"/campaigns/{campaign.pk}/move/", {"to": "scheduled"})
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.state == Campaign.State.SCHEDULED
    assert "Back to draft" in page(client, f"/campaigns/{campaign.pk}/")
    assert "春节打卡" in page(client, f"/campaigns/{campaign.pk}/edit/")
    client.cookies.pop(settings.LANGUAGE_COOKIE_NAME)  # and in the default Chinese
    assert "春节打卡" in page(client, f"/campaigns/{campaign.pk}/")


def test_a_manager_ends_a_running_campaign(manager):
    campaign = running()
    client = login(manager)
    response = client.post(f"/campaigns/{campaign.pk}/move/", {"to": "ended"})
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.state == Campaign.State.ENDED and campaign.ends_at <= timezone.now()
    detail = page(client, f"/campaigns/{campaign.pk}/")
    assert 'name="to"' not in detail  # an ended campaign has nowhere to go
    assert client.get(f"/campaigns/{campaign.pk}/edit/").status_code == 403


def test_a_move_that_is_not_allowed_says_why(manager):
    draft = Campaign.objects.create(name="草稿", type=Campaign.Type.INVITE_TASK)
    client = login(manager)
    response = client.post(f"/campaigns/{draft.pk}/move/", {"to": "ended"})
    assert response.status_code == 400
    assert "cannot become" in response.content.decode()
    draft.refresh_from_db()
    assert draft.state == Campaign.State.DRAFT


def test_scheduling_a_campaign_without_a_period_names_the_fields(manager):
    campaign_type, rules = usable_type()
    draft = Campaign.objects.create(name="没有时间", type=campaign_type, rules=rules)
    response = login(manager).post(f"/campaigns/{draft.pk}/move/", {"to": "scheduled"})
    assert response.status_code == 400
    labels = [label for label, _ in response.context["move_errors"]]
    assert "Starts at" in labels and "Ends at" in labels
    draft.refresh_from_db()
    assert draft.state == Campaign.State.DRAFT


def test_form_errors_appear_next_to_their_fields(manager):
    client = login(manager)
    starts = timezone.localtime() + timedelta(days=2)
    base = {
        "name": "出错",
        "type": Campaign.Type.INVITE_TASK,
        "starts_at": starts.strftime("%Y-%m-%dT%H:%M"),
        "ends_at": (starts - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        "budget_yuan": "-5",
        "rules": "{not json",
    }
    response = client.post("/campaigns/new/", base)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert set(errors) >= {"ends_at", "budget_yuan", "rules"}
    html = response.content.decode()
    for field in ("ends_at", "budget_yuan", "rules"):
        assert f'id="id_{field}_error"' in html
    assert "The end must come after the start." in html

    response = client.post("/campaigns/new/", {**base, "rules": "[1, 2]", "budget_yuan": "0"})
    assert response.context["form"].errors["rules"] == ["Rules must be an object."]
    assert not Campaign.objects.exists()


def test_a_missing_rule_is_named_beside_the_rules(manager):
    campaign_type, rule = type_with_required_rule()
    response = login(manager).post(
        "/campaigns/new/", {"name": "缺规则", "type": campaign_type, "rules": "{}"}
    )
    assert response.status_code == 400
    assert any(e.startswith(f"{rule}: ") for e in response.context["form"].errors["rules"])
    assert 'id="id_rules_error"' in response.content.decode()


def test_the_detail_shows_funnel_roi_rewards_and_rejections(manager):
    campaign, people = roi_case(manager)
    services.reject(campaign, people[2], Rejection.Reason.NOT_IN_AUDIENCE)
    services.reject(campaign, None, Rejection.Reason.NOT_IN_AUDIENCE)
    services.reject(campaign, people[0], Rejection.Reason.SELF_REFERRAL)
    response = login(manager).get(f"/campaigns/{campaign.pk}/")
    assert response.status_code == 200

    funnel = [(step["row"].key, step["row"].count) for step in response.context["funnel"]]
    assert funnel == [
        ("reached", 3),
        ("joined", 3),
        ("completed", 2),
        ("rewarded", 1),
        ("ordered", 1),
    ]
    conversions = [step["conversion"] for step in response.context["funnel"]]
    assert conversions == [
        "",
        "100.0%（3 / 3）",
        "66.7%（2 / 3）",
        "50.0%（1 / 2）",
        "100.0%（1 / 1）",
    ]
    html = response.content.decode()
    assert "2.50（¥250.00 / ¥100.00）" in html
    rejections = [(r.reason, r.count) for r in response.context["rejections"]]
    assert rejections == [("not_in_audience", 2), ("self_referral", 1)]
    assert "Not in the audience" in html and "Invited themselves" in html
    assert [(t.kind, t.count, t.amount) for t in response.context["reward_totals"]] == [
        ("points", 1, 10)
    ]
    assert all(f'data-participant="{p.pk}"' in html for p in people)


def test_roi_without_a_recorded_cost_is_undefined(manager):
    campaign = running()
    html = page(login(manager), f"/campaigns/{campaign.pk}/")
    assert "<span data-roi>—</span>" in html


def test_an_operator_sees_only_their_own_customers_among_participants(operator):
    campaign = running()
    mine = customer(operator.staff, name="我的客户")
    theirs = customer(StaffFactory(), name="别人的客户")
    services.participate(campaign, mine)
    services.participate(campaign, theirs)
    response = login(operator).get(f"/campaigns/{campaign.pk}/")
    assert [p.contact for p in response.context["page_obj"]] == [mine]
    assert response.context["funnel"][1]["row"].count == 2  # the numbers stay brand-wide


def test_the_landing_preview_links_to_the_chosen_customers_page(operator):
    campaign = running()
    mine = customer(operator.staff)
    theirs = customer(StaffFactory())
    client = login(operator)

    response = client.get(f"/campaigns/{campaign.pk}/?customer={mine.external_userid}")
    url = response.context["landing_url"]
    assert url.startswith("http://testserver/c/") and url in response.content.decode()
    token = url.removeprefix("http://testserver/c/").strip("/")
    assert landing_read(token) == (campaign.pk, mine.pk)

    response = client.get(f"/campaigns/{campaign.pk}/?customer={theirs.pk}")
    assert response.context["landing_url"] == ""
    assert "customer" in response.context["preview_form"].errors


def test_announcing_plans_a_broadcast_to_the_participants(manager):
    campaign, people = roi_case(manager)
    content = make_content(title="活动开始", text="{name}，活动开始啦")
    send_at = timezone.localtime() + timedelta(hours=3)
    client = login(manager)
    assert "活动开始" in page(client, f"/campaigns/{campaign.pk}/announce/")
    response = client.post(
        f"/campaigns/{campaign.pk}/announce/",
        {
            "content": content.pk,
            "reach": "participants",
            "send_at": send_at.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert response.status_code == 302
    plan = Plan.objects.get(campaign=campaign)
    assert plan.kind == Plan.Kind.BROADCAST and plan.status == Plan.Status.ACTIVE
    assert set(plan.contacts.all()) == set(people)
    step = plan.steps.get()
    assert step.content == content
    assert step.send_at == send_at.replace(second=0, microsecond=0)
    assert plan.name in page(client, f"/campaigns/{campaign.pk}/")


def test_announcing_to_nobody_is_refused_beside_the_audience_choice(manager):
    campaign = running()
    content = make_content()
    response = login(manager).post(
        f"/campaigns/{campaign.pk}/announce/",
        {
            "content": content.pk,
            "reach": "participants",
            "send_at": (timezone.localtime() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert response.status_code == 400
    assert "reach" in response.context["form"].errors
    assert not Plan.objects.filter(campaign=campaign).exists()
