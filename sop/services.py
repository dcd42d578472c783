"""Writes of the SOP engine: plans going live, pausing, broadcasts for campaigns, previews."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from sop import planner
from sop.content import validate
from sop.models import ContentItem, Delivery, Plan, SkipReason, Step


def _ensure_may_change(user, plan: Plan) -> None:
    if user.is_read_only:
        raise PermissionDenied("Analysts have read-only access.")
    if user.is_manager:
        return
    staff = getattr(user, "staff", None)
    if staff is None or plan.staff_id != staff.pk:
        raise PermissionDenied("Operators change only their own plans.")


def plan_staff_for(user):
    """The staff member a new plan of this login is limited to: none for a manager, the
    operator's own otherwise. Operators without a WeCom identity make no plans."""
    if user.is_read_only:
        raise PermissionDenied("Analysts have read-only access.")
    if user.is_manager:
        return None
    staff = getattr(user, "staff", None)
    if staff is None:
        raise PermissionDenied("Only a login with a WeCom identity makes plans.")
    return staff


def content_may_change(user, item: ContentItem) -> bool:
    """The library is shared; operators change only what they made, managers anything."""
    return not user.is_read_only and (user.is_manager or item.created_by_id == user.pk)


def content_check(item: ContentItem) -> None:
    validate(item.text, item.attachments)


def plan_check(plan: Plan) -> None:
    """Raise ValidationError naming the field if the plan cannot go live as it is."""
    steps = [s for s in plan.steps.all() if s.active]
    if not steps:
        raise ValidationError({"steps": _("Add at least one step.")})
    if plan.kind == Plan.Kind.JOURNEY and not plan.trigger:
        raise ValidationError({"trigger": _("A journey needs a trigger.")})
    for step in steps:
        where = _("Step %(n)s") % {"n": step.position or step.pk}
        if plan.kind == Plan.Kind.GROUP and step.at_time is None:
            raise ValidationError({"at_time": f"{where}: " + _("a group plan step needs a time.")})
        if plan.kind == Plan.Kind.BROADCAST and step.send_at is None:
            raise ValidationError({"send_at": f"{where}: " + _("a broadcast needs a send time.")})
        if step.content.archived:
            raise ValidationError({"content": f"{where}: " + _("its content is archived.")})
        content_check(step.content)


def plan_activate(plan: Plan, *, user, now: datetime | None = None) -> Plan:
    """Put a draft or paused plan live. Slots before now are never planned for it."""
    _ensure_may_change(user, plan)
    if plan.status not in (Plan.Status.DRAFT, Plan.Status.PAUSED):
        raise ValidationError({"status": _("Only a draft or paused plan can go live.")})
    plan_check(plan)
    now = now or timezone.now()
    plan.status = Plan.Status.ACTIVE
    plan.activated_at = plan.activated_at or now
    plan.planned_until = now
    if plan.kind == Plan.Kind.BROADCAST:
        # A broadcast whose time is now or just past still goes out at the next tick.
        first = min(s.send_at for s in plan.steps.all() if s.active)
        plan.planned_until = min(now, first - timedelta(microseconds=1))
    plan.save(update_fields=["status", "activated_at", "planned_until", "updated_at"])
    return plan


def plan_resume(plan: Plan, *, user, now: datetime | None = None) -> Plan:
    """Put a paused plan live again; slots missed while paused are not sent late."""
    if plan.status != Plan.Status.PAUSED:
        raise ValidationError({"status": _("Only a paused plan is resumed.")})
    return plan_activate(plan, user=user, now=now)


def plan_pause(plan: Plan, *, user, now: datetime | None = None) -> int:
    """Stop a plan; what it planned and has not queued yet is skipped (recorded as such).

    Resuming plans from the moment of resuming: the skipped slots stay skipped, and slots
    already sent are never planned again.
    """
    _ensure_may_change(user, plan)
    if plan.status != Plan.Status.ACTIVE:
        raise ValidationError({"status": _("Only a live plan can be paused.")})
    now = now or timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [planner.PLANNER_LOCK])
        Plan.objects.filter(pk=plan.pk).update(status=Plan.Status.PAUSED, updated_at=now)
        plan.status = Plan.Status.PAUSED
        cursor.execute(
            f"UPDATE {Delivery._meta.db_table} SET status = 'skipped', reason = %s,"
            " updated_at = %s WHERE plan_id = %s AND status = 'planned' RETURNING id",
            [SkipReason.PLAN_PAUSED, now, plan.pk],
        )
        ids = [row[0] for row in cursor.fetchall()]
        if ids:
            planner.record_delivery_events("SELECT unnest(%s::bigint[])", [ids])
    return len(ids)


def plan_archive(plan: Plan, *, user) -> None:
    if plan.status == Plan.Status.ACTIVE:
        plan_pause(plan, user=user)
    _ensure_may_change(user, plan)
    Plan.objects.filter(pk=plan.pk).update(status=Plan.Status.ARCHIVED)
    plan.status = Plan.Status.ARCHIVED


def step_remove(step: Step, *, user) -> None:
    """Delete a step, or switch it off if it has deliveries (their history stays)."""
    _ensure_may_change(user, step.plan)
    if step.deliveries.exists():
        Step.objects.filter(pk=step.pk).update(active=False)
    else:
        step.delete()


def broadcast_create(
    *,
    name: str,
    content: ContentItem,
    send_at: datetime,
    contacts=None,
    groups=None,
    priority: int = 50,
    campaign=None,
    user=None,
    staff=None,
) -> Plan:
    """A one-off message to chosen customers or groups, under the same budgets and quiet
    hours as every SOP: how campaigns reach people (issue 6)."""
    if bool(contacts) == bool(groups):
        raise ValidationError({"targets": _("Choose customers or groups, not both.")})
    content_check(content)
    with transaction.atomic():
        plan = Plan.objects.create(
            name=name,
            kind=Plan.Kind.BROADCAST,
            priority=priority,
            campaign=campaign,
            created_by=user,
            staff=staff,
        )
        Step.objects.create(plan=plan, content=content, send_at=send_at, position=1)
        if contacts:
            plan.contacts.set(contacts)
        else:
            plan.groups.set(groups)
        plan.status = Plan.Status.ACTIVE
        plan.activated_at = timezone.now()
        plan.planned_until = min(plan.activated_at, send_at - timedelta(microseconds=1))
        plan.save()
    return plan


# --- preview ------------------------------------------------------------------------------


class _Rollback(Exception):
    pass


@dataclass
class PreviewRow:
    due_at: datetime
    step: str
    content: str
    target: str
    status: str
    reason: str


@dataclass
class Preview:
    start: datetime
    end: datetime
    days: list[dict] = field(default_factory=list)  # {"day", "planned", "skipped": {reason: n}}
    rows: list[PreviewRow] = field(default_factory=list)
    planned: int = 0
    skipped: int = 0


def plan_preview(plan: Plan, *, days: int = 7, now: datetime | None = None, limit: int = 200):
    """Who would get what and when over the next `days`, after budgets, quiet hours and
    holidays, with every other active plan competing as it will. Nothing is kept.

    A journey also replays the last `days` days of its trigger as if they came again in
    the coming days, so a draft journey shows what a week would look like.
    """
    now = now or timezone.now()
    end = now + timedelta(days=days)
    preview = Preview(start=now, end=end)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [planner.PLANNER_LOCK])
            planner._temp_tables(cursor)
            others = Plan.objects.filter(status=Plan.Status.ACTIVE).exclude(pk=plan.pk)
            for other in others.prefetch_related("steps"):
                start = max(other.planned_until or now, now)
                planner._plan_window(cursor, other, start, end, now=now)
            cursor.execute("TRUNCATE sop_new")  # only this plan's rows are reported
            if plan.kind == Plan.Kind.JOURNEY:
                planner._enrol(cursor, plan, now - timedelta(days=days), now=now, shift=end - now)
            planner._plan_window(cursor, plan, now, end, now=now)
            planner._settle(cursor, now=now, plans=1, record=False)
            _fill_preview(cursor, preview, limit=limit)
            raise _Rollback
    except _Rollback:
        pass
    return preview


def _fill_preview(cursor, preview: Preview, *, limit: int) -> None:
    cursor.execute(
        f"""
        SELECT d.due_day, d.status, d.reason, count(*)
        FROM sop_new n JOIN {Delivery._meta.db_table} d ON d.id = n.id
        GROUP BY 1, 2, 3 ORDER BY 1
        """
    )
    by_day: dict = {}
    for day, status, reason, count in cursor.fetchall():
        entry = by_day.setdefault(day, {"day": day, "planned": 0, "skipped": {}})
        if status == Delivery.Status.PLANNED:
            entry["planned"] += count
            preview.planned += count
        else:
            entry["skipped"][reason] = entry["skipped"].get(reason, 0) + count
            preview.skipped += count
    preview.days = list(by_day.values())
    cursor.execute(
        f"""
        SELECT d.due_at, COALESCE(NULLIF(s.name, ''), '#' || s.position), ci.title,
            COALESCE(g.name, NULLIF(c.name, ''), c.external_userid), d.status, d.reason
        FROM sop_new n JOIN {Delivery._meta.db_table} d ON d.id = n.id
        JOIN sop_step s ON s.id = d.step_id JOIN sop_contentitem ci ON ci.id = s.content_id
        LEFT JOIN groups_group g ON g.id = d.group_id
        LEFT JOIN contacts_contact c ON c.id = d.contact_id
        ORDER BY d.due_at, d.id LIMIT %s
        """,
        [limit],
    )
    preview.rows = [PreviewRow(*row) for row in cursor.fetchall()]
