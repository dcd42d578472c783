"""Reads on the SOP engine: what a login may see, completion per staff member, content results."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, Q, QuerySet

from analytics.models import EventType
from contacts.models import Staff
from sop.models import ContentItem, Delivery, MassMessage, Plan


def _sees_all(user) -> bool:
    return user.is_manager or user.is_read_only


def _staff(user) -> Staff | None:
    return getattr(user, "staff", None)


def plans_visible_to(user) -> QuerySet[Plan]:
    """Every plan for managers and analysts; an operator's own plans (plan.staff) otherwise."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Plan.objects.none()
    if _sees_all(user):
        return Plan.objects.all()
    staff = _staff(user)
    if staff is None:
        return Plan.objects.none()
    return Plan.objects.filter(staff=staff)


def deliveries_visible_to(user) -> QuerySet[Delivery]:
    """Every delivery for managers and analysts; an operator's those they send."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Delivery.objects.none()
    if _sees_all(user):
        return Delivery.objects.all()
    staff = _staff(user)
    if staff is None:
        return Delivery.objects.none()
    return Delivery.objects.filter(sender=staff)


def content_visible_to(user) -> QuerySet[ContentItem]:
    """The content library is shared: everyone reads it (operators build their plans on it)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return ContentItem.objects.none()
    return ContentItem.objects.all()


# --- mass-message completion per staff member ----------------------------------------------


@dataclass
class Completion:
    staff: Staff
    messages: int  # mass messages created for this sender in the period
    confirmed: int  # of those, the ones the staff member confirmed (sent on in WeCom)
    delivered: int
    failed: int

    @property
    def rate(self) -> float | None:
        """confirmed ÷ messages; None (shown as "—") when there were no messages."""
        return self.confirmed / self.messages if self.messages else None


def completion_by_staff(since: datetime, until: datetime, *, user=None) -> list[Completion]:
    """Per sender: mass messages created in [since, until), how many they confirmed, and what
    became of those messages' deliveries. An operator (when `user` is given) sees only
    their own row."""
    messages = MassMessage.objects.filter(created_at__gte=since, created_at__lt=until)
    if user is not None and not _sees_all(user):
        staff = _staff(user)
        messages = messages.filter(sender=staff) if staff else messages.none()
    message_rows = messages.values("sender").annotate(
        messages=Count("id"), confirmed=Count("id", filter=Q(confirmed_at__isnull=False))
    )
    delivery_rows = (
        Delivery.objects.filter(message__in=messages)
        .values("sender")
        .annotate(
            delivered=Count("id", filter=Q(status=Delivery.Status.DELIVERED)),
            failed=Count("id", filter=Q(status=Delivery.Status.FAILED)),
        )
    )
    by_sender = {row["sender"]: row for row in message_rows}
    outcomes = {row["sender"]: row for row in delivery_rows}
    staff = Staff.objects.in_bulk(list(by_sender))
    rows = [
        Completion(
            staff=staff[pk],
            messages=row["messages"],
            confirmed=row["confirmed"],
            delivered=outcomes.get(pk, {}).get("delivered", 0),
            failed=outcomes.get(pk, {}).get("failed", 0),
        )
        for pk, row in by_sender.items()
    ]
    return sorted(rows, key=lambda r: (r.rate is None, r.rate or 0, r.staff.name))


# --- what each piece of content achieved ---------------------------------------------------


@dataclass
class ContentResult:
    delivered: int = 0  # deliveries that reached their group or customer
    confirmations: int = 0  # mass messages of it a staff member confirmed
    confirming_staff: int = 0  # distinct staff members who confirmed one
    group_messages: int = 0  # messages spoken in reached groups within the window
    contacts_reached: int = 0
    contacts_responded: int = 0  # reached customers who spoke or ordered within the window
    orders: int = 0  # orders within the window (reached customers, or in reached groups)
    order_fen: int = 0

    @property
    def response_rate(self) -> float | None:
        if not self.contacts_reached:
            return None
        return self.contacts_responded / self.contacts_reached


# A delivery reached its target when the staff member confirmed the mass message; the
# message's confirmation time (else its send time) starts the window.
_MESSAGE, _ORDER = int(EventType.MESSAGE), int(EventType.ORDER_PAID)
_FOLLOWED = f"""
    SELECT r.content_id, r.group_id, r.contact_id, f.messages, f.orders, f.fen, f.spoke
    FROM reached r
    CROSS JOIN LATERAL (
        SELECT
            COALESCE(sum(COALESCE(ev.amount, 1)) FILTER (WHERE ev.type = {_MESSAGE}), 0)
                AS messages,
            count(*) FILTER (WHERE ev.type = {_ORDER}) AS orders,
            COALESCE(sum(ev.amount) FILTER (WHERE ev.type = {_ORDER}), 0) AS fen,
            count(*) > 0 AS spoke
        FROM analytics_event ev
        WHERE ev.{{target}} = r.{{target}} AND ev.type IN ({_MESSAGE}, {_ORDER})
          AND ev.occurred_at > r.at AND ev.occurred_at <= r.at + %(window)s
    ) f
    WHERE r.{{target}} IS NOT NULL
"""
# Group and customer deliveries look up events by their own indexed column each (an OR of
# the two would read the whole log).
_RESULTS_SQL = f"""
    WITH reached AS (
        SELECT d.id, s.content_id, d.group_id, d.contact_id,
            COALESCE(m.confirmed_at, m.sent_at, d.updated_at) AS at
        FROM {Delivery._meta.db_table} d
        JOIN sop_step s ON s.id = d.step_id
        LEFT JOIN {MassMessage._meta.db_table} m ON m.id = d.message_id
        WHERE d.status = 'delivered' AND s.content_id = ANY(%(content)s)
    ),
    followed AS (
        {_FOLLOWED.format(target="group_id")}
        UNION ALL
        {_FOLLOWED.format(target="contact_id")}
    )
    SELECT content_id,
        count(*),
        COALESCE(sum(messages) FILTER (WHERE group_id IS NOT NULL), 0),
        count(*) FILTER (WHERE contact_id IS NOT NULL),
        count(*) FILTER (WHERE contact_id IS NOT NULL AND spoke),
        COALESCE(sum(orders), 0),
        COALESCE(sum(fen), 0)
    FROM followed GROUP BY content_id
"""

_CONFIRMATIONS_SQL = f"""
    SELECT content_id, count(*), count(DISTINCT sender_id)
    FROM {MassMessage._meta.db_table}
    WHERE confirmed_at IS NOT NULL AND content_id = ANY(%(content)s)
    GROUP BY content_id
"""


def content_results(content_ids=None, *, window_hours: int = 72) -> dict[int, ContentResult]:
    """For each piece of content (all, or `content_ids`): what it reached and what followed
    within `window_hours` of reaching it, read from the event log in two queries.

    Group deliveries count the messages spoken in that group and the orders placed in it;
    customer deliveries count whether the customer spoke or ordered, and their orders.
    """
    if content_ids is None:
        content_ids = list(ContentItem.objects.values_list("pk", flat=True))
    content_ids = list(content_ids)
    results = {pk: ContentResult() for pk in content_ids}
    if not content_ids:
        return results
    params = {"content": content_ids, "window": timedelta(hours=window_hours)}
    with connection.cursor() as cursor:
        cursor.execute(_RESULTS_SQL, params)
        for pk, delivered, group_messages, reached, responded, orders, fen in cursor.fetchall():
            result = results[pk]
            result.delivered = delivered
            result.group_messages = int(group_messages)
            result.contacts_reached = reached
            result.contacts_responded = responded
            result.orders = int(orders)
            result.order_fen = int(fen)
        cursor.execute(_CONFIRMATIONS_SQL, params)
        for pk, confirmations, staff in cursor.fetchall():
            results[pk].confirmations = confirmations
            results[pk].confirming_staff = staff
    return results


# --- one plan ----------------------------------------------------------------------------


def plan_summary(plan: Plan) -> dict:
    """A plan's deliveries counted by status and, for those that did not go, by reason."""
    rows = (
        Delivery.objects.filter(plan=plan)
        .values("status", "reason")
        .annotate(n=Count("id"))
        .order_by()
    )
    by_status: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    for row in rows:
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["n"]
        if row["reason"]:
            by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + row["n"]
    return {"total": sum(by_status.values()), "by_status": by_status, "by_reason": by_reason}
