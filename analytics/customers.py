"""Customers as a whole: the four-type split, RFM layers and lifetime value.

The customer types' rules live with the contact list (contacts.selectors), so the split and
the list behind each slice can never disagree: a slice links to the list filtered by it.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone

from analytics.metrics import EVENTS, Ratio, _rows
from analytics.models import EventType
from contacts.filters import CustomerType
from contacts.selectors import contacts_visible_to, customer_facts, customer_type_thresholds


@dataclass(frozen=True)
class TypeSlice:
    type: str
    label: str
    count: int
    share: Ratio
    list_url: str


def type_thresholds() -> dict:
    return customer_type_thresholds()


def type_split(*, user, now: datetime | None = None) -> list[TypeSlice]:
    """How the customers the user may see divide into the four types (and unclassified)."""
    now = now or timezone.now()
    # Grouped facts for everyone, typed in Python: the list filter's one SQL expression
    # (customer_type_expression) gives the same types, but per customer costs seconds here.
    facts = customer_facts(contacts_visible_to(user).values_list("pk", flat=True), now=now)
    counts = Counter(f.customer_type().value for f in facts.values())
    total = sum(counts.values())
    base = reverse("contacts:list")
    return [
        TypeSlice(
            type=kind.value,
            label=str(kind.label),
            count=counts.get(kind.value, 0),
            share=Ratio(counts.get(kind.value, 0), total),
            list_url=f"{base}?{urlencode({'customer_type': kind.value})}",
        )
        for kind in CustomerType
    ]


# --- RFM and lifetime value ---------------------------------------------------------------

# A contact's orders, net of refunds, all time: (contact_id, orders, revenue_fen, last_paid).
_CONTACT_ORDERS = f"""
    SELECT contact_id, count(*) AS orders, sum(net_fen) AS revenue_fen, max(paid_at) AS last_paid
    FROM (
        SELECT contact_id,
               coalesce(sum(amount) FILTER (WHERE type = {int(EventType.ORDER_PAID)}), 0)
               - coalesce(sum(amount) FILTER (WHERE type = {int(EventType.ORDER_REFUNDED)}), 0)
                 AS net_fen,
               max(occurred_at) FILTER (WHERE type = {int(EventType.ORDER_PAID)}) AS paid_at
        FROM {EVENTS}
        WHERE type IN ({int(EventType.ORDER_PAID)}, {int(EventType.ORDER_REFUNDED)})
          AND contact_id IS NOT NULL AND occurred_at < %(now)s
        GROUP BY contact_id, coalesce(payload ->> 'order_no', 'event:' || id::text)
    ) AS per_order
    WHERE paid_at IS NOT NULL AND net_fen > 0
    GROUP BY contact_id
"""


@dataclass(frozen=True)
class RfmCell:
    recency: int  # 5 = bought most recently … 1 = longest ago
    frequency: int  # 5 = most orders
    monetary: int  # 5 = most spent
    contacts: int
    revenue_fen: int


def rfm_layers(*, now: datetime | None = None) -> list[RfmCell]:
    """Buyers in RFM quintiles (recency, frequency, money), counted per cell."""
    rows = _rows(
        f"""
        WITH buyers AS ({_CONTACT_ORDERS}),
        scored AS (
            SELECT ntile(5) OVER (ORDER BY last_paid) AS r,
                   ntile(5) OVER (ORDER BY orders) AS f,
                   ntile(5) OVER (ORDER BY revenue_fen) AS m,
                   revenue_fen
            FROM buyers
        )
        SELECT r, f, m, count(*), sum(revenue_fen) FROM scored
        GROUP BY r, f, m ORDER BY r DESC, f DESC, m DESC
        """,
        {"now": now or timezone.now()},
    )
    return [RfmCell(r, f, m, n, int(revenue)) for r, f, m, n, revenue in rows]


@dataclass(frozen=True)
class ChannelValue:
    channel_id: int | None
    name: str
    contacts: int
    revenue_fen: int
    cost_fen: Decimal
    acquisition_cost_fen: Ratio  # cost ÷ contacts brought
    lifetime_value_fen: Ratio  # (revenue − cost) ÷ contacts


def _channel_costs() -> dict[int, Decimal]:
    rows = _rows(
        f"SELECT channel_id, sum(amount) FROM {EVENTS}"
        f" WHERE type = {int(EventType.COST_RECORDED)} AND channel_id IS NOT NULL"
        " GROUP BY channel_id",
        {},
    )
    return {channel: Decimal(cost) for channel, cost in rows}


def lifetime_value(contact_id: int, *, now: datetime | None = None) -> Decimal:
    """顾客终身价值: the contact's order revenue minus what acquiring them cost — their
    source channel's recorded cost shared equally among the contacts it brought (the
    articles: acquired for 30, buys 100 → 70)."""
    rows = _rows(
        f"""
        SELECT c.source_channel_id,
               (SELECT count(*) FROM contacts_contact x
                WHERE x.source_channel_id = c.source_channel_id),
               coalesce((SELECT revenue_fen FROM ({_CONTACT_ORDERS}) o
                         WHERE o.contact_id = c.id), 0)
        FROM contacts_contact c WHERE c.id = %(contact)s
        """,
        {"contact": contact_id, "now": now or timezone.now()},
    )
    if not rows:
        raise ValueError(f"no contact {contact_id}")
    channel, brought, revenue = rows[0]
    cost = _channel_costs().get(channel, Decimal(0)) if channel else Decimal(0)
    return Decimal(revenue) - (cost / brought if channel and brought else Decimal(0))


def channel_values(*, now: datetime | None = None) -> list[ChannelValue]:
    """Lifetime value per channel: its contacts' revenue minus its recorded cost, per contact."""
    costs = _channel_costs()
    rows = _rows(
        f"""
        SELECT c.source_channel_id, coalesce(ch.name, ''), count(*),
               coalesce(sum(o.revenue_fen), 0)
        FROM contacts_contact c
        LEFT JOIN contacts_channelcode ch ON ch.id = c.source_channel_id
        LEFT JOIN ({_CONTACT_ORDERS}) o ON o.contact_id = c.id
        GROUP BY 1, 2 ORDER BY 1 NULLS LAST
        """,
        {"now": now or timezone.now()},
    )
    values = []
    for channel, name, contacts, revenue in rows:
        cost = costs.get(channel, Decimal(0))
        values.append(
            ChannelValue(
                channel_id=channel,
                name=name,
                contacts=contacts,
                revenue_fen=int(revenue),
                cost_fen=cost,
                acquisition_cost_fen=Ratio(cost, contacts),
                lifetime_value_fen=Ratio(Decimal(revenue) - cost, contacts),
            )
        )
    return values
