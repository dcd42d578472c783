"""The group comparison's stored figures (analytics.group_snapshot): read only while they
are still the live ones; anything that could change them retires them until the next
refresh takes them afresh.

The history is tests/analytics/history.py's; P is its period (2026-11-02 and 11-03). At
P's end group A has 3 members (p1, p3, p4), group B 1 (p4).
"""

import dataclasses
from datetime import timedelta
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics import comparison, dashboard, group_snapshot, rollups
from analytics.events import record
from analytics.group_snapshot import snapshot_keep, snapshot_rows, snapshot_take
from analytics.metrics import Period
from analytics.models import EventType, GroupSortSnapshot
from analytics.tasks import rollups_refresh
from groups.services import membership_join
from scrm.models import Role, User
from tests.analytics.history import P, at, build_recorded_history
from tests.analytics.test_analytics_pages import shown_table
from tests.conftest import wait_for


@pytest.fixture
def world(db):
    world = build_recorded_history()
    rollups.rollup_recent()  # the first refresh: rollups, activity and group speech
    return world


def ids(world) -> list[int]:
    return [g.pk for g in world["groups"].values()]


def figures(rows: dict) -> dict:
    """Each row's figures, the daily figures by their means (all that sorting reads)."""
    return {
        gid: (
            dataclasses.replace(row, interaction_rate=None, messages_per_member=None),
            row.interaction_rate.value,
            row.messages_per_member.value,
        )
        for gid, row in rows.items()
    }


def members_end(world) -> dict[str, int]:
    rows = snapshot_rows(P, ids(world))
    return {name: rows[g.pk].members_end for name, g in world["groups"].items()}


def test_the_stored_figures_are_the_computed_ones(world):
    assert snapshot_take(P) is not None

    computed = comparison.group_rows(ids(world), P, parts=group_snapshot.PARTS)
    assert figures(snapshot_rows(P, ids(world))) == figures(computed)
    a = world["groups"]["A"]
    assert figures(snapshot_rows(P, [a.pk])) == figures({a.pk: computed[a.pk]})
    assert computed[a.pk].interaction_rate.value is not None
    # Another period has none.
    assert snapshot_rows(rollups.rebuild_period(), ids(world)) is None


def test_people_joining_late_within_the_period_retire_it_until_the_next_refresh(world):
    snapshot_take(P)
    b = world["groups"]["B"]
    for n in (2, 3, 6):  # WeCom's callbacks arrive late: they joined B on 11-02
        membership_join(group=b, contact=world["people"][n], joined_at=at(11, 2, 8))

    assert snapshot_rows(P, ids(world)) is None
    # Not taken again before the refresh has rolled the joins up.
    assert snapshot_take(P) is None

    rollups.rollup_recent()
    snapshot_keep(P)
    assert snapshot_rows(P, ids(world)) is not None
    assert members_end(world)["B"] == 4
    assert members_end(world)["A"] == 3


def test_todays_events_leave_it_standing_and_the_refresh_moves_it_on(world):
    taken = snapshot_take(P)
    record(
        type=EventType.MESSAGE, occurred_at=timezone.now(), key="today",
        contact=world["people"][1], group=world["groups"]["A"],
    )  # fmt: skip

    assert snapshot_rows(P, ids(world)) is not None
    rollups.rollup_recent()
    kept = snapshot_keep(P)
    assert kept.pk == taken.pk  # not taken afresh
    kept.refresh_from_db()
    assert kept.event_id > taken.event_id
    assert snapshot_rows(P, ids(world)) is not None


def test_a_cost_recorded_today_for_the_period_retires_it(world):
    snapshot_take(P)
    record(
        type=EventType.COST_RECORDED, occurred_at=timezone.now(), key="cost",
        group=world["groups"]["B"], amount=50_000,
        payload={"period_start": "2026-11-02", "period_end": "2026-11-03", "note": ""},
    )  # fmt: skip

    assert snapshot_rows(P, ids(world)) is None
    rollups.rollup_recent()
    snapshot_keep(P)
    b = world["groups"]["B"]
    assert snapshot_rows(P, [b.pk])[b.pk].cost_fen == 50_000


def test_the_refresh_drops_other_ranges_a_day_after_they_were_stored(world):
    def earlier(days: int) -> Period:
        return Period(P.first - timedelta(days=days), P.last - timedelta(days=days))

    for period in (P, earlier(7), earlier(14)):
        snapshot_take(period)
    GroupSortSnapshot.objects.filter(first=earlier(14).first).update(
        taken_at=timezone.now() - timedelta(days=1, minutes=1)
    )

    snapshot_keep(P)

    kept = set(GroupSortSnapshot.objects.values_list("first", flat=True))
    assert kept == {P.first, earlier(7).first}


def test_a_sort_over_another_range_stores_it_in_the_background_for_the_next(
    world, celery_worker_thread
):
    manager = User.objects.create_user("boss", role=Role.ADMIN)
    client = Client()
    client.force_login(manager)
    cache.delete(f"group-snapshot:{P.first}:{P.last}")  # an earlier test's request
    url = f"/analytics/groups/?first={P.first}&last={P.last}&sort=-referral_rate"

    def get() -> tuple[list, int]:
        """The rows shown, and how many times the groups' stays were computed."""
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        stays = sum("AS at_start" in q["sql"] for q in queries.captured_queries)
        return shown_table(response.content.decode(), "groups").rows, stays

    first, computed = get()
    assert computed == 2  # every group's, to sort them; then the page's

    wait_for(lambda: snapshot_rows(P, ids(world)), timeout=30)
    again, computed = get()
    assert again == first
    assert computed == 1  # the page's only: the order came from the stored figures


def test_a_range_reaching_today_is_never_stored(world):
    today = rollups.shanghai_today()
    assert group_snapshot.snapshot_request(Period(today - timedelta(days=6), today)) is False


def test_the_5_minute_refresh_keeps_the_default_periods(world):
    rollups_refresh.apply()  # what beat runs every 5 minutes
    period = dashboard.default_period()
    assert snapshot_rows(period, ids(world)) is not None
    assert snapshot_rows(P, ids(world)) is None


def test_a_rebuild_drops_it(world):
    # A rebuild follows fixes made without events, which a snapshot cannot see.
    snapshot_take(P)
    rollups.rollup_rebuild(P.first, P.last)
    assert snapshot_rows(P, ids(world)) is None
    assert not GroupSortSnapshot.objects.exists()


def test_the_rebuild_command_stores_them_afresh(world):
    out = StringIO()
    call_command("rollups_rebuild", "--first", "2026-11-02", "--last", "2026-11-03", stdout=out)

    assert snapshot_rows(dashboard.default_period(), ids(world)) is not None
    assert "Stored every group's figures" in out.getvalue()
