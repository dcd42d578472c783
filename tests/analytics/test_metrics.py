"""Every metric against a small history worked out by hand (PRODUCT.md, "Metrics"); the
history and its period P are drawn in tests/analytics/history.py."""

from datetime import date
from decimal import Decimal

import pytest

from analytics import metrics
from analytics.metrics import Ratio
from tests.analytics.history import P, build_recorded_history


@pytest.fixture
def world(db):
    return build_recorded_history()


def test_members_and_leavers_count_people_once(world):
    A = world["A"]
    assert metrics.members_at(A, P.start) == 2
    assert metrics.members_at(A, P.end) == 3
    assert metrics.members_during(A, P) == 4  # p1, p2, p3 (joined twice), p4
    # p2 left; p3 left and came back within P, so is no loss.
    assert metrics.leave_rate(A, P) == Ratio(1, 4)
    assert metrics.retention(A, P) == Ratio(1, 2)  # of p1, p2 only p1 is still there


def test_the_shanghai_day_decides_what_falls_in_the_period(world):
    everyone = metrics.ALL_GROUPS
    # p5 joined B at 00:10 on 11-04 Shanghai time (16:10 UTC on 11-03): after P.
    assert metrics.members_during(everyone, P) == 4
    assert metrics.join_rate(world["channel"].pk, P) == Ratio(2, 200)


def test_daily_speech_metrics_average_the_days(world):
    A = world["A"]
    interaction = metrics.interaction_rate(A, P)
    assert interaction.days == {date(2026, 11, 2): Ratio(2, 2), date(2026, 11, 3): Ratio(1, 3)}
    assert interaction.value == (1 + Decimal(1) / 3) / 2
    per_member = metrics.messages_per_member(A, P)
    assert per_member.days == {date(2026, 11, 2): Ratio(4, 2), date(2026, 11, 3): Ratio(2, 3)}
    assert per_member.value == (2 + Decimal(2) / 3) / 2


def test_orders_belong_to_a_group_while_the_buyer_is_a_member(world):
    A, everyone = world["A"], metrics.ALL_GROUPS
    # A's orders: p1's O1 and O3 (O2 fully refunded; p3 bought between stays; p4 in B only).
    assert metrics.conversion(A, P) == Ratio(1, 4)
    assert metrics.average_order_value(A, P) == Ratio(14_000, 1)
    assert metrics.repurchase_rate(A, P) == Ratio(1, 1)
    # All groups add p4's O5, bought as a member of B.
    assert metrics.conversion(everyone, P) == Ratio(2, 4)
    assert metrics.average_order_value(everyone, P) == Ratio(16_000, 2)
    assert metrics.repurchase_rate(everyone, P) == Ratio(1, 2)


def test_roi_spreads_a_cost_over_its_days(world):
    assert metrics.roi(P, campaign=world["campaign"].pk) == Ratio(10_000, Decimal(1_200))
    undefined = metrics.roi(P, campaign=world["idle"].pk)
    assert undefined.value is None and str(undefined) == "—"


def test_referral_cohort_and_block_rates(world):
    A = world["A"]
    # Active in A: p1, p2, p3 spoke (p1 also ordered); p1 brought someone.
    assert metrics.referral_rate(A, P) == Ratio(1, 3)
    # Joined A on 11-03: p3 (back) and p4; p4 left on 11-04.
    assert metrics.cohort_retention(A, date(2026, 11, 3), 0) == Ratio(2, 2)
    assert metrics.cohort_retention(A, date(2026, 11, 3), 1) == Ratio(1, 2)
    # Open follows at the start: p1, p2; p2 deleted the staff member in P.
    assert metrics.block_rate(P) == Ratio(1, 2)
    assert metrics.block_rate(P, staff=world["staff"].pk) == Ratio(1, 2)


def test_a_zero_denominator_is_undefined_never_zero(world):
    empty = world["empty"]
    assert metrics.leave_rate(empty, P).value is None
    assert metrics.conversion(empty, P).value is None
    assert metrics.interaction_rate(empty, P).value is None
    assert metrics.retention(empty, P).value is None
