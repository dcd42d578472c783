"""A contact's lifecycle as the event log tells it: orders, activity and the stage they give."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce

from analytics.events import EventRow, record, record_many
from analytics.models import Event, EventType
from contacts.models import Contact, Follow

# Settings-like constants: the articles' wake-up rule is "30 days without activity"; after a
# quarter of silence a customer is treated as lost. Change them here, in one place.
DORMANT_AFTER_DAYS = 30
CHURNED_AFTER_DAYS = 90

# What counts as activity ("active" in PRODUCT.md): speaking or ordering.
ACTIVITY_TYPES = (EventType.MESSAGE, EventType.ORDER_PAID)
DAY = timedelta(days=1)


# --- order facts -------------------------------------------------------------------------
#
# Contacts sit below campaigns, so orders are read from the event log rather than from
# campaigns.Order: ORDER_PAID (amount = fen) and ORDER_REFUNDED (amount = fen refunded), tied
# together by payload["order_no"]. An order's net is what was paid minus its refunds; an
# order counts while its net is above zero, so a full refund takes it away.
#
# Written as SQL: one pass over the order events, grouped by order, then by contact. (An
# ORM version needs a correlated refund lookup per paid order, which at 10M events is
# minutes where this is about a second.)

# Per-contact aggregates a condition may use, over the contact's counted orders.
ORDER_AGGREGATES = {
    "orders": "count(*)",
    "spend_fen": "sum(net_fen)",
    "biggest_fen": "max(net_fen)",
    "last_order_at": "max(paid_at)",
}
SQL_OPERATORS = {">=": ">=", "<=": "<=", "==": "=", "!=": "<>", ">": ">", "<": "<"}


def _orders_sql(
    *, contact_id: int | None, since: datetime | None, until: datetime | None
) -> tuple[str, list]:
    """Every order in (since, until] as (contact_id, net_fen, paid_at), counted or not.

    A refund always follows its payment, so the window can bound both kinds of row; an
    order without an order_no stands alone.
    """
    where = ["type IN (%s, %s)", "contact_id IS NOT NULL"]
    params: list = [EventType.ORDER_PAID, EventType.ORDER_REFUNDED]
    if contact_id is not None:
        where.append("contact_id = %s")
        params.append(contact_id)
    if since is not None:
        where.append("occurred_at > %s")
        params.append(since)
    if until is not None:
        where.append("occurred_at <= %s")
        params.append(until)
    sql = (
        "SELECT contact_id,"
        " coalesce(sum(amount) FILTER (WHERE type = %s), 0)"
        "  - coalesce(sum(amount) FILTER (WHERE type = %s), 0) AS net_fen,"
        " max(occurred_at) FILTER (WHERE type = %s) AS paid_at"
        f" FROM {Event._meta.db_table} WHERE {' AND '.join(where)}"
        " GROUP BY contact_id, coalesce(payload ->> 'order_no', 'event:' || id::text)"
    )
    return sql, [EventType.ORDER_PAID, EventType.ORDER_REFUNDED, EventType.ORDER_PAID, *params]


def orders_q(
    having: list[tuple[str, str, object]] = (),
    *,
    negate: bool = False,
    contact_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Q:
    """Contacts with counted orders in (since, until] whose aggregates meet every
    (aggregate, op, value) in `having`; with `negate`, those with orders that miss one.

    `since` is exclusive and `until` inclusive; refunds count up to `until`.
    """
    inner, params = _orders_sql(contact_id=contact_id, since=since, until=until)
    sql = f"SELECT contact_id FROM ({inner}) AS o WHERE paid_at IS NOT NULL AND net_fen > 0"
    sql += " GROUP BY contact_id"
    if having:
        test = " AND ".join(
            f"{ORDER_AGGREGATES[name]} {SQL_OPERATORS[op]} %s" for name, op, _ in having
        )
        sql += f" HAVING NOT ({test})" if negate else f" HAVING {test}"
        params += [value for _, _, value in having]
    return Q(pk__in=RawSQL(sql, params))


def kept_orders(
    *,
    contact_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Event]:
    """The counted orders as ORDER_PAID events, annotated with `net_fen`: the same facts as
    orders_q, as a queryset for lookups correlated to one contact (`contact_id=OuterRef(..)`),
    which the event log's contact index answers. For sets over every contact use orders_q.
    """
    refunds = Event.objects.filter(
        type=EventType.ORDER_REFUNDED,
        contact_id=OuterRef("contact_id"),
        payload__order_no=OuterRef("payload__order_no"),
    )
    orders = Event.objects.filter(type=EventType.ORDER_PAID, contact_id__isnull=False)
    if contact_id is not None:
        orders = orders.filter(contact_id=contact_id)
        refunds = refunds.filter(contact_id=contact_id)
    if since is not None:
        orders = orders.filter(occurred_at__gt=since)
    if until is not None:
        orders = orders.filter(occurred_at__lte=until)
        refunds = refunds.filter(occurred_at__lte=until)
    refunded = Subquery(
        refunds.order_by().values("contact_id").annotate(total=Sum("amount")).values("total")[:1]
    )
    return orders.annotate(net_fen=Coalesce("amount", 0) - Coalesce(refunded, 0)).filter(
        net_fen__gt=0
    )


def order_totals(
    *,
    contact_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet:
    """Per contact: `orders`, `spend_fen` (sum of nets), `biggest_fen`, `last_order_at`;
    for a contact or a few (see kept_orders)."""
    return (
        kept_orders(contact_id=contact_id, since=since, until=until)
        .order_by()
        .values("contact_id")
        .annotate(
            orders=Count("id"),
            spend_fen=Sum("net_fen"),
            biggest_fen=Max("net_fen"),
            last_order_at=Max("occurred_at"),
        )
    )


@dataclass(frozen=True)
class OrderTotals:
    orders: int = 0
    spend_fen: int = 0
    biggest_fen: int = 0
    last_order_at: datetime | None = None


def contact_order_totals(contact: Contact, *, until: datetime | None = None) -> OrderTotals:
    """One contact's counted orders, net of refunds (what tiers and stages are judged on)."""
    inner, params = _orders_sql(contact_id=contact.pk, since=None, until=until)
    columns = ", ".join(ORDER_AGGREGATES[name] for name in ("orders", "spend_fen", "biggest_fen"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns}, max(paid_at) FROM ({inner}) AS o"
            " WHERE paid_at IS NOT NULL AND net_fen > 0",
            params,
        )
        orders, spend, biggest, last = cursor.fetchone()
    return OrderTotals(orders, int(spend or 0), int(biggest or 0), last)


def use_batch_memory() -> None:
    """Give this transaction's queries room to hash their subqueries of contact ids.

    A set-based run over every contact tests membership in sets of up to one id per
    contact; if PostgreSQL thinks a set will not fit in work_mem (4 MB by default) it
    rescans the subquery for each contact instead, turning seconds into hours.
    """
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '64MB'")


# --- activity ----------------------------------------------------------------------------


def active_between(*, since: datetime, until: datetime) -> Exists:
    """Whether the contact (the outer row) spoke or ordered in (since, until].

    Correlated EXISTS rather than `pk IN (events)`: PostgreSQL turns it into an anti- or
    semi-join, or one index probe per contact, where NOT IN over millions of event rows
    that do not fit in memory degrades to a rescan per contact.
    """
    return Exists(
        Event.objects.filter(
            contact_id=OuterRef("pk"),
            type__in=ACTIVITY_TYPES,
            occurred_at__gt=since,
            occurred_at__lte=until,
        )
    )


def joined_by(moment: datetime) -> Q:
    """Contacts who were ours by this moment (first added; else when we first saw them)."""
    return Q(first_added_at__lte=moment) | Q(first_added_at__isnull=True, created_at__lte=moment)


def quiet_since(cutoff: datetime, *, now: datetime) -> Q:
    """Contacts with no speech or order in (cutoff, now] who had joined by the cutoff.

    A newcomer who has not spoken yet is quiet only once the whole window has passed since
    they joined.
    """
    return ~Q(active_between(since=cutoff, until=now)) & joined_by(cutoff)


def last_activity_at(contact: Contact, *, now: datetime) -> datetime | None:
    """When the contact last spoke or ordered, up to `now`."""
    return (
        Event.objects.filter(contact_id=contact.pk, type__in=ACTIVITY_TYPES, occurred_at__lte=now)
        .order_by("-occurred_at")
        .values_list("occurred_at", flat=True)
        .first()
    )


# --- lifecycle stage ---------------------------------------------------------------------


def follows_ended() -> Q:
    """Contacts who had follow relations and have none left (deleted or blocked on all)."""
    follows = Follow.objects.filter(contact_id=OuterRef("pk"))
    active = follows.filter(deleted_by_staff_at__isnull=True, deleted_by_contact_at__isnull=True)
    return Q(Exists(follows)) & ~Q(Exists(active))


def stage_expression(*, now: datetime, contact_id: int | None = None) -> Case:
    """The stage each contact is in at `now`, as one SQL expression over contacts.

    In order: churned (every follow relation ended, or silent for CHURNED_AFTER_DAYS),
    dormant (silent for DORMANT_AFTER_DAYS), repeat (2+ orders), first order, new.
    """
    return Case(
        When(
            follows_ended() | quiet_since(now - CHURNED_AFTER_DAYS * DAY, now=now),
            then=Value(Contact.Stage.CHURNED),
        ),
        When(
            quiet_since(now - DORMANT_AFTER_DAYS * DAY, now=now),
            then=Value(Contact.Stage.DORMANT),
        ),
        When(
            orders_q([("orders", ">=", 2)], contact_id=contact_id, until=now),
            then=Value(Contact.Stage.REPEAT),
        ),
        When(orders_q(contact_id=contact_id, until=now), then=Value(Contact.Stage.FIRST_ORDER)),
        default=Value(Contact.Stage.NEW),
    )


def stage_for(contact: Contact, *, now: datetime) -> str:
    """The lifecycle stage (Contact.Stage) the event log puts this contact in at `now`."""
    return (
        Contact.objects.filter(pk=contact.pk)
        .annotate(target=stage_expression(now=now, contact_id=contact.pk))
        .values_list("target", flat=True)
        .get()
    )


def _stage_event_key(contact_id: int, before: str, after: str, now: datetime) -> str:
    return f"stage:{contact_id}:{before}>{after}:{now.isoformat()}"


@transaction.atomic
def stage_update(contact: Contact, *, now: datetime, key: str | None = None) -> bool:
    """Bring the contact's stage and last_active_at up to date; True if the stage moved.

    A move is recorded as STAGE_CHANGED (payload from/to). `key` names the fact that
    prompted the check, so a retry records nothing twice.
    """
    locked = Contact.objects.select_for_update().get(pk=contact.pk)
    target = stage_for(locked, now=now)
    changed = []
    last_active = last_activity_at(locked, now=now)
    if last_active and (locked.last_active_at is None or last_active > locked.last_active_at):
        locked.last_active_at = last_active
        changed.append("last_active_at")
    before = locked.stage
    if target != before:
        locked.stage = target
        changed.append("stage")
    if changed:
        locked.save(update_fields=[*changed, "updated_at"])
        contact.stage, contact.last_active_at = locked.stage, locked.last_active_at
    if target == before:
        return False
    record(
        type=EventType.STAGE_CHANGED,
        occurred_at=now,
        key=f"{key}:stage:{contact.pk}"
        if key
        else _stage_event_key(contact.pk, before, target, now),
        contact=contact.pk,
        payload={"from": before, "to": target},
    )
    return True


_LAST_ACTIVE_SQL = f"""
    UPDATE {Contact._meta.db_table} AS c SET last_active_at = a.last_at
    FROM (
        SELECT contact_id, max(occurred_at) AS last_at FROM {Event._meta.db_table}
        WHERE type = ANY(%s) AND contact_id IS NOT NULL AND occurred_at <= %s
        GROUP BY contact_id
    ) AS a
    WHERE c.id = a.contact_id AND (c.last_active_at IS NULL OR c.last_active_at < a.last_at)
"""

_SET_STAGE_SQL = f"""
    UPDATE {Contact._meta.db_table} SET stage = %s, updated_at = now()
    WHERE id = ANY(%s) AND stage = %s RETURNING id
"""


@transaction.atomic
def stages_refresh(*, now: datetime) -> int:
    """Every contact's stage and last_active_at at `now`, set-based; returns stages moved.

    Silence moves people to dormant and churned without any new event, so this runs on a
    schedule. Only contacts whose stage differs are written and get a STAGE_CHANGED event.
    """
    use_batch_memory()
    with connection.cursor() as cursor:
        cursor.execute(_LAST_ACTIVE_SQL, [[int(t) for t in ACTIVITY_TYPES], now])
    moves: dict[tuple[str, str], list[int]] = {}
    rows = (
        Contact.objects.annotate(target=stage_expression(now=now))
        .exclude(stage=F("target"))
        .values_list("pk", "stage", "target")
    )
    for pk, before, after in rows.iterator(chunk_size=10_000):
        moves.setdefault((before, after), []).append(pk)
    events = []
    with connection.cursor() as cursor:
        for (before, after), ids in moves.items():
            # Compare-and-set: a contact moved meanwhile by stage_update is left alone.
            cursor.execute(_SET_STAGE_SQL, [after, ids, before])
            events.extend(
                EventRow(
                    type=EventType.STAGE_CHANGED,
                    occurred_at=now,
                    key=_stage_event_key(pk, before, after, now),
                    contact_id=pk,
                    payload={"from": before, "to": after},
                )
                for (pk,) in cursor.fetchall()
            )
    record_many(events)
    return len(events)
