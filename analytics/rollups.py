"""Daily rollups: each Shanghai day's headline figures per slice, kept up to date from the event
log, so the dashboard reads a few hundred rows instead of scanning millions of events.

A day's rows are always recomputed whole from the raw tables (DELETE + INSERT … SELECT in
one transaction), never adjusted by deltas: incremental refresh and full rebuild run the
same code for a day and so give the same rows.

Each figure is analytics.metrics' for that one day (the period [00:00, 24:00) Shanghai):
- members_end: customers with an open membership in one of the slice's groups at 24:00,
  a person counted once (metrics.members_at).
- joins: people who joined one of the slice's groups that day (metrics.cohort_retention's
  cohort); leaves: people who left one of them that day and are no member of any at 24:00
  (metrics.leave_rate's numerator for the day).
- speakers: distinct contacts with MESSAGE events in the slice's groups; messages: the sum
  of coalesce(amount, 1) (metrics.interaction_rate / messages_per_member numerators).
- buyers, orders, revenue_fen: the day's counted orders (metrics.counted_orders_sql: net of
  refunds made by 24:00 that day) whose buyer was a member of one of the slice's groups when
  ordering. A refund on a later day does not reduce an earlier day's row.
- exposures: channel slices only, the day's CHANNEL_EXPOSURE amounts.

A channel slice ("channel:<id>") is the channel's contacts (contacts_contact.source_channel_id)
in every group, except: joins are the day's GROUP_JOINED events through the channel (the join
rate's numerator), and an order counts when its buyer came through the channel, member or
not (PRODUCT.md: "to a channel's when the buyer came through that channel").

"type:" and "owner:" slices group by each group's type and owner as they are when the day is
computed; after an owner change or a membership fix without events, `rollup_rebuild` (the
`rollups_rebuild` command) brings past days in line.
"""

import logging
import re
from collections.abc import Callable, Iterable
from datetime import date, timedelta

from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _t

from analytics.activity import activity_rebuild, activity_recent
from analytics.metrics import SHANGHAI, DailyMean, Period, Ratio, counted_orders_sql
from analytics.models import (
    ContactActivity,
    DailyRollup,
    Event,
    EventType,
    GroupSortSnapshot,
    RollupWatermark,
)
from contacts.models import Contact
from groups.models import Group, GroupMembership
from scrm.jobs import Progress, job_start_once, no_progress
from scrm.models import Job

logger = logging.getLogger(__name__)

ALL = "all"
SLICE_PATTERN = re.compile(r"all|(group|owner|channel):\d+|type:[a-z_]+")
WATERMARK = "daily"
# A rebuild without dates (the command's default, the page's button) covers this many days.
REBUILD_DAYS = 90
REBUILD_JOB = "rollups_rebuild"  # the Job kind
# Events can commit out of id order (a bulk load holds its ids until it commits), so each
# refresh rereads this many ids below the watermark: one record_many batch.
OVERLAP_IDS = 50_000
# pg_advisory_xact_lock(ROLLUP_LOCK, day): two refreshes never rewrite the same day at once.
ROLLUP_LOCK = 0x524F4C4C  # "ROLL"
# Events that open or close memberships: members_end of every later day depends on them.
MEMBERSHIP_EVENTS = (EventType.GROUP_JOINED, EventType.GROUP_LEFT, EventType.GROUP_DISMISSED)

EVENTS = Event._meta.db_table
ROLLUPS = DailyRollup._meta.db_table
MEMBERSHIPS = GroupMembership._meta.db_table
GROUPS = Group._meta.db_table
CONTACTS = Contact._meta.db_table
FIGURES = (
    "members_end",
    "joins",
    "leaves",
    "speakers",
    "messages",
    "buyers",
    "orders",
    "revenue_fen",
    "exposures",
)


def group_slice(group_id: int) -> str:
    return f"group:{group_id}"


def type_slice(group_type: str) -> str:
    return f"type:{group_type}"


def owner_slice(staff_id: int) -> str:
    return f"owner:{staff_id}"


def channel_slice(channel_id: int) -> str:
    return f"channel:{channel_id}"


# --- computing --------------------------------------------------------------------------------


def _to_slices(rows: str) -> str:
    """Each row of the CTE `rows` (with group_id and contact_id) once for every slice it
    falls in: "all", its group's group/type/owner slices, its contact's channel slice."""
    return f"""
        SELECT 'all' AS slice, r.* FROM {rows} r
        UNION ALL
        SELECT sg.slice, r.* FROM {rows} r JOIN slice_groups sg ON sg.group_id = r.group_id
        UNION ALL
        SELECT 'channel:' || c.source_channel_id, r.* FROM {rows} r
        JOIN {CONTACTS} c ON c.id = r.contact_id WHERE c.source_channel_id IS NOT NULL
    """


_DAY_SQL = f"""
WITH
slice_groups AS (
    SELECT 'group:' || id AS slice, id AS group_id FROM {GROUPS}
    UNION ALL SELECT 'type:' || type, id FROM {GROUPS}
    UNION ALL SELECT 'owner:' || owner_id, id FROM {GROUPS}
),
-- Customers' stays that overlap the day, with what each says about it.
stays AS (
    SELECT m.group_id, m.contact_id,
           (m.left_at IS NULL OR m.left_at > %(end)s) AS at_end,
           (m.joined_at >= %(start)s AND m.joined_at < %(end)s) AS joined,
           coalesce(m.left_at >= %(start)s AND m.left_at < %(end)s, FALSE) AS left_
    FROM {MEMBERSHIPS} m
    WHERE m.contact_id IS NOT NULL AND m.joined_at <= %(end)s
      AND (m.left_at IS NULL OR m.left_at >= %(start)s)
),
people AS (
    SELECT slice, contact_id, bool_or(at_end) AS at_end, bool_or(joined) AS joined,
           bool_or(left_) AS left_
    FROM ({_to_slices("stays")}) AS s GROUP BY slice, contact_id
),
membership_figures AS (
    SELECT slice, count(*) FILTER (WHERE at_end) AS members_end,
           count(*) FILTER (WHERE joined) AS joins,
           count(*) FILTER (WHERE left_ AND NOT at_end) AS leaves
    FROM people GROUP BY slice
),
speech AS (
    SELECT group_id, contact_id, sum(coalesce(amount, 1)) AS messages
    FROM {EVENTS}
    WHERE type = {int(EventType.MESSAGE)} AND group_id IS NOT NULL
      AND occurred_at >= %(start)s AND occurred_at < %(end)s
    GROUP BY group_id, contact_id
),
speech_figures AS (
    SELECT slice, count(DISTINCT contact_id) AS speakers, sum(messages) AS messages
    FROM ({_to_slices("speech")}) AS s GROUP BY slice
),
orders AS (
    SELECT o.order_id AS n, o.contact_id, o.paid_at, o.net_fen
    FROM ({counted_orders_sql()}) AS o
),
order_stays AS (
    SELECT m.group_id, o.contact_id, o.n, o.net_fen
    FROM orders o JOIN {MEMBERSHIPS} m ON m.contact_id = o.contact_id
     AND m.joined_at <= o.paid_at AND (m.left_at IS NULL OR m.left_at > o.paid_at)
),
order_slices AS (
    SELECT DISTINCT slice, n, contact_id, net_fen FROM (
        SELECT 'all' AS slice, s.n, s.contact_id, s.net_fen FROM order_stays s
        UNION ALL
        SELECT sg.slice, s.n, s.contact_id, s.net_fen
        FROM order_stays s JOIN slice_groups sg ON sg.group_id = s.group_id
        UNION ALL
        SELECT 'channel:' || c.source_channel_id, o.n, o.contact_id, o.net_fen
        FROM orders o JOIN {CONTACTS} c ON c.id = o.contact_id
        WHERE c.source_channel_id IS NOT NULL
    ) AS s
),
order_figures AS (
    SELECT slice, count(DISTINCT contact_id) AS buyers, count(*) AS orders,
           sum(net_fen) AS revenue_fen
    FROM order_slices GROUP BY slice
),
channel_figures AS (
    SELECT 'channel:' || channel_id AS slice,
           count(*) FILTER (WHERE type = {int(EventType.GROUP_JOINED)}) AS joins,
           coalesce(sum(amount) FILTER (WHERE type = {int(EventType.CHANNEL_EXPOSURE)}), 0)
               AS exposures
    FROM {EVENTS}
    WHERE channel_id IS NOT NULL
      AND type IN ({int(EventType.GROUP_JOINED)}, {int(EventType.CHANNEL_EXPOSURE)})
      AND occurred_at >= %(start)s AND occurred_at < %(end)s
    GROUP BY channel_id
),
slices AS (
    SELECT slice FROM membership_figures UNION SELECT slice FROM speech_figures
    UNION SELECT slice FROM order_figures UNION SELECT slice FROM channel_figures
)
INSERT INTO {ROLLUPS} (slice, day, {", ".join(FIGURES)})
SELECT s.slice, %(day)s,
       coalesce(mf.members_end, 0),
       CASE WHEN starts_with(s.slice, 'channel:') THEN coalesce(cf.joins, 0)
            ELSE coalesce(mf.joins, 0) END,
       coalesce(mf.leaves, 0),
       coalesce(sf.speakers, 0), coalesce(sf.messages, 0),
       coalesce(od.buyers, 0), coalesce(od.orders, 0), coalesce(od.revenue_fen, 0),
       coalesce(cf.exposures, 0)
FROM slices s
LEFT JOIN membership_figures mf ON mf.slice = s.slice
LEFT JOIN speech_figures sf ON sf.slice = s.slice
LEFT JOIN order_figures od ON od.slice = s.slice
LEFT JOIN channel_figures cf ON cf.slice = s.slice
"""


def rollup_days(days: Iterable[date], *, progress: Callable[[date], None] | None = None) -> None:
    """Recompute every slice's row of each day, one transaction per day."""
    for day in sorted(set(days)):
        period = Period(day, day)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [ROLLUP_LOCK, day.toordinal()])
            cursor.execute(f"DELETE FROM {ROLLUPS} WHERE day = %s", [day])
            cursor.execute(_DAY_SQL, {"day": day, "start": period.start, "end": period.end})
        if progress:
            progress(day)


def _last_event_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {EVENTS}")
        return cursor.fetchone()[0]


def _advance_watermark(event_id: int) -> None:
    RollupWatermark.objects.get_or_create(name=WATERMARK)
    # Only forward: a slower concurrent refresh must not move it back.
    RollupWatermark.objects.filter(name=WATERMARK, event_id__lt=event_id).update(
        event_id=event_id, updated_at=timezone.now()
    )


def shanghai_today() -> date:
    return timezone.now().astimezone(SHANGHAI).date()


def rollup_rebuild(first: date, last: date, *, progress: Progress = no_progress) -> list[date]:
    """Recompute every day from `first` to `last`, and every customer's activity
    (analytics.activity). On a first rebuild, start the incremental refresh from here rather
    than from the first event ever.

    `progress(done, total, phase=...)` counts the days, then the activity as one step more."""
    days = Period(first, last).days
    steps = len(days) + 1
    high = _last_event_id()
    progress(0, steps, phase="rollup_days")
    done = iter(range(1, len(days) + 1))
    rollup_days(days, progress=lambda day: progress(next(done), steps, phase="rollup_days"))
    progress(len(days), steps, phase="activity")
    activity_rebuild()
    # Figures may have changed without events (analytics.group_snapshot): the next refresh
    # takes them afresh.
    GroupSortSnapshot.objects.all().delete()
    if not RollupWatermark.objects.filter(name=WATERMARK).exists():
        _advance_watermark(high)
    return days


def rebuild_period(days: int = REBUILD_DAYS) -> Period:
    """The last `days` Shanghai days, today included."""
    last = shanghai_today()
    return Period(last - timedelta(days=days - 1), last)


def rollup_rebuild_start(*, user) -> tuple[Job, bool]:
    """Queue a rebuild of the last REBUILD_DAYS days as a Job the pages follow; managers only.

    While one is queued or running, that one is returned (with False) instead of a second:
    two would rewrite the same days one after the other for nothing.
    """
    if not (user.is_authenticated and user.is_manager):
        raise PermissionDenied(_t("Only managers may rebuild the figures."))
    from analytics.tasks import rollups_rebuild_run  # the tasks module imports this one

    return job_start_once(kind=REBUILD_JOB, user=user, task=rollups_rebuild_run)


def rollup_rebuild_job(job: Job, *, progress: Progress = no_progress) -> dict:
    """The rebuild job's work: what `manage.py rollups_rebuild` does without options."""
    period = rebuild_period()
    days = rollup_rebuild(period.first, period.last, progress=progress)
    return {
        "days": len(days),
        "first": period.first.isoformat(),
        "last": period.last.isoformat(),
        "customers": ContactActivity.objects.count(),
    }


def _touched_days(since: int, high: int, today: date) -> set[date]:
    """The days whose rows events with ids in (since, high] can change."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT (occurred_at AT TIME ZONE 'Asia/Shanghai')::date,
                   bool_or(type = ANY(%(membership)s))
            FROM {EVENTS} WHERE id > %(since)s AND id <= %(high)s
            GROUP BY 1
            """,
            {"since": since, "high": high, "membership": [int(t) for t in MEMBERSHIP_EVENTS]},
        )
        rows = cursor.fetchall()
    days = set()
    for day, membership in rows:
        # A join or leave changes members_end of every day after it, up to today.
        last = max(day, today) if membership else day
        days.update(Period(day, last).days)
    return days


def rollup_recent() -> list[date]:
    """The incremental step: recompute the days touched by events added since the watermark,
    and always today and yesterday. Returns the days recomputed.

    With no watermark yet that is every day of the log: run `rollup_rebuild` (the
    `rollups_rebuild` command) once first, which sets it."""
    watermark = RollupWatermark.objects.filter(name=WATERMARK).first()
    since = max((watermark.event_id if watermark else 0) - OVERLAP_IDS, 0)
    high = _last_event_id()
    today = shanghai_today()
    days = _touched_days(since, high, today) | {today, today - timedelta(days=1)}
    rollup_days(days)
    if watermark:
        activity_recent(since, high)
    else:  # the first refresh: memberships from before the log began count too
        activity_rebuild()
    _advance_watermark(high)
    logger.info("rollups: %d day(s) recomputed, events read up to id %d", len(days), high)
    return sorted(days)


# --- reading ----------------------------------------------------------------------------------


def _check_slice(slice: str) -> None:
    if not isinstance(slice, str) or not SLICE_PATTERN.fullmatch(slice):
        raise ValueError(
            "slice: expected 'all', 'group:<id>', 'type:<group type>', 'owner:<staff id>' or "
            f"'channel:<id>', got {slice!r}"
        )


def daily_series(slice: str, period: Period) -> dict[date, DailyRollup]:
    """Every day of the period with its rollup row; a day without one has all figures 0."""
    _check_slice(slice)
    stored = {
        row.day: row
        for row in DailyRollup.objects.filter(slice=slice, day__range=(period.first, period.last))
    }
    return {day: stored.get(day) or DailyRollup(slice=slice, day=day) for day in period.days}


def interaction_rate(slice: str, period: Period) -> DailyMean:
    """互动率 from the rollups: per day, speakers ÷ members at the end of the day."""
    series = daily_series(slice, period)
    return DailyMean({day: Ratio(row.speakers, row.members_end) for day, row in series.items()})


def messages_per_member(slice: str, period: Period) -> DailyMean:
    """人均消息量 from the rollups: per day, messages ÷ members at the end of the day."""
    series = daily_series(slice, period)
    return DailyMean({day: Ratio(row.messages, row.members_end) for day, row in series.items()})
