"""Reads behind the workbench (工作台): today's tasks, SOP completion and alerts for a login.

Every part is one aggregate query (a few at most) over the whole slice a login may see, never
a query per group or staff member, so the page costs the same with 10 groups or 1,000.
Operators see their own groups, customers and messages; managers and analysts everyone's.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Count, Min, Q
from django.utils import timezone

from analytics.models import Event, EventType
from campaigns.models import Campaign
from campaigns.selectors import campaigns_visible_to
from groups.models import Group, GroupMembership
from groups.selectors import day_start, groups_visible_to, user_sees_all, user_staff
from scrm.jobs import jobs_visible_to
from scrm.models import Job
from sop.models import Delivery, MassMessage, Plan
from sop.selectors import Completion, completion_by_staff, deliveries_visible_to
from wecom.models import Callback

# The alert windows: rolling, ending now (an alert is about what is happening, not a day).
GROUP_LEAVES_WINDOW = timedelta(hours=24)
STAFF_BLOCKS_WINDOW = timedelta(days=7)
DELIVERY_FAILURES_WINDOW = timedelta(hours=24)
# SOP completion covers the last 7 Shanghai days, today included (as the headline counts).
COMPLETION_DAYS = 7
# Longest lists on the page; the totals say how many more there are.
CONFIRMATIONS_SHOWN = 20
JOBS_SHOWN = 10


@dataclass(frozen=True)
class Thresholds:
    group_leaves_min: int
    group_leaves_percent: int
    staff_blocks_min: int
    callback_stale_minutes: int


def thresholds() -> Thresholds:
    """The alert thresholds as configured (scrm/settings.py, WORKBENCH_*)."""
    return Thresholds(
        group_leaves_min=settings.WORKBENCH_GROUP_LEAVES_MIN,
        group_leaves_percent=settings.WORKBENCH_GROUP_LEAVES_PERCENT,
        staff_blocks_min=settings.WORKBENCH_STAFF_BLOCKS_MIN,
        callback_stale_minutes=settings.WORKBENCH_CALLBACK_STALE_MINUTES,
    )


# --- tasks -----------------------------------------------------------------------------------


@dataclass
class PlanToday:
    """One plan's deliveries due today (Shanghai day), by what has become of them."""

    plan_id: int
    name: str
    linked: bool  # the login may open the plan's page
    to_send: int  # planned or queued
    sent: int  # sent, confirmed or delivered
    skipped: int
    failed: int

    @property
    def total(self) -> int:
        return self.to_send + self.sent + self.skipped + self.failed


def confirmations_pending(*, user) -> tuple[list[MassMessage], int]:
    """Mass messages WeCom is holding for their sender to confirm (oldest first), each with
    `receivers` (its deliveries), and how many there are in all."""
    messages = MassMessage.objects.filter(status=MassMessage.Status.SENT)
    if not user_sees_all(user):
        staff = user_staff(user)
        messages = messages.filter(sender=staff) if staff else messages.none()
    shown = list(
        messages.select_related("sender", "content")
        .annotate(receivers=Count("deliveries"))
        .order_by("sent_at", "pk")[:CONFIRMATIONS_SHOWN]
    )
    total = len(shown) if len(shown) < CONFIRMATIONS_SHOWN else messages.count()
    return shown, total


def deliveries_today(*, user, now: datetime) -> list[PlanToday]:
    """Today's deliveries the login sends (managers: all), counted per plan."""
    today = timezone.localdate(now, timezone.get_default_timezone())
    status = Delivery.Status
    rows = (
        deliveries_visible_to(user)
        .filter(due_at__gte=day_start(today), due_at__lt=day_start(today + timedelta(days=1)))
        .values("plan", "plan__name", "plan__staff")
        .annotate(
            to_send=Count("id", filter=Q(status__in=[status.PLANNED, status.QUEUED])),
            sent=Count(
                "id", filter=Q(status__in=[status.SENT, status.CONFIRMED, status.DELIVERED])
            ),
            skipped=Count("id", filter=Q(status=status.SKIPPED)),
            failed=Count("id", filter=Q(status=status.FAILED)),
        )
        .order_by("plan__name", "plan")
    )
    return [
        PlanToday(
            plan_id=row["plan"],
            name=row["plan__name"],
            linked=_may_open_plan(user, row["plan__staff"]),
            to_send=row["to_send"],
            sent=row["sent"],
            skipped=row["skipped"],
            failed=row["failed"],
        )
        for row in rows
    ]


def _may_open_plan(user, plan_staff_id: int | None) -> bool:
    # As sop.selectors.plans_visible_to: an operator opens only the plans limited to them,
    # though they send deliveries of shared plans too.
    if user_sees_all(user):
        return True
    staff = user_staff(user)
    return staff is not None and plan_staff_id == staff.pk


def jobs_running(*, user) -> list[Job]:
    """Imports, exports and bulk taggings still queued or running, the login's own (managers:
    everyone's), oldest first."""
    return list(
        jobs_visible_to(user)
        .filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING])
        .select_related("created_by")
        .order_by("created_at")[:JOBS_SHOWN]
    )


def campaigns_today(*, user, now: datetime) -> tuple[list[Campaign], list[Campaign]]:
    """Campaigns starting today and those ending today (Shanghai day)."""
    today = timezone.localdate(now, timezone.get_default_timezone())
    start, end = day_start(today), day_start(today + timedelta(days=1))
    rows = list(
        campaigns_visible_to(user)
        .filter(Q(starts_at__gte=start, starts_at__lt=end) | Q(ends_at__gte=start, ends_at__lt=end))
        .order_by("starts_at", "pk")
    )
    starting = [c for c in rows if c.starts_at and start <= c.starts_at < end]
    ending = sorted(
        (c for c in rows if c.ends_at and start <= c.ends_at < end), key=lambda c: c.ends_at
    )
    return starting, ending


# --- alerts ----------------------------------------------------------------------------------


@dataclass
class ShrinkingGroup:
    group_id: int
    name: str
    owner: str
    leaves: int  # customers who left in the window
    members_at_start: int  # customers in the group when the window began
    threshold: int  # the leaves that fire the alert for this group


@dataclass
class BlockedStaff:
    staff_id: int
    name: str
    blocks: int  # CONTACT_BLOCKED events in the window


@dataclass
class FailingPlan:
    plan_id: int | None
    name: str
    linked: bool
    failures: int  # deliveries that failed in the window
    last_at: datetime


@dataclass
class CallbackBacklog:
    stale: int  # pending longer than the threshold
    oldest_at: datetime | None  # the oldest pending one
    failed: int  # failed to apply, received in the last 24 h

    @property
    def firing(self) -> bool:
        return bool(self.stale or self.failed)


# Customers who left each visible live group in the window, kept when at least the absolute
# minimum; then, for those few groups only, the customers present when the window began
# (read through the (group, joined_at) index). A person counts once per group.
_SHRINKING_SQL = f"""
    WITH left_recently AS (
        SELECT m.group_id, count(DISTINCT m.contact_id) AS leaves
        FROM {GroupMembership._meta.db_table} m
        WHERE m.contact_id IS NOT NULL AND m.left_at > %s AND m.left_at <= %s
          AND m.group_id IN ({{visible}})
        GROUP BY m.group_id
        HAVING count(DISTINCT m.contact_id) >= %s
    )
    SELECT g.id, g.name, o.name, l.leaves,
        (SELECT count(DISTINCT s.contact_id) FROM {GroupMembership._meta.db_table} s
         WHERE s.group_id = l.group_id AND s.contact_id IS NOT NULL AND s.joined_at <= %s
           AND (s.left_at IS NULL OR s.left_at > %s)) AS members_at_start
    FROM left_recently l
    JOIN {Group._meta.db_table} g ON g.id = l.group_id
    JOIN contacts_staff o ON o.id = g.owner_id
    WHERE g.dismissed_at IS NULL
    ORDER BY l.leaves DESC, g.name
"""


def shrinking_groups(*, user, now: datetime, limits: Thresholds) -> list[ShrinkingGroup]:
    """Groups whose customers left in the last 24 h at least max(minimum, percent of the
    customers there 24 h ago). A dismissed group is not shrinking: it is gone."""
    since = now - GROUP_LEAVES_WINDOW
    try:
        visible_sql, visible_params = groups_visible_to(user).values("pk").query.sql_with_params()
    except EmptyResultSet:  # an operator without a WeCom identity has no groups
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            _SHRINKING_SQL.format(visible=visible_sql),
            (since, now, *visible_params, limits.group_leaves_min, since, since),
        )
        rows = cursor.fetchall()
    alerts = []
    for group_id, name, owner, leaves, at_start in rows:
        # leaves ≥ percent × members, in integers: ceil(percent × members / 100).
        by_share = -(-limits.group_leaves_percent * at_start // 100)
        threshold = max(limits.group_leaves_min, by_share)
        if leaves >= threshold:
            alerts.append(ShrinkingGroup(group_id, name, owner, leaves, at_start, threshold))
    return alerts


def blocked_staff(*, user, now: datetime, limits: Thresholds) -> list[BlockedStaff]:
    """Staff members deleted (拉黑) by customers at least the threshold times in the last
    7 days; an operator hears only about themselves. Read through event_rare_time."""
    events = Event.objects.filter(
        type=EventType.CONTACT_BLOCKED,
        occurred_at__gt=now - STAFF_BLOCKS_WINDOW,
        occurred_at__lte=now,
        staff__isnull=False,
    )
    if not user_sees_all(user):
        staff = user_staff(user)
        events = events.filter(staff=staff) if staff else events.none()
    rows = (
        events.values("staff", "staff__name")
        .annotate(blocks=Count("id"))
        .filter(blocks__gte=limits.staff_blocks_min)
        .order_by("-blocks", "staff__name")
    )
    return [BlockedStaff(r["staff"], r["staff__name"], r["blocks"]) for r in rows]


# The delivery ledger logs each failure once (key delivery:<id>:failed) with its plan in the
# payload and its sender as staff; the BRIN index on time narrows the log to the window.
_FAILURES_SQL = f"""
    SELECT p.id, p.name, p.staff_id, count(*), max(ev.occurred_at)
    FROM {Event._meta.db_table} ev
    LEFT JOIN {Plan._meta.db_table} p ON p.id = (ev.payload ->> 'plan')::bigint
    WHERE ev.type = %s AND ev.occurred_at > %s AND ev.occurred_at <= %s {{staff}}
    GROUP BY p.id, p.name, p.staff_id
    ORDER BY count(*) DESC, p.name
"""


def failing_plans(*, user, now: datetime) -> list[FailingPlan]:
    """SOP deliveries that failed in the last 24 h, per plan; an operator's those they send."""
    params: list = [int(EventType.DELIVERY_FAILED), now - DELIVERY_FAILURES_WINDOW, now]
    staff_filter = ""
    if not user_sees_all(user):
        staff = user_staff(user)
        if staff is None:
            return []
        staff_filter = "AND ev.staff_id = %s"
        params.append(staff.pk)
    with connection.cursor() as cursor:
        cursor.execute(_FAILURES_SQL.format(staff=staff_filter), params)
        rows = cursor.fetchall()
    return [
        FailingPlan(
            plan_id=plan_id,
            name=name or "",
            linked=plan_id is not None and _may_open_plan(user, plan_staff),
            failures=failures,
            last_at=last_at,
        )
        for plan_id, name, plan_staff, failures, last_at in rows
    ]


def callback_backlog(*, now: datetime, limits: Thresholds) -> CallbackBacklog:
    """WeCom callbacks still pending after the threshold, and those that failed in the last
    24 h. Only the two statuses are read (the (status, received_at) index): the table keeps
    every callback ever received."""
    stale_before = now - timedelta(minutes=limits.callback_stale_minutes)
    failed_since = now - timedelta(hours=24)
    pending = Q(status=Callback.Status.PENDING)
    failed = Q(status=Callback.Status.FAILED, received_at__gt=failed_since)
    row = Callback.objects.filter(pending | failed).aggregate(
        stale=Count("id", filter=pending & Q(received_at__lte=stale_before)),
        oldest_at=Min("received_at", filter=pending),
        failed=Count("id", filter=failed),
    )
    return CallbackBacklog(stale=row["stale"], oldest_at=row["oldest_at"], failed=row["failed"])


# --- the page ------------------------------------------------------------------------------


@dataclass
class Workbench:
    now: datetime
    sees_all: bool
    thresholds: Thresholds
    confirmations: list[MassMessage]
    confirmations_total: int
    plans_today: list[PlanToday]
    jobs: list[Job]
    campaigns_starting: list[Campaign]
    campaigns_ending: list[Campaign]
    completion: list[Completion]
    completion_first_day: date
    shrinking_groups: list[ShrinkingGroup]
    blocked_staff: list[BlockedStaff]
    failing_plans: list[FailingPlan]
    # Callbacks belong to no operator: shown to managers and analysts only (None otherwise).
    callbacks: CallbackBacklog | None = None

    @property
    def has_tasks(self) -> bool:
        return bool(
            self.confirmations
            or self.plans_today
            or self.jobs
            or self.campaigns_starting
            or self.campaigns_ending
        )

    @property
    def has_alerts(self) -> bool:
        return bool(
            self.shrinking_groups
            or self.blocked_staff
            or self.failing_plans
            or (self.callbacks and self.callbacks.firing)
        )


def workbench(*, user, now: datetime | None = None) -> Workbench:
    """Everything the workbench shows below the headline counts, for this login."""
    now = now or timezone.now()
    limits = thresholds()
    today = timezone.localdate(now, timezone.get_default_timezone())
    first_day = today - timedelta(days=COMPLETION_DAYS - 1)
    confirmations, confirmations_total = confirmations_pending(user=user)
    starting, ending = campaigns_today(user=user, now=now)
    sees_all = user_sees_all(user)
    return Workbench(
        now=now,
        sees_all=sees_all,
        thresholds=limits,
        confirmations=confirmations,
        confirmations_total=confirmations_total,
        plans_today=deliveries_today(user=user, now=now),
        jobs=jobs_running(user=user),
        campaigns_starting=starting,
        campaigns_ending=ending,
        completion=completion_by_staff(
            day_start(first_day), day_start(today + timedelta(days=1)), user=user
        ),
        completion_first_day=first_day,
        shrinking_groups=shrinking_groups(user=user, now=now, limits=limits),
        blocked_staff=blocked_staff(user=user, now=now, limits=limits),
        failing_plans=failing_plans(user=user, now=now),
        callbacks=callback_backlog(now=now, limits=limits) if sees_all else None,
    )
