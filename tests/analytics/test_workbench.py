"""The workbench (工作台): today's tasks, SOP completion and alerts, each for the login's own
groups, customers and messages (managers: everyone's)."""

import itertools
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from analytics import workbench
from analytics.events import record
from analytics.models import EventType
from campaigns.models import Campaign
from groups.models import GroupMembership
from scrm.models import Job, Role, User
from sop.models import Delivery, MassMessage
from sop.planner import record_delivery_events
from tests.factories import ContactFactory, GroupFactory, StaffFactory
from tests.sop.builders import group_plan, make_content
from wecom.models import Callback

NOW = timezone.now()
keys = itertools.count()


@pytest.fixture
def cast(db) -> SimpleNamespace:
    manager = User.objects.create_user("boss", role=Role.ADMIN)
    analyst = User.objects.create_user("laoli", role=Role.ANALYST)
    operator = User.objects.create_user("xiaowang", role=Role.OPERATOR)
    xiaowang = StaffFactory(name="小王", user=operator)
    laozhang = StaffFactory(name="老张")
    content = make_content()
    return SimpleNamespace(
        manager=manager,
        analyst=analyst,
        operator=operator,
        xiaowang=xiaowang,
        laozhang=laozhang,
        mine=GroupFactory(name="小王的群", owner=xiaowang),
        theirs=GroupFactory(name="老张的群", owner=laozhang),
        content=content,
        my_plan=group_plan(content, activated_at=NOW - timedelta(days=3), staff=xiaowang),
        their_plan=group_plan(content, activated_at=NOW - timedelta(days=3), staff=laozhang),
    )


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"  # the assertions read English
    return client


def page(user) -> str:
    response = login(user).get("/")
    assert response.status_code == 200
    return response.content.decode()


def members(group, count: int, *, joined_at=None, left_at=None) -> None:
    """`count` new customers in `group`, joined two days ago, still there or left at left_at."""
    GroupMembership.objects.bulk_create(
        GroupMembership(
            group=group,
            contact=contact,
            joined_at=joined_at or NOW - timedelta(days=2),
            left_at=left_at,
        )
        for contact in ContactFactory.create_batch(count)
    )


def shrinking(group, *, stayed: int, left: int, hours_ago: float = 1) -> None:
    """A group with stayed + left customers 24 h ago, `left` of whom left `hours_ago`."""
    members(group, stayed)
    members(group, left, left_at=NOW - timedelta(hours=hours_ago))


def blocked(staff, times: int, *, days_ago: float = 1) -> None:
    for _ in range(times):
        record(
            type=EventType.CONTACT_BLOCKED,
            occurred_at=NOW - timedelta(days=days_ago),
            key=f"workbench-{next(keys)}",
            contact=ContactFactory(),
            staff=staff,
        )


def deliveries(plan, staff, *, status, count=1, due_at=None, **fields) -> list[Delivery]:
    """Deliveries of `plan` sent by `staff` to new groups, as the planner would write them."""
    due_at = due_at or NOW
    day = timezone.localdate(due_at)
    return [
        Delivery.objects.create(
            plan=plan,
            step=plan.steps.get(),
            group=GroupFactory(owner=staff),
            sender=staff,
            slot_day=day,
            slot_at=due_at,
            due_at=due_at,
            due_day=day,
            due_week=day - timedelta(days=day.weekday()),
            status=status,
            **fields,
        )
        for _ in range(count)
    ]


def failed(plan, staff, count: int, *, hours_ago: float = 1) -> None:
    """Failed deliveries, logged as the delivery ledger logs them (DELIVERY_FAILED)."""
    rows = deliveries(plan, staff, status=Delivery.Status.FAILED, count=count)
    Delivery.objects.filter(pk__in=[d.pk for d in rows]).update(
        updated_at=NOW - timedelta(hours=hours_ago)
    )
    record_delivery_events(
        "SELECT id FROM sop_delivery WHERE id = ANY(%s)", ([d.pk for d in rows],)
    )


def message(staff, content, *, status=MassMessage.Status.SENT, **fields) -> MassMessage:
    return MassMessage.objects.create(
        sender=staff,
        chat_type=MassMessage.ChatType.GROUP,
        content=content,
        status=status,
        sent_at=NOW - timedelta(hours=2),
        **fields,
    )


# --- alerts fire at their threshold, not below ---------------------------------------------


def test_a_group_alert_fires_at_five_leaves_and_at_ten_percent_of_its_customers(cast):
    limits = workbench.thresholds()
    assert (limits.group_leaves_min, limits.group_leaves_percent) == (5, 10)
    # 50 customers 24 h ago: 10 % is 5, so the minimum of 5 decides.
    five_of_fifty = GroupFactory(name="五人离开")
    shrinking(five_of_fifty, stayed=45, left=5)
    four_of_fifty = GroupFactory(name="四人离开")
    shrinking(four_of_fifty, stayed=46, left=4)
    # 80 customers: 10 % is 8, more than the minimum.
    eight_of_eighty = GroupFactory(name="八人离开")
    shrinking(eight_of_eighty, stayed=72, left=8)
    seven_of_eighty = GroupFactory(name="七人离开")
    shrinking(seven_of_eighty, stayed=73, left=7)
    # Leaves before the 24 h do not count; a dismissed group is gone, not shrinking.
    long_ago = GroupFactory(name="昨天以前")
    shrinking(long_ago, stayed=10, left=9, hours_ago=25)
    dismissed = GroupFactory(name="已解散", dismissed_at=NOW - timedelta(hours=1))
    shrinking(dismissed, stayed=0, left=20)

    alerts = workbench.shrinking_groups(user=cast.manager, now=NOW, limits=limits)

    assert [(a.name, a.leaves, a.members_at_start, a.threshold) for a in alerts] == [
        ("八人离开", 8, 80, 8),
        ("五人离开", 5, 50, 5),
    ]
    shown = page(cast.manager)
    assert f'href="/groups/{eight_of_eighty.pk}/history/"' in shown
    assert "8 customers left in the last 24 hours, of 80 in the group 24 hours ago" in shown
    assert "七人离开" not in shown
    assert "at least 5 customers, and at least 10% of its customers, within 24 hours" in shown


def test_the_group_alert_thresholds_come_from_the_settings(cast, settings):
    settings.WORKBENCH_GROUP_LEAVES_MIN = 3
    settings.WORKBENCH_GROUP_LEAVES_PERCENT = 50
    shrinking(cast.mine, stayed=3, left=3)  # 3 of 6: 50 %
    shrinking(cast.theirs, stayed=5, left=4)  # 4 of 9: under 50 %

    shown = page(cast.manager)

    assert "3 customers left in the last 24 hours, of 6 in the group 24 hours ago" in shown
    assert "老张的群" not in shown
    assert "at least 3 customers, and at least 50% of its customers" in shown


def test_a_staff_alert_fires_at_five_deletions_in_seven_days_and_not_at_four(cast):
    blocked(cast.laozhang, 5)
    blocked(cast.xiaowang, 4)
    blocked(cast.xiaowang, 3, days_ago=8)  # outside the 7 days

    alerts = workbench.blocked_staff(user=cast.manager, now=NOW, limits=workbench.thresholds())

    assert [(a.name, a.blocks) for a in alerts] == [("老张", 5)]
    shown = page(cast.manager)
    assert f'href="/contacts/?staff={cast.laozhang.pk}"' in shown
    assert "deleted by 5 customers in the last 7 days" in shown
    assert "deleted by 4 customers" not in shown


def test_a_failed_delivery_in_the_last_24_hours_is_an_alert_with_a_link_to_the_failures(cast):
    failed(cast.their_plan, cast.laozhang, 2)
    failed(cast.my_plan, cast.xiaowang, 1, hours_ago=25)  # yesterday's news

    shown = page(cast.manager)

    assert f'href="/sop/plans/{cast.their_plan.pk}/deliveries/?status=failed"' in shown
    assert "2 deliveries failed in the last 24 hours" in shown
    assert f"/sop/plans/{cast.my_plan.pk}/deliveries/?status=failed" not in shown


def test_callbacks_pending_past_the_threshold_alert_managers_only(cast):
    Callback.objects.create(dedupe_key="fresh", kind="change_external_chat/update", message={})
    stale = Callback.objects.create(
        dedupe_key="stale", kind="change_external_contact/add_external_contact", message={}
    )
    limits = workbench.thresholds()
    assert workbench.callback_backlog(now=NOW, limits=limits).firing is False

    Callback.objects.filter(pk=stale.pk).update(
        received_at=NOW - timedelta(minutes=limits.callback_stale_minutes)
    )
    backlog = workbench.callback_backlog(now=NOW, limits=limits)

    assert (backlog.stale, backlog.failed, backlog.firing) == (1, 0, True)
    assert "1 pending for more than 10 minutes" in page(cast.manager)
    assert "1 pending for more than 10 minutes" in page(cast.analyst)
    assert "WeCom callbacks" not in page(cast.operator)


# --- tasks ---------------------------------------------------------------------------------


def test_tasks_list_the_mass_messages_still_to_confirm_with_their_receivers(cast):
    waiting = message(cast.xiaowang, cast.content)
    deliveries(cast.my_plan, cast.xiaowang, status=Delivery.Status.SENT, count=3, message=waiting)
    message(
        cast.xiaowang,
        cast.content,
        status=MassMessage.Status.CONFIRMED,
        confirmed_at=NOW - timedelta(hours=1),
    )
    message(cast.laozhang, cast.content)

    messages, total = workbench.confirmations_pending(user=cast.operator)
    shown = page(cast.operator)

    assert [(m.pk, m.receivers) for m in messages] == [(waiting.pk, 3)]
    assert total == 1
    assert "1 mass message waiting for confirmation in WeCom" in shown
    assert f'data-message="{waiting.pk}"' in shown
    # The SOP completion of the last 7 days: 2 created for 小王, 1 confirmed.
    assert "50.0%" in shown


def test_a_manager_sees_everyones_messages_to_confirm_with_who_must_confirm(cast):
    message(cast.xiaowang, cast.content)
    message(cast.laozhang, cast.content)

    shown = page(cast.manager)

    assert "2 mass messages waiting for confirmation in WeCom" in shown
    assert "<td>小王</td>" in shown and "<td>老张</td>" in shown


def test_tasks_show_todays_deliveries_by_plan_running_jobs_and_campaigns_of_today(cast):
    deliveries(cast.my_plan, cast.xiaowang, status=Delivery.Status.PLANNED, count=3)
    deliveries(cast.my_plan, cast.xiaowang, status=Delivery.Status.DELIVERED, count=2)
    deliveries(
        cast.my_plan, cast.xiaowang, status=Delivery.Status.PLANNED, due_at=NOW + timedelta(days=2)
    )
    job = Job.objects.create(
        kind="contacts_import",
        status=Job.Status.RUNNING,
        created_by=cast.operator,
        total=10,
        done=4,
    )
    Job.objects.create(kind="contacts_export", status=Job.Status.DONE, created_by=cast.operator)
    launch = Campaign.objects.create(
        name="双十一拼团",
        type=Campaign.Type.GROUP_BUY,
        state=Campaign.State.SCHEDULED,
        starts_at=NOW,
    )

    plans = workbench.deliveries_today(user=cast.operator, now=NOW)
    shown = page(cast.operator)

    assert [(p.name, p.to_send, p.sent, p.total) for p in plans] == [("福利群日常", 3, 2, 5)]
    assert f'href="/sop/plans/{cast.my_plan.pk}/"' in shown
    assert f'href="/io/jobs/{job.pk}/"' in shown
    assert "4 / 10 (40%)" in shown
    assert "Customer export" not in shown
    assert f'href="/campaigns/{launch.pk}/"' in shown


# --- who sees what -------------------------------------------------------------------------


def test_an_operator_sees_only_their_own_groups_staff_messages_and_failures(cast):
    shrinking(cast.mine, stayed=10, left=5)
    shrinking(cast.theirs, stayed=10, left=6)
    blocked(cast.xiaowang, 5)
    blocked(cast.laozhang, 6)
    message(cast.xiaowang, cast.content)
    message(cast.laozhang, cast.content)
    failed(cast.my_plan, cast.xiaowang, 1)
    failed(cast.their_plan, cast.laozhang, 3)

    mine, everyones = page(cast.operator), page(cast.manager)

    assert "小王的群" in mine and "老张的群" not in mine
    assert "5 customers left" in mine and "6 customers left" not in mine
    assert "deleted by 5 customers" in mine and "deleted by 6 customers" not in mine
    assert "1 mass message waiting" in mine
    assert "1 delivery failed" in mine and "3 deliveries failed" not in mine
    for seen in ("6 customers left", "deleted by 6 customers", "2 mass messages", "3 deliveries"):
        assert seen in everyones


def test_an_operator_without_a_wecom_identity_has_no_tasks_and_no_alerts(cast):
    nobody = User.objects.create_user("newbie", role=Role.OPERATOR)
    shrinking(cast.theirs, stayed=10, left=6)
    blocked(cast.laozhang, 6)
    message(cast.laozhang, cast.content)

    shown = page(nobody)

    assert 'data-empty="tasks"' in shown and 'data-empty="alerts"' in shown
    assert "老张" not in shown


def test_an_empty_workbench_says_plainly_there_is_nothing_to_do_and_nothing_wrong(cast):
    shown = page(cast.manager)

    assert "Nothing to do today" in shown
    assert "No alerts" in shown
    assert "No mass messages in the last 7 days." in shown


# --- cost ----------------------------------------------------------------------------------


def test_the_page_costs_the_same_few_queries_however_many_alerts_and_tasks(
    cast, django_assert_max_num_queries
):
    for n in range(6):
        group = GroupFactory(owner=cast.laozhang, name=f"流失群{n}")
        shrinking(group, stayed=10, left=6)
        staff = StaffFactory()
        blocked(staff, 5)
        message(staff, cast.content)
        plan = group_plan(cast.content, activated_at=NOW - timedelta(days=3))
        failed(plan, staff, 1)
        deliveries(plan, staff, status=Delivery.Status.PLANNED)
        Job.objects.create(
            kind="contacts_export", status=Job.Status.QUEUED, created_by=cast.manager
        )
    Callback.objects.create(dedupe_key="x", kind="k", message={}, status=Callback.Status.FAILED)
    client = login(cast.manager)

    with django_assert_max_num_queries(25):
        shown = client.get("/").content.decode()

    assert shown.count('data-group="') == 6
    assert shown.count("deleted by 5 customers") == 6
