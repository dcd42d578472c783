"""Daily rollups agree with the raw metrics, and the incremental refresh with a full rebuild.

The history is tests/analytics/history.py's; P is its period (2026-11-02 and 11-03).
"""

from datetime import date, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from analytics import metrics, rollups
from analytics.events import record
from analytics.metrics import ALL_GROUPS, Groups, Period
from analytics.models import DailyRollup, EventType, RollupWatermark
from analytics.tasks import rollups_refresh
from groups.models import GroupMembership
from tests.analytics.history import P, at, build_history, build_recorded_history

WHOLE = Period(date(2026, 9, 30), date(2026, 11, 6))  # the history with a quiet day each side


@pytest.fixture
def world(db):
    world = build_recorded_history()
    rollups.rollup_rebuild(WHOLE.first, WHOLE.last)
    return world


def slices(world) -> dict[str, tuple[Groups, str]]:
    groups = world["groups"]
    every = Groups(tuple(g.pk for g in groups.values()))
    return {
        "A": (world["A"], rollups.group_slice(groups["A"].pk)),
        "B": (world["B"], rollups.group_slice(groups["B"].pk)),
        "empty": (world["empty"], rollups.group_slice(groups["empty"].pk)),
        "all": (ALL_GROUPS, rollups.ALL),
        # The three groups share one owner and one type.
        "owner": (every, rollups.owner_slice(world["staff"].pk)),
        "type": (every, rollups.type_slice(groups["A"].type)),
    }


def table() -> list[tuple]:
    return list(
        DailyRollup.objects.order_by("slice", "day").values_list("slice", "day", *rollups.FIGURES)
    )


def test_daily_speech_metrics_from_rollups_equal_the_raw_ones(world):
    for name, (groups, slice) in slices(world).items():
        for period in (P, WHOLE):
            assert rollups.interaction_rate(slice, period) == metrics.interaction_rate(
                groups, period
            ), name
            assert rollups.messages_per_member(slice, period) == metrics.messages_per_member(
                groups, period
            ), name
    A = slices(world)["A"][1]
    assert rollups.interaction_rate(A, P).value == (1 + Decimal(1) / 3) / 2
    assert rollups.messages_per_member(A, P).value == (2 + Decimal(2) / 3) / 2


def test_each_day_of_a_slice_matches_the_metrics_for_that_day(world):
    for name, (groups, slice) in slices(world).items():
        series = rollups.daily_series(slice, WHOLE)
        assert list(series) == WHOLE.days
        for day, row in series.items():
            one_day = Period(day, day)
            assert row.members_end == metrics.members_at(groups, one_day.end), (name, day)
            assert row.joins == metrics.cohort_retention(groups, day, 0).denominator, (name, day)
            assert row.leaves == metrics.leave_rate(groups, one_day).numerator, (name, day)
            assert row.buyers == metrics.conversion(groups, one_day).numerator, (name, day)
            revenue = metrics.average_order_value(groups, one_day).numerator
            assert row.revenue_fen == revenue, (name, day)


def test_a_groups_days_read_as_worked_out_by_hand(world):
    A = rollups.group_slice(world["groups"]["A"].pk)
    day2, day3 = rollups.daily_series(A, P).values()
    # 11-02: p2 left, p3 joined; p1 (3 messages in one row) and p2 spoke; p1 bought O1.
    assert (day2.members_end, day2.joins, day2.leaves) == (2, 1, 1)
    assert (day2.speakers, day2.messages) == (2, 4)
    assert (day2.buyers, day2.orders, day2.revenue_fen) == (1, 1, 10_000)
    # 11-03: p3 left and came back (no loss), p4 joined; O2 was refunded that day, p3 bought
    # O4 between stays, p4 bought O5 before joining A: only O3 is A's.
    assert (day3.members_end, day3.joins, day3.leaves) == (3, 2, 0)
    assert (day3.speakers, day3.messages) == (1, 2)
    assert (day3.buyers, day3.orders, day3.revenue_fen) == (1, 1, 4_000)
    everyone = rollups.daily_series(rollups.ALL, P)[date(2026, 11, 3)]
    assert (everyone.buyers, everyone.orders, everyone.revenue_fen) == (2, 2, 6_000)


def test_a_channel_counts_its_joins_exposures_and_the_contacts_it_brought(world):
    channel = world["channel"]
    world["people"][3].source_channel = channel
    world["people"][3].save(update_fields=["source_channel"])
    rollups.rollup_rebuild(P.first, date(2026, 11, 4))
    series = rollups.daily_series(rollups.channel_slice(channel.pk), WHOLE)
    for day, row in series.items():
        join_rate = metrics.join_rate(channel.pk, Period(day, day))
        assert (row.joins, row.exposures) == (join_rate.numerator, join_rate.denominator), day
    assert sum(row.joins for row in series.values()) == 3
    assert sum(row.exposures for row in series.values()) == 250
    # p3 came through the channel: a member at the end of 11-03, who spoke twice and bought
    # O4 while in no group at all (a channel's order needs no membership).
    day3 = series[date(2026, 11, 3)]
    assert (day3.members_end, day3.speakers, day3.messages) == (1, 1, 2)
    assert (day3.buyers, day3.orders, day3.revenue_fen) == (1, 1, 3_000)


def test_the_incremental_refresh_ends_where_a_rebuild_does(db, monkeypatch):
    # No overlap: each refresh reads only the events added since the last one.
    monkeypatch.setattr(rollups, "OVERLAP_IDS", 0)
    world, events = build_history()
    recomputed = set()
    # Three batches, each spread over the whole history, so later batches change old days.
    for batch in (events[0::3], events[1::3], events[2::3]):
        for fields in batch:
            record(**fields)
        recomputed.update(rollups.rollup_recent())
    incremental = table()
    A = slices(world)["A"][1]
    assert rollups.interaction_rate(A, P) == metrics.interaction_rate(world["A"], P)

    first, last = min(recomputed), max(recomputed)
    # p6's join on 10-01 touched every day from then to today.
    assert first == date(2026, 10, 1) and last == rollups.shanghai_today()
    assert recomputed == set(Period(first, last).days)
    DailyRollup.objects.all().delete()
    rollups.rollup_rebuild(first, last)
    assert table() == incremental
    assert len(incremental) > 0


def test_a_late_event_for_a_past_day_is_picked_up(world):
    rollups.rollup_recent()
    A = slices(world)["A"][1]
    p = world["people"]
    group_a = world["groups"]["A"]
    assert rollups.daily_series(A, P)[P.first].speakers == 2

    # Recorded now for 11-02; meanwhile a later event id was already read (out-of-order
    # commit), which the overlap of rereads covers.
    late, _ = record(
        type=EventType.MESSAGE, occurred_at=at(11, 2, 20), key="late-1", contact=p[4], group=group_a
    )
    RollupWatermark.objects.filter(name=rollups.WATERMARK).update(event_id=late.id + 10)
    assert P.first in rollups.rollup_recent()
    row = rollups.daily_series(A, P)[P.first]
    assert (row.speakers, row.messages) == (3, 5)
    assert rollups.interaction_rate(A, P) == metrics.interaction_rate(world["A"], P)

    # A late join changes the members of every day after it, eventless days included.
    quiet_day = date(2026, 11, 10)
    quiet = Period(quiet_day, quiet_day)
    assert rollups.daily_series(A, quiet)[quiet_day].members_end == 2  # p1, p3
    GroupMembership.objects.create(group=group_a, contact=p[5], joined_at=at(11, 2, 10))
    record(
        type=EventType.GROUP_JOINED, occurred_at=at(11, 2, 10), key="late-2", contact=p[5],
        group=group_a,
    )  # fmt: skip
    rollups.rollup_recent()
    assert rollups.daily_series(A, quiet)[quiet_day].members_end == 3
    assert metrics.members_at(world["A"], quiet.end) == 3


def test_the_refresh_task_advances_the_watermark(world):
    last, _ = record(
        type=EventType.MESSAGE, occurred_at=at(11, 3, 9), key="task-1",
        contact=world["people"][1], group=world["groups"]["A"],
    )  # fmt: skip
    rollups_refresh.apply()
    assert RollupWatermark.objects.get(name=rollups.WATERMARK).event_id == last.id
    row = rollups.daily_series(rollups.ALL, P)[date(2026, 11, 3)]
    assert (row.speakers, row.messages) == (2, 3)


def test_the_rebuild_command_recomputes_the_days_asked_for(world):
    DailyRollup.objects.all().delete()
    out = StringIO()
    call_command("rollups_rebuild", "--first", "2026-11-02", "--last", "2026-11-03", stdout=out)
    assert "2 day(s)" in out.getvalue()
    assert set(DailyRollup.objects.values_list("day", flat=True)) == set(P.days)

    DailyRollup.objects.all().delete()
    call_command("rollups_rebuild", "--days", "2", stdout=StringIO())
    today = rollups.shanghai_today()
    days = set(DailyRollup.objects.values_list("day", flat=True))
    assert days <= {today, today - timedelta(days=1)} and days


def test_the_rebuild_command_names_the_bad_option(db):
    with pytest.raises(CommandError, match="--first"):
        call_command("rollups_rebuild", "--first", "2026-13-01", "--last", "2026-11-03")
    with pytest.raises(CommandError, match="--last"):
        call_command("rollups_rebuild", "--first", "2026-11-01")
    with pytest.raises(CommandError, match="--days"):
        call_command("rollups_rebuild", "--days", "0")


def test_a_bad_slice_is_refused_with_its_name(db):
    with pytest.raises(ValueError, match="slice"):
        rollups.daily_series("group:abc", P)
