"""The all-groups figures from per-customer activity equal analytics.metrics' own, and the
incremental refresh ends where a rebuild does; the lifecycle weeks read from it equal a
count straight from the event log.

The history is tests/analytics/history.py's; P is its period (2026-11-02 and 11-03).
"""

from datetime import date, timedelta

import pytest

from analytics import activity, metrics, rollups
from analytics.cohorts import WeekStates, lifecycle_weeks
from analytics.events import record
from analytics.metrics import ALL_GROUPS, Period
from analytics.models import ContactActivity, Event, EventType
from contacts.models import Contact
from groups.models import GroupMembership
from tests.analytics.history import SH, P, at, build_history, build_recorded_history

PERIODS = [
    P,
    Period(date(2026, 9, 30), date(2026, 11, 6)),  # the whole history
    Period(date(2026, 11, 2), date(2026, 11, 2)),
    Period(date(2026, 11, 3), date(2026, 11, 3)),
    Period(date(2026, 11, 4), date(2026, 11, 4)),  # p5 joins at 00:10, p1 speaks at 00:30
    Period(date(2026, 10, 31), date(2026, 10, 31)),  # p6 leaves
    Period(date(2026, 11, 10), date(2026, 11, 20)),  # nobody moves
]


def raw(period: Period) -> activity.Everyone:
    """metrics.py's figures for every group, each from its own function."""
    leave = metrics.leave_rate(ALL_GROUPS, period)
    retention = metrics.retention(ALL_GROUPS, period)
    conversion = metrics.conversion(ALL_GROUPS, period)
    aov = metrics.average_order_value(ALL_GROUPS, period)
    repurchase = metrics.repurchase_rate(ALL_GROUPS, period)
    referral = metrics.referral_rate(ALL_GROUPS, period)
    orders = metrics.orders(ALL_GROUPS, period).orders
    return activity.Everyone(
        members_start=metrics.members_at(ALL_GROUPS, period.start),
        members_end=metrics.members_at(ALL_GROUPS, period.end),
        exposed=leave.denominator,
        left=leave.numerator,
        retained=retention.numerator,
        buyers=conversion.numerator,
        repeat_buyers=repurchase.numerator,
        orders=orders,
        revenue_fen=aov.numerator,
        active=referral.denominator,
        referrers=referral.numerator,
    )


@pytest.fixture
def world(db):
    world = build_recorded_history()
    activity.activity_rebuild()
    return world


def test_every_figure_equals_the_raw_metric(world):
    for period in PERIODS:
        assert activity.everyone(period) == raw(period), period


def test_the_figures_worked_out_by_hand(world):
    # P: members at the start p1, p2, p4 (B); at the end p1, p3, p4. Exposed p1–p4; p2 left.
    # Orders while a member: p1 O1 and O3 (O2 refunded), p4 O5; p3's O4 came between stays.
    # Active: p1 (spoke, bought), p2 (spoke), p3 (spoke), p4 (bought); p1 referred.
    everyone = activity.everyone(P)
    assert (everyone.members_start, everyone.members_end, everyone.exposed) == (3, 3, 4)
    assert (everyone.left, everyone.retained) == (1, 2)
    assert (everyone.buyers, everyone.repeat_buyers, everyone.orders) == (2, 1, 3)
    assert everyone.revenue_fen == 16_000
    assert (everyone.active, everyone.referrers) == (4, 1)
    assert everyone.referral_rate.value == metrics.Ratio(1, 4).value


def test_a_momentary_stay_counts_as_metrics_counts_it(world):
    p6 = world["people"][6]
    group_b = world["groups"]["B"]
    moment = at(11, 2, 16)
    GroupMembership.objects.create(group=group_b, contact=p6, joined_at=moment, left_at=moment)
    activity.activity_refresh([p6.pk])
    for period in PERIODS:
        assert activity.everyone(period) == raw(period), period
    # p6 was in a group for no time at all: exposed in P and gone by its end.
    assert activity.everyone(P).exposed == 5
    assert activity.everyone(P).left == 2


def test_nobody_in_any_group_leaves_every_ratio_undefined(db):
    activity.activity_rebuild()
    everyone = activity.everyone(P)
    for ratio in (
        everyone.leave_rate,
        everyone.retention,
        everyone.conversion,
        everyone.average_order_value,
        everyone.repurchase_rate,
        everyone.referral_rate,
    ):
        assert ratio.value is None


def rows() -> list[tuple]:
    return [
        tuple(str(v) for v in row)
        for row in ContactActivity.objects.order_by("contact_id").values_list(
            "contact_id", "member", "lefts", "blips", "spoke", "bought"
        )
    ]


def test_the_incremental_refresh_ends_where_a_rebuild_does(db, monkeypatch):
    monkeypatch.setattr(rollups, "OVERLAP_IDS", 0)
    world, events = build_history()
    # Three batches, each spread over the whole history; the last one read twice, as the
    # refresh's overlap does.
    for batch in (events[0::3], events[1::3], events[2::3]):
        for fields in batch:
            record(**fields)
        rollups.rollup_recent()
    monkeypatch.setattr(rollups, "OVERLAP_IDS", 10)
    rollups.rollup_recent()
    incremental = rows()
    for period in PERIODS:
        assert activity.everyone(period) == raw(period), period

    ContactActivity.objects.all().delete()
    activity.activity_rebuild()
    assert rows() == incremental
    assert len(incremental) == 6  # p1 … p6, each in a group at some time


def test_a_dismissed_group_ends_its_members_stays(world):
    group_b = world["groups"]["B"]
    p4 = world["people"][4]
    end = at(11, 20)
    rollups.rollup_recent()
    GroupMembership.objects.filter(group=group_b, left_at__isnull=True).update(left_at=end)
    record(type=EventType.GROUP_DISMISSED, occurred_at=end, key="dismiss-b", group=group_b)
    rollups.rollup_recent()
    after = Period(date(2026, 11, 21), date(2026, 11, 21))
    assert activity.everyone(after) == raw(after)
    assert activity.everyone(after).members_start == 2  # p1 and p3 in A; p4, p5 gone with B
    assert ContactActivity.objects.filter(contact_id=p4.pk).exists()


def lifecycle_from_events(weeks: list[date]) -> list[WeekStates]:
    """cohorts.lifecycle_weeks' states counted straight from the events: active in a week =
    a MESSAGE in a group or an ORDER_PAID on one of its Shanghai days."""
    active = set()
    first_active: dict[int, date] = {}
    for contact_id, type, group_id, occurred_at in Event.objects.filter(
        type__in=[EventType.MESSAGE, EventType.ORDER_PAID], contact__isnull=False
    ).values_list("contact_id", "type", "group_id", "occurred_at"):
        if type == EventType.MESSAGE and group_id is None:
            continue
        day = occurred_at.astimezone(SH).date()
        active.add((contact_id, day - timedelta(days=day.weekday())))
        first_active[contact_id] = min(first_active.get(contact_id, day), day)
    states = []
    for week in weeks:
        now = {c for c, w in active if w == week}
        before = {c for c, w in active if w == week - timedelta(days=7)}
        added = Contact.objects.filter(
            first_added_at__gte=at(week.month, week.day, 0),
            first_added_at__lt=at(week.month, week.day, 0) + timedelta(days=7),
        ).count()
        states.append(
            WeekStates(
                week=week,
                new=added,
                returning=len(now & before),
                resurrected=len({c for c in now - before if first_active[c] < week}),
                dormant=len(before - now),
            )
        )
    return states


def test_the_lifecycle_weeks_equal_a_count_from_the_events(world):
    p = world["people"]
    group_a = world["groups"]["A"]
    # Besides the history: p2 also spoke the week before P's (returning in P's week); p6
    # spoke in October and buys on 11-10 (resurrected that week); p5 wrote outside any group
    # (not active) and was first added in P's week.
    record(type=EventType.MESSAGE, occurred_at=at(10, 26), key="x1", contact=p[2], group=group_a)
    record(type=EventType.MESSAGE, occurred_at=at(10, 5), key="x2", contact=p[6], group=group_a)
    record(
        type=EventType.ORDER_PAID,
        occurred_at=at(11, 10),
        key="x3",
        contact=p[6],
        amount=1_000,
        payload={"order_no": "X3"},
    )
    record(type=EventType.MESSAGE, occurred_at=at(10, 27), key="x4", contact=p[5])
    Contact.objects.filter(pk=p[5].pk).update(first_added_at=at(11, 3))
    activity.activity_rebuild()
    weeks = [date(2026, 10, 5) + timedelta(days=7 * n) for n in range(7)]  # … 11-16

    shown = lifecycle_weeks(first=date(2026, 10, 7), last=date(2026, 11, 16))

    assert shown == lifecycle_from_events(weeks)
    by_week = {w.week: (w.new, w.returning, w.resurrected, w.dormant) for w in shown}
    assert by_week[date(2026, 10, 12)] == (0, 0, 0, 1)  # p6
    assert by_week[date(2026, 11, 2)] == (1, 1, 0, 0)  # p5 added; p2; p1, p3, p4 first
    assert by_week[date(2026, 11, 9)] == (0, 0, 1, 4)  # p6; p1 … p4
