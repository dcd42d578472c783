"""Customers as a whole: the four-type split, RFM layers and lifetime value.

The customer types' rules live with the contact list (contacts.selectors), so the split and
the list behind each slice can never disagree: a slice links to the list filtered by it.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone

from analytics.metrics import EVENTS, Ratio, _rows, counted_orders_sql
from analytics.models import EventType
from contacts.filters import CustomerType
from contacts.selectors import (
    contacts_visible_to,
    customer_type_counts,
    customer_type_thresholds,
)


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
    # Grouped in SQL: the list filter's one SQL expression (customer_type_expression) gives
    # the same types, but evaluated per customer it costs seconds here.
    counts = customer_type_counts(contacts_visible_to(user), now=now)
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

# A contact's orders, net of refunds, all time up to `end`: (contact_id, orders, revenue_fen,
# last_paid). Counted orders as every metric counts them (metrics.counted_orders_sql), read
# from the index of rare events: grouping every order and refund by its number read each
# order's row from the table.
_CONTACT_ORDERS = f"""
    SELECT contact_id, count(*) AS orders, sum(net_fen) AS revenue_fen, max(paid_at) AS last_paid
    FROM ({counted_orders_sql()}) AS counted
    GROUP BY contact_id
"""
# Since when `_CONTACT_ORDERS` counts orders: before any order there is.
_ALL_TIME = datetime(2000, 1, 1, tzinfo=UTC)


def _up_to(now: datetime | None) -> dict:
    return {"start": _ALL_TIME, "end": now or timezone.now()}


@dataclass(frozen=True)
class RfmCell:
    recency: int  # 5 = bought most recently … 1 = longest ago
    frequency: int  # 5 = most orders
    monetary: int  # 5 = most spent
    contacts: int
    revenue_fen: int


# A buyer's quintile 1 … 5 by `{by}`, from where they rank among all buyers. Equal buyers
# share a quintile (most have one order: all of them frequency 1); ntile() would deal them
# out over several, differently from one plan to the next.
_QUINTILE = "least(5, 1 + floor(5 * percent_rank() OVER (ORDER BY {by})))::int"

# Buyers (from `buyers`: _CONTACT_ORDERS) in RFM quintiles, per cell: (r, f, m, contacts,
# revenue_fen).
_RFM_CELLS = f"""
    SELECT r, f, m, count(*) AS contacts, sum(revenue_fen) AS revenue_fen
    FROM (
        SELECT {_QUINTILE.format(by="last_paid")} AS r,
               {_QUINTILE.format(by="orders")} AS f,
               {_QUINTILE.format(by="revenue_fen")} AS m,
               revenue_fen
        FROM buyers
    ) AS scored
    GROUP BY r, f, m
"""


def _rfm_cells(rows) -> list[RfmCell]:
    cells = [RfmCell(r, f, m, n, int(revenue)) for r, f, m, n, revenue in rows]
    return sorted(cells, key=lambda c: (c.recency, c.frequency, c.monetary), reverse=True)


def rfm_layers(*, now: datetime | None = None) -> list[RfmCell]:
    """Buyers in RFM quintiles (recency, frequency, money), counted per cell."""
    rows = _rows(f"WITH buyers AS ({_CONTACT_ORDERS}) {_RFM_CELLS}", _up_to(now))
    return _rfm_cells(rows)


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
        {"contact": contact_id, **_up_to(now)},
    )
    if not rows:
        raise ValueError(f"no contact {contact_id}")
    channel, brought, revenue = rows[0]
    cost = _channel_costs().get(channel, Decimal(0)) if channel else Decimal(0)
    return Decimal(revenue) - (cost / brought if channel and brought else Decimal(0))


# Every contact by source channel, with their revenue (from `buyers`: _CONTACT_ORDERS):
# (channel_id, name, contacts, revenue_fen). The two are counted apart and joined by
# channel: carrying every contact through the join to the buyers cost twice as much.
_CHANNEL_REVENUE = """
    SELECT brought.channel_id, coalesce(ch.name, '') AS name, brought.contacts,
           coalesce(earned.revenue_fen, 0) AS revenue_fen
    FROM (
        SELECT source_channel_id AS channel_id, count(*) AS contacts
        FROM contacts_contact GROUP BY 1
    ) AS brought
    LEFT JOIN (
        SELECT c.source_channel_id AS channel_id, sum(o.revenue_fen) AS revenue_fen
        FROM buyers o JOIN contacts_contact c ON c.id = o.contact_id
        GROUP BY 1
    ) AS earned ON earned.channel_id IS NOT DISTINCT FROM brought.channel_id
    LEFT JOIN contacts_channelcode ch ON ch.id = brought.channel_id
"""


def _channel_values(rows) -> list[ChannelValue]:
    costs = _channel_costs()
    values = []
    for channel, name, contacts, revenue in sorted(rows, key=lambda r: (r[0] is None, r[0])):
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


def channel_values(*, now: datetime | None = None) -> list[ChannelValue]:
    """Lifetime value per channel: its contacts' revenue minus its recorded cost, per contact."""
    rows = _rows(f"WITH buyers AS ({_CONTACT_ORDERS}) {_CHANNEL_REVENUE}", _up_to(now))
    return _channel_values(rows)


def customer_value(*, now: datetime | None = None) -> tuple[list[RfmCell], list[ChannelValue]]:
    """rfm_layers and channel_values together, from one build of every buyer's order totals
    (most of either's cost)."""
    # One statement, so `buyers` is built once: the two parts' rows, told apart by the
    # first column, each with NULL in the other's columns.
    rows = _rows(
        f"""
        WITH buyers AS MATERIALIZED ({_CONTACT_ORDERS})
        SELECT 'rfm', r, f, m, NULL, NULL, contacts, revenue_fen FROM ({_RFM_CELLS}) AS rfm
        UNION ALL
        SELECT 'channel', NULL, NULL, NULL, channel_id, name, contacts, revenue_fen
        FROM ({_CHANNEL_REVENUE}) AS channels
        """,
        _up_to(now),
    )
    return (
        _rfm_cells((*row[1:4], *row[6:]) for row in rows if row[0] == "rfm"),
        _channel_values(row[4:] for row in rows if row[0] == "channel"),
    )
