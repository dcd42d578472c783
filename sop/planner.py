"""The SOP planner: turns due slots into delivery rows, once, under the rules of conduct.

Beat runs `plan_due` every minute. Each active plan remembers how far it has been planned
(`planned_until`); a run plans the slots in (planned_until, now], so a run after beat was
down catches up, and slots missed by more than the catch-up window are recorded as expired
rather than sent late. Rows are written with INSERT … ON CONFLICT DO NOTHING under the
(step, slot, target) unique constraint, inside one transaction holding an advisory lock:
two runs for the same minute plan once.

Times (slots, holidays, quiet hours) are worked out in Python (sop.conduct), one per slot
or enrolment; targets, conditions and budgets are set-based SQL, so 50,000 groups or
200,000 journey targets plan in seconds.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from analytics.events import record_selected
from analytics.models import EventType
from sop.conduct import at_local, contact_caps, group_caps, local_day, timing
from sop.models import Delivery, Enrolment, Plan, SkipReason, Step

PLANNER_LOCK = 0x50_50  # pg advisory lock: one planner at a time
ACTIVE_STATUSES = ("planned", "queued", "sent", "confirmed", "delivered")  # take a budget slot

# A journey slot lies at most this far after trigger + offset (at_time on the next day,
# then the next chosen weekday).
_JOURNEY_SPREAD = timedelta(days=8)
_TRIGGER_EVENTS = {
    Plan.Trigger.CONTACT_ADDED: EventType.CONTACT_ADDED,
    Plan.Trigger.GROUP_JOINED: EventType.GROUP_JOINED,
    Plan.Trigger.ORDER_PAID: EventType.ORDER_PAID,
}


@dataclass
class PlanningResult:
    plans: int = 0
    planned: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason → deliveries
    displaced: int = 0  # planned earlier, then given to a higher-priority delivery


def plan_due(now: datetime | None = None) -> PlanningResult:
    """Plan every active plan's slots up to `now`. Safe to run twice for the same minute."""
    now = now or timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PLANNER_LOCK])
        # Budgets rank and events sort a whole run's rows: keep those sorts in memory.
        cursor.execute("SET LOCAL work_mem = '128MB'")
        _temp_tables(cursor)
        plans = list(Plan.objects.filter(status=Plan.Status.ACTIVE).prefetch_related("steps"))
        for plan in plans:
            start = plan.planned_until or plan.activated_at or now
            if start >= now:
                continue
            _plan_window(cursor, plan, start, now, now=now)
            Plan.objects.filter(pk=plan.pk).update(planned_until=now)
        return _settle(cursor, now=now, plans=len(plans))


# --- one plan over one window -----------------------------------------------------------


def _plan_window(cursor, plan: Plan, start: datetime, end: datetime, *, now: datetime) -> None:
    steps = [s for s in plan.steps.all() if s.active]
    expire_before = now - timedelta(minutes=settings.SOP_CATCH_UP_MINUTES)
    if plan.kind == Plan.Kind.GROUP:
        for step in steps:
            _load_slots(cursor, plan, group_slots(step, start, end))
            _insert_group_deliveries(cursor, plan, step, expire_before=expire_before, now=now)
    elif plan.kind == Plan.Kind.JOURNEY:
        new = _enrol(cursor, plan, start, now=now)
        for step in steps:
            _journey_slots(cursor, plan, step, start, end, new_enrolments=new)
            _time_slots(cursor, plan)
            _insert_contact_deliveries(cursor, plan, step, expire_before=expire_before, now=now)
    else:
        for step in steps:
            if step.send_at and start < step.send_at <= end:
                _load_slots(cursor, plan, [(None, step.send_at, None)])
                if plan.groups.exists():
                    _insert_group_deliveries(
                        cursor, plan, step, expire_before=expire_before, now=now
                    )
                else:
                    _insert_contact_deliveries(
                        cursor, plan, step, expire_before=expire_before, now=now
                    )


def group_slots(step: Step, start: datetime, end: datetime) -> list[tuple]:
    """(slot_day, slot_at, None) for each day's time in (start, end] on allowed weekdays."""
    if step.at_time is None:
        return []
    slots = []
    day, last = local_day(start), local_day(end)
    while day <= last:
        at = at_local(day, step.at_time)
        if start < at <= end and (not step.weekdays or day.weekday() in step.weekdays):
            slots.append((day, at, None))
        day += timedelta(days=1)
    return slots


def _journey_slot_sql(step: Step) -> tuple[str, str, str]:
    """SQL for when a journey step is meant for enrolment `e` (before holidays and quiet
    hours): (the time `offset_days` on, as `a.at`; the base time in terms of `a.at`; the
    slot in terms of the base as `b.at`).

    The base is `offset_days` after the trigger at `at_time` (a day later if that is before
    the trigger), or the trigger plus the offset; the slot moves the base on to the first
    allowed weekday.
    """
    if step.at_time is None:
        at = "e.trigger_at + make_interval(days => %(offset_days)s, mins => %(offset_minutes)s)"
        base = "a.at"
    else:
        local = "((e.trigger_at AT TIME ZONE 'Asia/Shanghai')::date + %(offset_days)s)"
        at = f"(({local} + %(at_time)s::time) AT TIME ZONE 'Asia/Shanghai')"
        base = "a.at + CASE WHEN a.at < e.trigger_at THEN interval '1 day' ELSE interval '0' END"
    if not step.weekdays:
        return at, base, "b.at"
    # ISO day of week 1–7 against weekdays 0 (Monday) – 6.
    shift = (
        "(SELECT min((w - (extract(isodow FROM b.at AT TIME ZONE 'Asia/Shanghai')::int - 1)"
        " + 7) %% 7) FROM unnest(%(weekdays)s::int[]) AS w)"
    )
    return at, base, f"b.at + make_interval(days => {shift})"


def _journey_slots(cursor, plan, step, start, end, *, new_enrolments: set[int]) -> None:
    """Fill sop_slot with the enrolments whose slot for `step` is in (start, end], and
    those enrolled this run (from an event applied late) whose slot is already past."""
    offset = timedelta(days=step.offset_days, minutes=step.offset_minutes)
    at, base, slot = _journey_slot_sql(step)
    cursor.execute("TRUNCATE sop_slot")
    # OFFSET 0 keeps each step of the sum a subquery of its own: otherwise PostgreSQL
    # inlines every reference to it, and the time zone sums run several times per row.
    cursor.execute(
        f"""
        INSERT INTO sop_slot (slot_day, slot_at, enrolment_id)
        SELECT NULL, x.slot_at, x.id FROM (
            SELECT e.id, {slot} AS slot_at
            FROM {Enrolment._meta.db_table} e
            CROSS JOIN LATERAL (SELECT {at} AS at OFFSET 0) a
            CROSS JOIN LATERAL (SELECT {base} AS at OFFSET 0) b
            WHERE e.plan_id = %(plan)s
              AND (e.trigger_at > %(low)s AND e.trigger_at <= %(high)s OR e.id = ANY(%(new)s))
            OFFSET 0
        ) AS x
        WHERE x.slot_at <= %(end)s AND (x.slot_at > %(start)s OR x.id = ANY(%(new)s))
        """,
        {
            "plan": plan.pk,
            "offset_days": step.offset_days,
            "offset_minutes": step.offset_minutes,
            "at_time": step.at_time,
            "weekdays": list(step.weekdays),
            "low": start - offset - _JOURNEY_SPREAD,
            "high": end - offset + timedelta(days=1),
            "new": list(new_enrolments),
            "start": start,
            "end": end,
        },
    )


def _enrol(
    cursor, plan: Plan, start: datetime, *, now: datetime, shift: timedelta = timedelta(0)
) -> set[int]:
    """Enrol whoever triggered the journey since the last run; returns new enrolment ids.

    Trigger events are looked for back to the catch-up window before the last run (events
    can be applied a little after they happen), never before the plan went live. `shift`
    moves the triggers in time (a preview replays last week as the coming one).
    """
    catch_up = timedelta(minutes=settings.SOP_CATCH_UP_MINUTES)
    since = max(plan.activated_at or start, start - catch_up)
    staff_filter = "AND ev.staff_id = %(staff)s" if plan.staff_id else ""
    params = {"plan": plan.pk, "since": since, "now": now, "staff": plan.staff_id, "shift": shift}
    if plan.trigger == Plan.Trigger.INACTIVE:
        # "Quiet for N days" happens at last activity + N days; at launch, people who went
        # quiet in the week before are taken in too.
        params["days"] = timedelta(days=plan.inactive_days)
        if plan.planned_until is None:
            params["since"] = (plan.activated_at or now) - timedelta(days=7)
        follow_filter = (
            "AND EXISTS (SELECT 1 FROM contacts_follow f WHERE f.contact_id = c.id"
            " AND f.staff_id = %(staff)s AND f.deleted_by_staff_at IS NULL"
            " AND f.deleted_by_contact_at IS NULL)"
            if plan.staff_id
            else ""
        )
        source = f"""
            SELECT c.id, %(staff)s::bigint, COALESCE(c.last_active_at, c.first_added_at) + %(days)s
            FROM contacts_contact c
            WHERE COALESCE(c.last_active_at, c.first_added_at) > %(since)s::timestamptz - %(days)s
              AND COALESCE(c.last_active_at, c.first_added_at) <= %(now)s::timestamptz - %(days)s
              {follow_filter}
        """
    else:
        params["type"] = int(_TRIGGER_EVENTS[plan.trigger])
        source = f"""
            SELECT ev.contact_id, ev.staff_id, ev.occurred_at
            FROM analytics_event ev
            WHERE ev.type = %(type)s AND ev.contact_id IS NOT NULL
              AND ev.occurred_at > %(since)s AND ev.occurred_at <= %(now)s {staff_filter}
        """
    cursor.execute(
        f"""
        INSERT INTO {Enrolment._meta.db_table}
            (plan_id, contact_id, staff_id, trigger_at, created_at)
        SELECT %(plan)s, s.contact_id, s.staff_id, s.trigger_at + %(shift)s, %(now)s
        FROM ({source}) AS s (contact_id, staff_id, trigger_at)
        ON CONFLICT DO NOTHING
        RETURNING id
        """,
        params,
    )
    return {row[0] for row in cursor.fetchall()}


# --- writing deliveries -----------------------------------------------------------------


def _temp_tables(cursor) -> None:
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS sop_slot (slot_day date, slot_at timestamptz,"
        " enrolment_id bigint) ON COMMIT DROP"
    )
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS sop_timing (slot_at timestamptz PRIMARY KEY,"
        " due_at timestamptz, due_day date, due_week date, reason text, skip boolean)"
        " ON COMMIT DROP"
    )
    # This run's deliveries, with what the budgets group them by: the budget passes then
    # need not look each one up again. Only this transaction sees (and changes) those rows,
    # so `status` and `reason` stay true as long as the budget passes mark what they skip here too.
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS sop_new (id bigint PRIMARY KEY, plan_id bigint,"
        " step_id bigint, contact_id bigint, group_id bigint, sender_id bigint, due_day date,"
        " due_week date, status text, reason text, updated_at timestamptz) ON COMMIT DROP"
    )
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS sop_displaced (id bigint PRIMARY KEY) ON COMMIT DROP"
    )
    # Inside a caller's transaction the tables outlive one run.
    cursor.execute("TRUNCATE sop_new, sop_displaced")


def _load_slots(cursor, plan: Plan, slots: list[tuple]) -> None:
    """Fill sop_slot with (slot_day, slot_at, enrolment) and time them."""
    cursor.execute("TRUNCATE sop_slot")
    with cursor.cursor.copy("COPY sop_slot (slot_day, slot_at, enrolment_id) FROM STDIN") as copy:
        for slot in slots:
            copy.write_row(slot)
    _time_slots(cursor, plan)


def _time_slots(cursor, plan: Plan) -> None:
    """Work out holidays and quiet hours once per distinct slot time (a handful per run,
    however many targets share them) into sop_timing."""
    cursor.execute("TRUNCATE sop_timing")
    cursor.execute("SELECT DISTINCT slot_at FROM sop_slot")
    slots = [row[0] for row in cursor.fetchall()]
    with cursor.cursor.copy(
        "COPY sop_timing (slot_at, due_at, due_day, due_week, reason, skip) FROM STDIN"
    ) as copy:
        for slot_at in slots:
            t = timing(slot_at, plan.holiday_policy)
            copy.write_row((slot_at, t.due_at, t.due_day, t.due_week, t.reason, t.skip))
    cursor.execute("ANALYZE sop_slot")


_INSERT = f"""
    WITH ins AS (
        INSERT INTO {Delivery._meta.db_table} (plan_id, step_id, slot_day, enrolment_id,
            group_id, contact_id, sender_id, priority, slot_at, due_at, due_day, due_week,
            status, reason, detail, created_at, updated_at)
        SELECT %(plan)s, %(step)s, s.slot_day, s.enrolment_id, {{group}}, {{contact}},
            {{sender}}, %(priority)s, s.slot_at, t.due_at, t.due_day, t.due_week,
            CASE WHEN r.skip IS NULL THEN 'planned' ELSE 'skipped' END,
            COALESCE(r.skip, t.reason), '', %(now)s, %(now)s
        {{source}}
        ON CONFLICT DO NOTHING
        RETURNING id, plan_id, step_id, contact_id, group_id, sender_id, due_day, due_week,
            status, reason, updated_at
    )
    INSERT INTO sop_new SELECT * FROM ins
"""


def _insert_group_deliveries(cursor, plan, step, *, expire_before, now) -> None:
    where, params = ["g.dismissed_at IS NULL"], {}
    if plan.groups.exists():
        where.append("g.id IN (SELECT group_id FROM sop_plan_groups WHERE plan_id = %(plan)s)")
    else:
        if plan.group_types:
            where.append("g.type = ANY(%(types)s)")
            params["types"] = list(plan.group_types)
        if plan.group_labels:
            where.append("g.labels && %(labels)s::varchar[]")
            params["labels"] = list(plan.group_labels)
        if plan.group_stages:
            where.append("g.stage = ANY(%(plan_stages)s)")
            params["plan_stages"] = list(plan.group_stages)
        if plan.owners.exists():
            where.append(
                "g.owner_id IN (SELECT staff_id FROM sop_plan_owners WHERE plan_id = %(plan)s)"
            )
    if plan.staff_id:
        where.append("g.owner_id = %(staff)s")
    if step.group_stages:
        where.append("g.stage = ANY(%(step_stages)s)")
        params["step_stages"] = list(step.group_stages)
    source = f"""
        FROM sop_slot s JOIN sop_timing t ON t.slot_at = s.slot_at CROSS JOIN groups_group g
        JOIN contacts_staff o ON o.id = g.owner_id
        CROSS JOIN LATERAL (SELECT CASE
            WHEN s.slot_at < %(expire_before)s THEN 'expired'
            WHEN t.skip THEN t.reason
            WHEN o.status <> 'active' THEN 'no_sender'
        END AS skip) r
        WHERE {" AND ".join(where)}
    """
    sql = _INSERT.format(group="g.id", contact="NULL::bigint", sender="g.owner_id", source=source)
    cursor.execute(
        sql,
        {
            "plan": plan.pk,
            "step": step.pk,
            "priority": plan.priority,
            "now": now,
            "expire_before": expire_before,
            "staff": plan.staff_id,
            **params,
        },
    )


def _contact_conditions(plan: Plan, params: dict) -> str:
    """SQL (on contact c) for the plan's tag, tier and stage conditions; 'TRUE' if none."""
    tags_all = list(plan.tags_all.values_list("pk", flat=True))
    tags_any = list(plan.tags_any.values_list("pk", flat=True))
    tags_none = list(plan.tags_none.values_list("pk", flat=True))
    tiers = list(plan.tiers.values_list("pk", flat=True))
    has_tag = (
        "SELECT {} FROM contacts_contacttag ct"
        " WHERE ct.contact_id = c.id AND ct.tag_id = ANY(%({})s)"
    )
    parts = []
    if tags_all:
        params.update(tags_all=tags_all, tags_all_count=len(tags_all))
        parts.append(f"({has_tag.format('count(*)', 'tags_all')}) = %(tags_all_count)s")
    if tags_any:
        params["tags_any"] = tags_any
        parts.append(f"EXISTS ({has_tag.format('1', 'tags_any')})")
    if tags_none:
        params["tags_none"] = tags_none
        parts.append(f"NOT EXISTS ({has_tag.format('1', 'tags_none')})")
    if tiers:
        params["tiers"] = tiers
        parts.append("c.tier_id = ANY(%(tiers)s)")
    if plan.stages:
        params["stages"] = list(plan.stages)
        parts.append("c.stage = ANY(%(stages)s)")
    return " AND ".join(parts) or "TRUE"


def _insert_contact_deliveries(cursor, plan, step, *, expire_before, now) -> None:
    params = {
        "plan": plan.pk,
        "step": step.pk,
        "priority": plan.priority,
        "now": now,
        "expire_before": expire_before,
        "staff": plan.staff_id,
    }
    conditions = _contact_conditions(plan, params)
    if plan.kind == Plan.Kind.JOURNEY:
        targets = (
            f"JOIN {Enrolment._meta.db_table} e ON e.id = s.enrolment_id"
            " JOIN contacts_contact c ON c.id = e.contact_id"
        )
        since = "e.trigger_at"
    else:  # a broadcast: hand-picked customers, else everyone matching the conditions
        if plan.contacts.exists():
            targets = (
                "JOIN contacts_contact c ON c.id IN"
                " (SELECT contact_id FROM sop_plan_contacts WHERE plan_id = %(plan)s)"
            )
        else:
            targets = "CROSS JOIN contacts_contact c"
        since = "s.slot_at"
    ordered = (
        f"WHEN EXISTS (SELECT 1 FROM analytics_event ev WHERE ev.contact_id = c.id"
        f" AND ev.type = {int(EventType.ORDER_PAID)} AND ev.occurred_at > {since}) THEN 'ordered'"
        if step.only_if_no_order_since_trigger
        else ""
    )
    staff_filter = "AND f.staff_id = %(staff)s" if plan.staff_id else ""
    # The sender: the preferred staff member while they still follow the customer, else
    # the customer's earliest active follow.
    any_follow = f"""(
        SELECT f.staff_id FROM contacts_follow f
        JOIN contacts_staff st ON st.id = f.staff_id AND st.status = 'active'
        WHERE f.contact_id = c.id AND f.deleted_by_staff_at IS NULL
          AND f.deleted_by_contact_at IS NULL {staff_filter}
        ORDER BY f.added_at, f.id
        LIMIT 1
    )"""
    if plan.kind == Plan.Kind.JOURNEY:
        # Most journeys are sent by the staff member the trigger came through: joined in
        # bulk (a hash join over the follows), with the per-customer lookup (an index probe
        # and a sort each) left for the rest. COALESCE evaluates the lookup only when needed.
        targets += f"""
            LEFT JOIN (contacts_follow pf JOIN contacts_staff ps
                ON ps.id = pf.staff_id AND ps.status = 'active')
            ON pf.contact_id = c.id AND pf.staff_id = e.staff_id
              AND pf.deleted_by_staff_at IS NULL AND pf.deleted_by_contact_at IS NULL
              {"AND pf.staff_id = %(staff)s" if plan.staff_id else ""}
        """
        sender = f"COALESCE(pf.staff_id, {any_follow})"
    else:
        sender = any_follow
    source = f"""
        FROM sop_slot s JOIN sop_timing t ON t.slot_at = s.slot_at {targets}
        -- OFFSET 0 keeps this a subquery of its own, so the lookup runs once per row.
        CROSS JOIN LATERAL (SELECT {sender} AS staff_id OFFSET 0) snd
        CROSS JOIN LATERAL (SELECT CASE
            WHEN s.slot_at < %(expire_before)s THEN 'expired'
            WHEN t.skip THEN t.reason
            WHEN c.opted_out THEN 'opted_out'
            WHEN snd.staff_id IS NULL THEN 'blocked'
            WHEN NOT ({conditions}) THEN 'conditions'
            {ordered}
        END AS skip) r
    """
    if plan.kind == Plan.Kind.BROADCAST and not plan.contacts.exists():
        # Matching the conditions decides who is in the audience at all: record nothing
        # for the rest of the customer base.
        source += f" WHERE ({conditions}) AND NOT c.opted_out AND snd.staff_id IS NOT NULL"
    sql = _INSERT.format(group="NULL::bigint", contact="c.id", sender="snd.staff_id", source=source)
    cursor.execute(sql, params)


# --- budgets and events -----------------------------------------------------------------


_BUDGET = f"""
    WITH touched AS (
        SELECT DISTINCT n.{{target}} AS target, n.{{period}} AS period
        FROM sop_new n
        WHERE n.status = 'planned' AND n.{{target}} IS NOT NULL
    ),
    ranked AS (
        SELECT d.id, d.status,
            row_number() OVER (
                PARTITION BY d.{{target}}, d.{{period}}
                -- What is already on its way keeps its place; then priority, then time.
                ORDER BY (d.status <> 'planned') DESC, d.priority DESC, d.due_at, d.id
            ) AS rank
        FROM {Delivery._meta.db_table} d
        JOIN touched t ON d.{{target}} = t.target AND d.{{period}} = t.period
        WHERE d.status IN {ACTIVE_STATUSES}
    )
    UPDATE {Delivery._meta.db_table} d
    SET status = 'skipped', reason = %(reason)s, updated_at = %(now)s
    FROM ranked r
    -- d.status again: a concurrent dispatch may have queued it since the snapshot.
    WHERE d.id = r.id AND r.status = 'planned' AND d.status = 'planned' AND r.rank > %(cap)s
    RETURNING d.id
"""


def _settle(cursor, *, now: datetime, plans: int, record: bool = True) -> PlanningResult:
    """Apply the shared push budgets to what this run planned, then log every outcome."""
    # Statistics for this run's rows: without them PostgreSQL guesses a few hundred and,
    # when logging, walks every delivery the plans ever had instead of this run's.
    cursor.execute("ANALYZE sop_new")
    for target, caps in (("contact_id", contact_caps()), ("group_id", group_caps())):
        for period, cap, reason in (
            ("due_day", caps.day, caps.day_reason),
            ("due_week", caps.per_week, SkipReason.BUDGET_WEEK),
        ):
            cursor.execute(
                f"WITH over AS ({_BUDGET.format(target=target, period=period)}),"
                " marked AS (UPDATE sop_new n SET status = 'skipped', reason = %(reason)s FROM over"
                " WHERE n.id = over.id RETURNING n.id)"
                " INSERT INTO sop_displaced (id) SELECT id FROM over"
                " WHERE id NOT IN (SELECT id FROM marked) ON CONFLICT DO NOTHING",
                {"cap": cap, "reason": reason, "now": now},
            )
    result = PlanningResult(plans=plans)
    cursor.execute("SELECT status, reason, count(*) FROM sop_new GROUP BY 1, 2")
    for status, reason, count in cursor.fetchall():
        if status == Delivery.Status.PLANNED:
            result.planned += count
        else:
            result.skipped[reason] = result.skipped.get(reason, 0) + count
    cursor.execute("SELECT count(*) FROM sop_displaced")
    result.displaced = cursor.fetchone()[0]
    if record:
        # This run's rows as sop_new holds them (no second read of the ledger), and the
        # earlier ones it displaced.
        _record_events("(SELECT *, NULL::bigint AS message_id FROM sop_new)")
        record_delivery_events("SELECT id FROM sop_displaced")
    return result


def record_delivery_events(ids_sql: str, params: dict | tuple = ()) -> int:
    """Log each delivery's current state (planned, skipped with its reason, sent…) once."""
    return _record_events(
        f"(SELECT * FROM {Delivery._meta.db_table} WHERE id IN ({ids_sql}))", params
    )


def _record_events(deliveries: str, params: dict | tuple = ()) -> int:
    """record_delivery_events for `deliveries`, a relation with the ledger's columns."""
    types = {
        Delivery.Status.PLANNED: EventType.DELIVERY_PLANNED,
        Delivery.Status.SKIPPED: EventType.DELIVERY_SKIPPED,
        Delivery.Status.SENT: EventType.DELIVERY_SENT,
        Delivery.Status.CONFIRMED: EventType.DELIVERY_CONFIRMED,
        Delivery.Status.DELIVERED: EventType.DELIVERY_DELIVERED,
        Delivery.Status.FAILED: EventType.DELIVERY_FAILED,
    }
    type_case = " ".join(f"WHEN '{status}' THEN {int(t)}" for status, t in types.items())
    return record_selected(
        f"""
        SELECT (CASE d.status {type_case} END)::smallint, d.updated_at, d.contact_id,
            d.group_id, d.sender_id, NULL::bigint, p.campaign_id, NULL::bigint,
            -- Most are plainly planned: build those without the keys they lack (stripping
            -- nulls costs as much again, by the hundred thousand).
            CASE WHEN d.reason = '' AND d.message_id IS NULL
                THEN jsonb_build_object('delivery', d.id, 'plan', d.plan_id, 'step', d.step_id)
                ELSE jsonb_strip_nulls(jsonb_build_object('delivery', d.id, 'plan', d.plan_id,
                    'step', d.step_id, 'reason', NULLIF(d.reason, ''), 'message', d.message_id))
            END,
            'delivery:' || d.id || ':' || d.status
        FROM {deliveries} d JOIN {Plan._meta.db_table} p ON p.id = d.plan_id
        WHERE d.status <> 'queued'
        """,
        params,
    )
