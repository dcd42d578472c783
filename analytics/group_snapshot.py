"""Every live group's comparison figures over a period, stored (for the default period by
the 5-minute rollup refresh), so the group comparison sorts a thousand groups by a figure
without computing it for each; the page's own groups are still computed live.

A snapshot is read only while it still holds, so a sort by it is the sort by live figures:
- A group's figures over P depend only on events dated up to P's end, and on costs whenever
  recorded: memberships open and close with their events (groups.services), orders count
  refunds up to P's end, speech and referrals count P's events, and the daily figures and
  GroupSpeech hold the events up to the rollups' watermark, which a snapshot is taken at.
  Events are never changed or deleted.
- So it holds while the events with ids above its watermark minus rollups.OVERLAP_IDS that
  are dated up to P's end or record a cost are as many as when it was taken. Ids further
  below committing later is what the rollups already rule out.
- Memberships fixed without events are what `rollups_rebuild` is for (analytics.rollups):
  a rebuild drops every snapshot.

The default period ends yesterday, so the snapshot holds the whole day unless events from
the past arrive late (an import of old orders, say) or a cost is recorded. Another range
that ended before today is stored in the background when first sorted (snapshot_request),
and kept a day, so paging and sorting it again read it too.
"""

import json
from datetime import timedelta
from decimal import Decimal

from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from analytics.comparison import GroupRow, MeanOnly, group_rows
from analytics.metrics import Orders, Period
from analytics.models import Event, EventType, GroupSortSnapshot, RollupWatermark
from analytics.rollups import OVERLAP_IDS, WATERMARK, shanghai_today
from groups.models import Group

# Every figure a sort reads: per person (stays, orders, speech, referrals), money, and the
# daily figures' means.
PARTS = frozenset({"people", "money", "daily_means"})
# Ranges other than the default, stored when sorted, are dropped this long after.
KEEP_OTHER = timedelta(days=1)
# One background take per range at a time: asked again within this, it is not queued again.
REQUEST_SECONDS = 60


def _relevant(period: Period, *above: int) -> tuple[int, ...]:
    """How many events that could change P's figures (dated up to its end, or a cost) have
    ids above each of `above`: one statement, so one view of the log."""
    counts = ", ".join("count(*) FILTER (WHERE id > %s)" for _ in above)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT {counts} FROM {Event._meta.db_table}
            WHERE id > %s AND (occurred_at <= %s OR type = {int(EventType.COST_RECORDED)})
            """,
            [*above, min(above), period.end],
        )
        return cursor.fetchone()


def _watermark() -> int | None:
    return RollupWatermark.objects.filter(name=WATERMARK).values_list("event_id", flat=True).first()


def _floor(event_id: int) -> int:
    return max(event_id - OVERLAP_IDS, 0)


def snapshot_take(period: Period) -> GroupSortSnapshot | None:
    """Compute and store every live group's figures over P, at the rollups' watermark; None
    (nothing stored) while events that could change them are still to be rolled up."""
    high = _watermark()
    if high is None:
        return None
    # Counted before the figures: an event committed in between makes the count differ
    # later, so the snapshot is never read with figures that miss it.
    seen, unread = _relevant(period, _floor(high), high)
    if unread:
        return None  # the daily figures and speech do not have it yet: the next refresh
    ids = list(Group.objects.filter(dismissed_at__isnull=True).values_list("pk", flat=True))
    figures = {str(gid): _stored(row) for gid, row in group_rows(ids, period, parts=PARTS).items()}
    snapshot, _created = GroupSortSnapshot.objects.update_or_create(
        first=period.first,
        last=period.last,
        defaults={"event_id": high, "seen": seen, "figures": figures},
    )
    return snapshot


def snapshot_request(period: Period) -> bool:
    """Have P's figures stored in the background (analytics.tasks.group_figures_store), once
    however many ask; False for a range reaching today, whose own events would retire it."""
    if period.last >= shanghai_today():
        return False
    if cache.add(f"group-snapshot:{period.first}:{period.last}", 1, timeout=REQUEST_SECONDS):
        from analytics.tasks import group_figures_store  # the tasks module imports this one

        first, last = period.first.isoformat(), period.last.isoformat()
        transaction.on_commit(lambda: group_figures_store.delay(first, last))
    return True


def snapshot_keep(period: Period) -> GroupSortSnapshot | None:
    """The refresh's step: drop other ranges' snapshots a day old; move P's up to the
    watermark while it holds (so the next check counts fewer events), or take it afresh."""
    GroupSortSnapshot.objects.exclude(first=period.first, last=period.last).filter(
        taken_at__lt=timezone.now() - KEEP_OTHER
    ).delete()
    snapshot = GroupSortSnapshot.objects.filter(first=period.first, last=period.last).first()
    high = _watermark()
    if snapshot is None or high is None:
        return snapshot_take(period)
    still, seen, unread = _relevant(period, _floor(snapshot.event_id), _floor(high), high)
    if still != snapshot.seen or unread:
        return snapshot_take(period)
    # Only from the version checked: a concurrent refresh may have moved it already.
    GroupSortSnapshot.objects.filter(pk=snapshot.pk, event_id=snapshot.event_id).update(
        event_id=high, seen=seen
    )
    return snapshot


def snapshot_rows(period: Period, group_ids: list[int]) -> dict[int, GroupRow] | None:
    """The stored figures of those of `group_ids` the snapshot of P has, while it holds;
    None when there is none or it no longer holds."""
    snapshot = (
        GroupSortSnapshot.objects.filter(first=period.first, last=period.last)
        .values_list("event_id", "seen")
        .first()
    )
    if snapshot is None:
        return None
    event_id, seen = snapshot
    if _relevant(period, _floor(event_id)) != (seen,):
        return None
    # Only the groups asked for, read out of the JSON by the database.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT key::bigint, value FROM {GroupSortSnapshot._meta.db_table},
                jsonb_each(figures) WHERE first = %s AND last = %s AND key = ANY(%s)
            """,
            [period.first, period.last, [str(gid) for gid in group_ids]],
        )
        # jsonb comes back as text (Django reads JSON itself).
        return {gid: _row(text) for gid, text in cursor.fetchall()}


def _stored(row: GroupRow) -> list:
    counts = [
        row.members_start,
        row.members_end,
        row.exposed,
        row.left,
        row.retained,
        row.orders.buyers,
        row.orders.repeat_buyers,
        row.orders.orders,
        row.orders.revenue_fen,
        row.active,
        row.referrers,
        row.sales_fen,
    ]
    means = row.interaction_rate.value, row.messages_per_member.value
    # Sums come from the database as Decimal; JSON holds them as whole numbers and strings.
    return (
        [int(n) for n in counts]
        + [str(row.cost_fen)]
        + [None if m is None else str(m) for m in means]
    )


def _row(text: str) -> GroupRow:
    *counts, cost, interaction, messages = json.loads(text)
    start, end, exposed, left, retained, buyers, repeat, orders, fen, active, referrers, sales = (
        counts
    )
    return GroupRow(
        members_start=start,
        members_end=end,
        exposed=exposed,
        left=left,
        retained=retained,
        orders=Orders(buyers, repeat, orders, fen),
        active=active,
        referrers=referrers,
        sales_fen=sales,
        cost_fen=Decimal(cost),
        interaction_rate=MeanOnly(mean=None if interaction is None else Decimal(interaction)),
        messages_per_member=MeanOnly(mean=None if messages is None else Decimal(messages)),
    )
