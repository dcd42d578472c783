"""Many groups side by side (analytics.comparison) give each group metrics.py's own numbers.

The history is tests/analytics/history.py's; P is its period (2026-11-02 and 11-03).
"""

import pytest

from analytics import comparison, metrics, rollups
from analytics.metrics import Groups, Ratio
from groups.models import GroupMembership
from tests.analytics.history import P, at, build_recorded_history
from tests.analytics.test_activity import PERIODS


@pytest.fixture
def world(db):
    world = build_recorded_history()
    rollups.rollup_recent()  # the first refresh: rollups, activity and group speech
    return world


def raw(group_id: int, period) -> tuple:
    """The group's figures, each from metrics.py's own function for the one group."""
    one = Groups((group_id,))
    orders = metrics.orders(one, period)
    leave = metrics.leave_rate(one, period)
    return (
        metrics.members_at(one, period.start),
        metrics.members_at(one, period.end),
        leave.denominator,
        leave.numerator,
        metrics.retention(one, period),
        orders,
        metrics.conversion(one, period),
        metrics.referral_rate(one, period),
        metrics.roi(period, group=group_id),
        metrics.interaction_rate(one, period),
        metrics.messages_per_member(one, period),
    )


def side_by_side(row: comparison.GroupRow) -> tuple:
    return (
        row.members_start,
        row.members_end,
        row.exposed,
        row.left,
        row.retention,
        row.orders,
        row.conversion,
        row.referral_rate,
        row.roi,
        row.interaction_rate,
        row.messages_per_member,
    )


def test_each_group_has_the_numbers_metrics_gives_it_alone(world):
    groups = world["groups"]
    ids = [g.pk for g in groups.values()]
    for period in PERIODS:
        rows = comparison.group_rows(ids, period)
        for name, group in groups.items():
            assert side_by_side(rows[group.pk]) == raw(group.pk, period), (name, period)


def test_group_a_worked_out_by_hand(world):
    a = world["groups"]["A"]
    row = comparison.group_rows([a.pk], P)[a.pk]
    # Start p1, p2; joins p3 (twice), p4; end p1, p3, p4; p2 left for good.
    assert (row.members_start, row.members_end, row.joins) == (2, 3, 2)
    assert (row.leave_rate, row.retention) == (Ratio(1, 4), Ratio(1, 2))
    # p1 bought O1 and O3 in A (O2 refunded); p3's O4 fell between two stays.
    assert (row.orders.buyers, row.orders.orders, row.orders.revenue_fen) == (1, 2, 14_000)
    # Active in A: p1, p2, p3 spoke; p1 referred someone.
    assert row.referral_rate == Ratio(1, 3)


def test_a_stay_twice_in_one_group_counts_an_order_once(world):
    a = world["groups"]["A"]
    p1 = world["people"][1]
    # A second, overlapping stay of p1 in A (as a double callback might leave it).
    GroupMembership.objects.create(group=a, contact=p1, joined_at=at(11, 1), left_at=at(11, 4))
    row = comparison.group_rows([a.pk], P)[a.pk]
    assert (row.orders.buyers, row.orders.orders, row.orders.revenue_fen) == (1, 2, 14_000)
    assert row.orders == metrics.orders(Groups((a.pk,)), P)


def test_a_group_without_members_has_every_ratio_undefined(world):
    empty = world["groups"]["empty"]
    row = comparison.group_rows([empty.pk], P)[empty.pk]
    for ratio in (row.leave_rate, row.retention, row.conversion, row.referral_rate, row.roi):
        assert ratio.value is None
    assert row.interaction_rate.value is None
