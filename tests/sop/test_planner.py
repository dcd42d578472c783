"""The planner: slots become deliveries once, under quiet hours, holidays and shared budgets."""

import threading
from datetime import time, timedelta

import pytest
from django.db import connection

from analytics.events import record
from analytics.models import Event, EventType
from sop.models import Delivery, Plan, SkipReason, Step
from sop.planner import plan_due
from sop.sending import dispatch_due
from sop.services import plan_pause, plan_preview
from tests.factories import GroupFactory, StaffFactory
from tests.sop.builders import broadcast, customer, group_plan, make_content, shanghai

pytestmark = pytest.mark.django_db


def test_a_daily_step_reaches_every_target_group_once(content):
    owners = StaffFactory.create_batch(2)
    groups = [GroupFactory(owner=owners[i % 2]) for i in range(5)]
    GroupFactory(owner=owners[0], type="acquisition")  # not a benefit group: not targeted
    plan = group_plan(content, activated_at=shanghai(2026, 11, 23, 7, 0), group_types=["benefit"])

    first = plan_due(now=shanghai(2026, 11, 23, 7, 31))
    again = plan_due(now=shanghai(2026, 11, 23, 7, 31))  # a duplicate beat tick

    assert first.planned == 5 and again.planned == 0
    deliveries = Delivery.objects.filter(plan=plan)
    assert sorted(d.group_id for d in deliveries) == sorted(g.pk for g in groups)
    assert {d.slot_at for d in deliveries} == {shanghai(2026, 11, 23, 7, 30)}
    assert {d.sender_id for d in deliveries} == {o.pk for o in owners}
    # The next day's slot is a new delivery for each group; the planned events are logged.
    plan_due(now=shanghai(2026, 11, 24, 7, 30))
    assert Delivery.objects.filter(plan=plan).count() == 10
    assert Event.objects.filter(type=EventType.DELIVERY_PLANNED).count() == 10


@pytest.mark.django_db(transaction=True)
def test_two_planner_runs_at_once_plan_once(content):
    GroupFactory.create_batch(20, owner=StaffFactory())
    group_plan(content, activated_at=shanghai(2026, 11, 23, 7, 0))
    results, barrier = [], threading.Barrier(2)

    def run():
        barrier.wait()
        results.append(plan_due(now=shanghai(2026, 11, 23, 7, 31)).planned)
        connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 20]
    assert Delivery.objects.count() == 20


def test_missed_slots_are_caught_up_within_the_window_and_expired_beyond(content, settings):
    settings.SOP_CATCH_UP_MINUTES = 180
    GroupFactory(owner=StaffFactory())
    plan = group_plan(content, at=time(7, 30), activated_at=shanghai(2026, 11, 21, 7, 0))
    Step.objects.create(plan=plan, content=content, at_time=time(12, 0), position=2)

    # Beat was down from the 21st to the 23rd at 09:00.
    plan_due(now=shanghai(2026, 11, 23, 9, 0))

    by_slot = {d.slot_at: d for d in Delivery.objects.filter(plan=plan)}
    assert by_slot[shanghai(2026, 11, 23, 7, 30)].status == Delivery.Status.PLANNED
    assert by_slot[shanghai(2026, 11, 22, 12, 0)].reason == SkipReason.EXPIRED
    assert by_slot[shanghai(2026, 11, 21, 7, 30)].status == Delivery.Status.SKIPPED
    assert shanghai(2026, 11, 23, 12, 0) not in by_slot  # not due yet


def test_quiet_hours_hold_until_morning_then_release(content, settings):
    settings.SOP_QUIET_HOURS = "22:00-08:00"
    group = GroupFactory(owner=StaffFactory())
    group_plan(content, at=time(22, 30), activated_at=shanghai(2026, 11, 23, 20, 0))

    plan_due(now=shanghai(2026, 11, 23, 22, 31))

    held = Delivery.objects.get()
    assert held.status == Delivery.Status.PLANNED  # held, not dropped
    assert held.reason == SkipReason.QUIET_HOURS
    assert held.due_at == shanghai(2026, 11, 24, 8, 0)
    assert dispatch_due(now=shanghai(2026, 11, 24, 7, 59)) == []
    [message] = dispatch_due(now=shanghai(2026, 11, 24, 8, 0))
    assert Delivery.objects.get(group=group, message=message).status == Delivery.Status.QUEUED


def test_public_holidays_are_skipped_or_shifted_per_plan(content, settings):
    settings.WECOM_MASS_MESSAGES_PER_DAY = 3
    GroupFactory(owner=StaffFactory())
    skip = group_plan(
        content,
        at=time(10, 0),
        activated_at=shanghai(2026, 9, 30, 8, 0),
        holiday_policy=Plan.HolidayPolicy.SKIP,
    )
    shift = group_plan(
        content,
        at=time(10, 0),
        activated_at=shanghai(2026, 9, 30, 8, 0),
        holiday_policy=Plan.HolidayPolicy.SHIFT,
    )
    plan_due(now=shanghai(2026, 9, 30, 10, 1))  # an ordinary day: both send

    plan_due(now=shanghai(2026, 10, 1, 10, 1))  # National Day

    holiday = shanghai(2026, 10, 1).date()
    skipped = Delivery.objects.get(plan=skip, slot_day=holiday)
    assert (skipped.status, skipped.reason) == (Delivery.Status.SKIPPED, SkipReason.HOLIDAY)
    shifted = Delivery.objects.get(plan=shift, slot_day=holiday)
    assert shifted.reason == SkipReason.HOLIDAY_SHIFTED
    assert shifted.due_at == shanghai(2026, 10, 8, 10, 0)  # the holiday runs 1–7 October
    assert Delivery.objects.filter(slot_day=shanghai(2026, 9, 30).date(), reason="").count() == 2


def test_the_budget_holds_when_two_plans_and_a_campaign_compete(content, settings):
    settings.SOP_CONTACT_PUSHES_PER_DAY = 1
    settings.WECOM_MASS_MESSAGES_PER_DAY = 1
    staff = StaffFactory()
    alice = customer(staff)
    start = shanghai(2026, 11, 23, 9, 0)
    low = broadcast(
        content, [alice], send_at=shanghai(2026, 11, 23, 10, 0), activated_at=start, priority=10
    )
    mid = broadcast(
        content, [alice], send_at=shanghai(2026, 11, 23, 10, 0), activated_at=start, priority=50
    )
    from campaigns.models import Campaign

    campaign = Campaign.objects.create(name="双11返场", type=Campaign.Type.COUPON)
    high = broadcast(
        content,
        [alice],
        send_at=shanghai(2026, 11, 23, 10, 0),
        activated_at=start,
        priority=90,
        campaign=campaign,
    )

    plan_due(now=shanghai(2026, 11, 23, 10, 1))

    outcome = {d.plan_id: (d.status, d.reason) for d in Delivery.objects.filter(contact=alice)}
    assert outcome[high.pk] == (Delivery.Status.PLANNED, "")
    assert outcome[mid.pk] == (Delivery.Status.SKIPPED, SkipReason.BUDGET_DAY)
    assert outcome[low.pk] == (Delivery.Status.SKIPPED, SkipReason.BUDGET_DAY)
    skipped = Event.objects.filter(type=EventType.DELIVERY_SKIPPED, contact_id=alice.pk)
    assert skipped.count() == 2 and {e.payload["reason"] for e in skipped} == {"budget_day"}


def test_a_higher_priority_message_takes_a_slot_from_a_planned_but_unsent_one(content, settings):
    settings.SOP_CONTACT_PUSHES_PER_DAY = 1
    settings.WECOM_MASS_MESSAGES_PER_DAY = 5
    staff = StaffFactory()
    bob = customer(staff)
    start = shanghai(2026, 11, 23, 20, 0)
    # Planned at 22:30, held by quiet hours until 08:00 tomorrow…
    early = broadcast(
        content, [bob], send_at=shanghai(2026, 11, 23, 22, 30), activated_at=start, priority=20
    )
    plan_due(now=shanghai(2026, 11, 23, 22, 31))
    # …when a more important message for tomorrow 09:00 arrives.
    late = broadcast(
        content, [bob], send_at=shanghai(2026, 11, 24, 9, 0), activated_at=start, priority=80
    )
    result = plan_due(now=shanghai(2026, 11, 24, 7, 0) + timedelta(hours=2, minutes=1))

    assert result.displaced == 1
    assert Delivery.objects.get(plan=early).reason == SkipReason.BUDGET_DAY
    assert Delivery.objects.get(plan=late).status == Delivery.Status.PLANNED


def test_a_weekly_budget_spans_days(content, settings):
    settings.SOP_GROUP_PUSHES_PER_DAY = 1
    settings.SOP_GROUP_PUSHES_PER_WEEK = 2
    settings.WECOM_MASS_MESSAGES_PER_DAY = 5
    group = GroupFactory(owner=StaffFactory())
    group_plan(content, at=time(10, 0), activated_at=shanghai(2026, 11, 23, 0, 0))  # a Monday

    for day in (23, 24, 25, 26):
        plan_due(now=shanghai(2026, 11, day, 10, 0))

    days = Delivery.objects.filter(group=group).order_by("slot_at")
    assert [d.status for d in days] == ["planned", "planned", "skipped", "skipped"]
    assert days[2].reason == SkipReason.BUDGET_WEEK


def _joined(contact, staff, at):
    record(
        type=EventType.CONTACT_ADDED,
        occurred_at=at,
        key=f"added:{contact.pk}:{at}",
        contact=contact,
        staff=staff,
    )


def test_a_journey_fires_at_t0_t7_t21_relative_to_the_event(settings):
    settings.SOP_CONTACT_PUSHES_PER_DAY = 3
    settings.WECOM_MASS_MESSAGES_PER_DAY = 3
    staff = StaffFactory()
    carol = customer(staff)
    welcome, tips, coupon = (make_content(title=t, text=t) for t in ("欢迎", "使用技巧", "复购券"))
    plan = Plan.objects.create(
        name="新客旅程",
        kind=Plan.Kind.JOURNEY,
        trigger=Plan.Trigger.CONTACT_ADDED,
        status=Plan.Status.ACTIVE,
        activated_at=shanghai(2026, 11, 1, 0, 0),
        planned_until=shanghai(2026, 11, 1, 0, 0),
    )
    Step.objects.create(plan=plan, content=welcome, position=1)  # T+0
    Step.objects.create(plan=plan, content=tips, position=2, offset_days=7, at_time=time(10, 0))
    Step.objects.create(
        plan=plan,
        content=coupon,
        position=3,
        offset_days=21,
        at_time=time(10, 0),
        only_if_no_order_since_trigger=True,
    )
    added = shanghai(2026, 11, 2, 15, 20)
    _joined(carol, staff, added)

    plan_due(now=added + timedelta(minutes=1))
    assert [d.step.content for d in Delivery.objects.all()] == [welcome]
    assert Delivery.objects.get().due_at == added and Delivery.objects.get().sender == staff

    plan_due(now=shanghai(2026, 11, 9, 9, 59))
    assert Delivery.objects.count() == 1  # T+7 is at 10:00
    plan_due(now=shanghai(2026, 11, 9, 10, 0))
    assert Delivery.objects.get(step__content=tips).due_at == shanghai(2026, 11, 9, 10, 0)

    plan_due(now=shanghai(2026, 11, 23, 10, 0))
    assert Delivery.objects.get(step__content=coupon).status == Delivery.Status.PLANNED
    assert Delivery.objects.filter(plan=plan).count() == 3


def test_a_journey_step_is_skipped_for_someone_who_ordered_since(content):
    staff = StaffFactory()
    dave = customer(staff)
    plan = Plan.objects.create(
        name="未下单提醒",
        kind=Plan.Kind.JOURNEY,
        trigger=Plan.Trigger.CONTACT_ADDED,
        status=Plan.Status.ACTIVE,
        activated_at=shanghai(2026, 11, 1),
        planned_until=shanghai(2026, 11, 1),
    )
    Step.objects.create(
        plan=plan,
        content=content,
        offset_days=1,
        at_time=time(10, 0),
        only_if_no_order_since_trigger=True,
    )
    _joined(dave, staff, shanghai(2026, 11, 2, 9, 0))
    plan_due(now=shanghai(2026, 11, 2, 9, 1))
    record(
        type=EventType.ORDER_PAID,
        occurred_at=shanghai(2026, 11, 2, 20, 0),
        key="order-1",
        contact=dave,
        amount=9900,
    )

    plan_due(now=shanghai(2026, 11, 3, 10, 0))

    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.reason) == (Delivery.Status.SKIPPED, SkipReason.ORDERED)


def test_opted_out_and_blocked_customers_get_nothing_and_the_reason_is_kept(content):
    staff = StaffFactory()
    gone = customer(staff)
    gone.follows.update(deleted_by_contact_at=shanghai(2026, 11, 20))
    quiet = customer(staff, opted_out=True)
    fine = customer(staff)
    broadcast(
        content,
        [gone, quiet, fine],
        send_at=shanghai(2026, 11, 23, 10, 0),
        activated_at=shanghai(2026, 11, 23, 9, 0),
    )

    plan_due(now=shanghai(2026, 11, 23, 10, 0))

    reasons = {d.contact_id: d.reason for d in Delivery.objects.all()}
    assert reasons == {gone.pk: SkipReason.BLOCKED, quiet.pk: SkipReason.OPTED_OUT, fine.pk: ""}


def test_pausing_and_resuming_never_plans_a_slot_twice(content, django_user_model):
    manager = django_user_model.objects.create_user("boss", password="x", role="admin")
    GroupFactory(owner=StaffFactory())
    plan = group_plan(content, at=time(7, 30), activated_at=shanghai(2026, 11, 23, 7, 0))
    Step.objects.create(plan=plan, content=content, at_time=time(22, 30), position=2)
    plan_due(now=shanghai(2026, 11, 23, 7, 31))  # 07:30: held until 08:00 by quiet hours
    plan_due(now=shanghai(2026, 11, 23, 7, 45))  # paused before it went out
    plan_due(now=shanghai(2026, 11, 23, 22, 31))  # 22:30: held until tomorrow morning
    assert plan_pause(plan, user=manager, now=shanghai(2026, 11, 23, 23, 0)) == 2

    plan.refresh_from_db()
    from sop.services import plan_activate

    plan_activate(plan, user=manager, now=shanghai(2026, 11, 24, 7, 0))
    plan_due(now=shanghai(2026, 11, 24, 7, 31))

    today = Delivery.objects.filter(plan=plan, slot_day=shanghai(2026, 11, 23).date())
    assert {d.reason for d in today} == {SkipReason.PLAN_PAUSED}
    assert Delivery.objects.filter(plan=plan, status="planned").count() == 1  # the 24th, 07:30


def test_the_preview_shows_the_next_seven_days_and_keeps_nothing(content, settings):
    settings.SOP_GROUP_PUSHES_PER_DAY = 3
    settings.WECOM_MASS_MESSAGES_PER_DAY = 3
    GroupFactory.create_batch(3, owner=StaffFactory())
    plan = Plan.objects.create(name="草稿", kind=Plan.Kind.GROUP, holiday_policy="skip")
    Step.objects.create(plan=plan, content=content, at_time=time(12, 0), weekdays=[0, 2, 4])

    preview = plan_preview(plan, now=shanghai(2026, 11, 23, 9, 0))  # Monday

    assert preview.planned == 9  # Mon, Wed, Fri × 3 groups
    assert [d["day"].isoformat() for d in preview.days] == [
        "2026-11-23",
        "2026-11-25",
        "2026-11-27",
    ]
    assert preview.rows[0].due_at == shanghai(2026, 11, 23, 12, 0)
    assert not Delivery.objects.exists() and not Event.objects.exists()


def test_a_group_plan_can_choose_groups_by_label_and_step_by_stage(content):
    owner = StaffFactory()
    baby_east = GroupFactory(owner=owner, labels=["母婴", "华东"], stage="activation")
    GroupFactory(owner=owner, labels=["母婴"], stage="founding")  # the step wants activation
    GroupFactory(owner=owner, labels=["美妆"], stage="activation")
    plan = group_plan(
        content,
        at=time(12, 0),
        activated_at=shanghai(2026, 11, 23, 9, 0),
        group_labels=["母婴", "宠物"],
    )
    plan.steps.update(group_stages=["activation"])

    plan_due(now=shanghai(2026, 11, 23, 12, 0))

    assert [d.group for d in Delivery.objects.all()] == [baby_east]


def test_thirty_quiet_days_bring_a_message_the_next_weekend_morning(content, settings):
    settings.WECOM_MASS_MESSAGES_PER_DAY = 3
    staff = StaffFactory()
    quiet = customer(staff, last_active_at=shanghai(2026, 10, 19, 15, 0))  # → 11-18 (Wed)
    customer(staff, last_active_at=shanghai(2026, 11, 10, 9, 0))  # active lately: nothing
    plan = Plan.objects.create(
        name="沉睡唤醒",
        kind=Plan.Kind.JOURNEY,
        trigger=Plan.Trigger.INACTIVE,
        inactive_days=30,
        status=Plan.Status.ACTIVE,
        activated_at=shanghai(2026, 11, 18, 9, 0),
        planned_until=shanghai(2026, 11, 18, 9, 0),
    )
    Step.objects.create(plan=plan, content=content, at_time=time(10, 0), weekdays=[5, 6])

    plan_due(now=shanghai(2026, 11, 18, 16, 0))
    assert not Delivery.objects.exists()  # enrolled; its slot is Saturday
    plan_due(now=shanghai(2026, 11, 21, 10, 0))

    delivery = Delivery.objects.get()
    assert delivery.contact == quiet and delivery.slot_at == shanghai(2026, 11, 21, 10, 0)


def test_each_staff_member_gets_one_task_per_content_however_many_are_due(
    content, monkeypatch, settings
):
    settings.WECOM_MASS_MESSAGES_PER_DAY = 3
    import sop.sending

    monkeypatch.setattr(sop.sending, "DISPATCH_CHUNK", 4)  # smaller than one owner's groups
    owners = StaffFactory.create_batch(3)
    for owner in owners:
        GroupFactory.create_batch(5, owner=owner)
    plain = make_content(title="午间分享", text="今天的分享来啦")  # no {name}: one text for all
    group_plan(plain, at=time(12, 0), activated_at=shanghai(2026, 11, 23, 9, 0))
    plan_due(now=shanghai(2026, 11, 23, 12, 0))

    messages = dispatch_due(now=shanghai(2026, 11, 23, 12, 0))

    assert len(messages) == 3
    per_sender = {
        d["sender_id"] for d in Delivery.objects.values("sender_id", "message_id").distinct()
    }
    assert per_sender == {o.pk for o in owners}
    assert Delivery.objects.values("message_id").distinct().count() == 3
