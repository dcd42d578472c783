"""The all-groups figures from per-customer activity equal analytics.metrics' own, and the
incremental refresh ends where a rebuild does.

The history is tests/analytics/history.py's; P is its period (2026-11-02 and 11-03).
"""

from datetime import date

import pytest

from analytics import activity, metrics, rollups
from analytics.events import record
from analytics.metrics import ALL_GROUPS, Period
from analytics.models import ContactActivity, EventType
from groups.models import GroupMembership
from tests.analytics.history import P, at, build_history, build_recorded_history

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
            "contact_id", "member", "lefts", "blips", "spoke"
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
