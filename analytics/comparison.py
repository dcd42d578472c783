"""The group comparison's figures: many groups side by side, each group a slice of its own,
in three queries whatever their number (fewer when only some figures are wanted).

Within one group a person is one member, so each figure is a count per (group, person)
first and per group after: the same numbers as analytics.metrics' functions called for
`Groups((group_id,))` (tests/analytics/test_comparison.py holds them to it). Speech over
the period comes from GroupSpeech (analytics.activity) instead of every message, the daily
figures from the groups' rollups, and costs as metrics.roi spreads them.
"""

from dataclasses import dataclass
from decimal import Decimal

from analytics import rollups
from analytics.activity import GROUP_SPEECH
from analytics.metrics import (
    EVENTS,
    DailyMean,
    Orders,
    PeopleRatios,
    Period,
    Ratio,
    _rows,
    counted_orders_sql,
    rois,
)
from analytics.models import DailyRollup, EventType

MEMBERSHIPS = "groups_groupmembership"


@dataclass(frozen=True)
class GroupRow(PeopleRatios):
    members_start: int
    members_end: int
    exposed: int  # members at the start + joins (metrics.members_during)
    left: int
    retained: int
    orders: Orders
    active: int  # exposed members who spoke in the group or bought while in it
    referrers: int
    sales_fen: int  # orders attributed to the group (metrics.roi's numerator)
    cost_fen: object  # Decimal: costs recorded against it, spread over P
    interaction_rate: DailyMean
    messages_per_member: DailyMean

    @property
    def joins(self) -> int:
        return self.exposed - self.members_start

    @property
    def conversion(self) -> Ratio:
        return Ratio(self.orders.buyers, self.exposed)

    @property
    def roi(self) -> Ratio:
        return Ratio(self.sales_fen, self.cost_fen)


_STAYS = f"""
stays AS (
    -- Each member's stays in each group that touch P, as what they say about P.
    SELECT m.group_id, m.contact_id,
        bool_or(m.joined_at <= %(start)s AND (m.left_at IS NULL OR m.left_at > %(start)s))
            AS at_start,
        bool_or(m.joined_at <= %(end)s AND (m.left_at IS NULL OR m.left_at > %(end)s))
            AS at_end,
        bool_or(m.joined_at < %(end)s AND (m.left_at IS NULL OR m.left_at > %(start)s))
            AS exposed,
        bool_or(m.left_at >= %(start)s AND m.left_at < %(end)s) AS left_
    FROM {MEMBERSHIPS} m
    WHERE m.contact_id IS NOT NULL AND m.group_id = ANY(%(groups)s)
      AND m.joined_at <= %(end)s AND (m.left_at IS NULL OR m.left_at >= %(start)s)
    GROUP BY m.group_id, m.contact_id
)"""
# The orders first, on their own: a few tens of thousands in a month, read once and joined
# to the stays by hash, where looking up each member's orders one by one costs 3-4 times more.
_BUYS = f"""
orders AS MATERIALIZED ({counted_orders_sql()}),
buys AS (
    -- Counted orders in P, once for each group its buyer was in when paying.
    SELECT group_id, contact_id, count(*) AS orders, sum(net_fen) AS fen
    FROM (
        SELECT DISTINCT m.group_id, o.order_id, o.contact_id, o.net_fen
        FROM orders AS o
        JOIN {MEMBERSHIPS} m ON m.contact_id = o.contact_id AND m.group_id = ANY(%(groups)s)
            AND m.joined_at <= o.paid_at AND (m.left_at IS NULL OR m.left_at > o.paid_at)
    ) AS bought
    GROUP BY group_id, contact_id
)"""
# Per group, in three runs of columns (see group_rows): the stays' members at the start and
# end, exposed, left, retained; the orders' buyers, repeat buyers, orders, order fen; and
# active members and referrers among them.
_PEOPLE_SQL = f"""
WITH {_STAYS}, {_BUYS},
referrers AS (
    SELECT DISTINCT contact_id FROM {EVENTS}
    WHERE type = {int(EventType.REFERRAL)} AND contact_id IS NOT NULL
      AND occurred_at >= %(start)s AND occurred_at < %(end)s
)
SELECT s.group_id,
    count(*) FILTER (WHERE s.at_start),
    count(*) FILTER (WHERE s.at_end),
    count(*) FILTER (WHERE s.exposed),
    count(*) FILTER (WHERE s.left_ AND NOT s.at_end),
    count(*) FILTER (WHERE s.at_start AND s.at_end),
    count(b.contact_id),
    count(*) FILTER (WHERE b.orders >= 2),
    coalesce(sum(b.orders), 0),
    coalesce(sum(b.fen), 0),
    count(*) FILTER (WHERE s.exposed AND (sp.contact_id IS NOT NULL OR b.contact_id IS NOT NULL)),
    count(*) FILTER (WHERE s.exposed AND (sp.contact_id IS NOT NULL OR b.contact_id IS NOT NULL)
                     AND r.contact_id IS NOT NULL)
FROM stays s
LEFT JOIN buys b ON b.group_id = s.group_id AND b.contact_id = s.contact_id
-- The groups named again: a page of them reads their speech by index, not all of it.
LEFT JOIN {GROUP_SPEECH} sp ON sp.group_id = s.group_id AND sp.contact_id = s.contact_id
    AND sp.group_id = ANY(%(groups)s) AND sp.spoke && daterange(%(first)s, %(last)s, '[]')
LEFT JOIN referrers r ON r.contact_id = s.contact_id
GROUP BY s.group_id
"""
# The first run of columns alone: the stays.
_STAYS_SQL = f"""
WITH {_STAYS}
SELECT s.group_id,
    count(*) FILTER (WHERE s.at_start),
    count(*) FILTER (WHERE s.at_end),
    count(*) FILTER (WHERE s.exposed),
    count(*) FILTER (WHERE s.left_ AND NOT s.at_end),
    count(*) FILTER (WHERE s.at_start AND s.at_end)
FROM stays s
GROUP BY s.group_id
"""
# The second alone: the orders. Every buyer was a member when paying, so has a stay that
# touches P: the same counts as the joined query's.
_ORDERS_SQL = f"""
WITH {_BUYS}
SELECT group_id, count(*), count(*) FILTER (WHERE orders >= 2), sum(orders), sum(fen)
FROM buys
GROUP BY group_id
"""
# The daily means alone, as DailyMean.value works them out (the mean of the defined days);
# the database averages a thousand groups' days faster than they are read out one by one.
_DAILY_MEANS_SQL = f"""
SELECT slice,
    avg(speakers::numeric / members_end) FILTER (WHERE members_end > 0),
    avg(messages::numeric / members_end) FILTER (WHERE members_end > 0)
FROM {DailyRollup._meta.db_table}
WHERE slice = ANY(%(slices)s) AND day BETWEEN %(first)s AND %(last)s
GROUP BY slice
"""


@dataclass(frozen=True)
class MeanOnly(DailyMean):
    """A daily mean the database worked out, without its days: all that sorting needs."""

    mean: Decimal | None = None

    @property
    def value(self) -> Decimal | None:
        return self.mean


# What group_rows can compute, each for a sort by some columns (analytics.pages): the stays
# (member counts, leave rate, retention), the orders (average order value, repurchase),
# every per-person figure (the stays and orders with speech and referrals: conversion,
# referral rate), money (sales and cost: ROI), the daily figures or only their means.
PARTS = frozenset({"stays", "orders", "people", "money", "daily"})


def group_rows(
    group_ids: list[int], period: Period, *, parts: frozenset[str] = PARTS
) -> dict[int, GroupRow]:
    """Each group's figures for P, by group id; only `parts` of them computed (the others
    0), for sorting a thousand groups by one figure before the page's few are computed whole."""
    ids = list(group_ids)
    params = {
        "groups": ids,
        "start": period.start,
        "end": period.end,
        "first": period.first,
        "last": period.last,
    }
    stays, orders, engaged = {}, {}, {}
    if "people" in parts:
        for gid, *row in _rows(_PEOPLE_SQL, params):
            stays[gid], orders[gid], engaged[gid] = row[:5], row[5:9], row[9:]
    else:
        if "stays" in parts:
            stays = {gid: row for gid, *row in _rows(_STAYS_SQL, params)}
        if "orders" in parts:
            orders = {gid: row for gid, *row in _rows(_ORDERS_SQL, params)}
    nothing = Ratio(0, 0)
    money = rois("group_id", ids, period) if "money" in parts else {}
    daily = {}
    if "daily" in parts:
        daily = _daily(ids, period)
    elif "daily_means" in parts:
        daily = _daily_means(ids, period)
    result = {}
    for gid in ids:
        start, end, exposed, left, retained = stays.get(gid, (0,) * 5)
        buyers, repeat, count, fen = orders.get(gid, (0,) * 4)
        active, referrers = engaged.get(gid, (0, 0))
        interaction, messages = daily.get(gid, (DailyMean(), DailyMean()))
        result[gid] = GroupRow(
            members_start=start,
            members_end=end,
            exposed=exposed,
            left=left,
            retained=retained,
            orders=Orders(buyers, repeat, count, int(fen)),
            active=active,
            referrers=referrers,
            sales_fen=money.get(gid, nothing).numerator,
            cost_fen=money.get(gid, nothing).denominator,
            interaction_rate=interaction,
            messages_per_member=messages,
        )
    return result


def _daily_means(ids: list[int], period: Period) -> dict[int, tuple[MeanOnly, MeanOnly]]:
    slices = {rollups.group_slice(gid): gid for gid in ids}
    rows = _rows(
        _DAILY_MEANS_SQL, {"slices": list(slices), "first": period.first, "last": period.last}
    )
    return {
        slices[slice]: (MeanOnly(mean=interaction), MeanOnly(mean=messages))
        for slice, interaction, messages in rows
    }


def _daily(ids: list[int], period: Period) -> dict[int, tuple[DailyMean, DailyMean]]:
    """Interaction rate and messages per member of each group, from its daily rollups (as
    rollups.interaction_rate / messages_per_member read them), in one query."""
    slices = {rollups.group_slice(gid): gid for gid in ids}
    # Plain tuples: a thousand groups are some 30,000 rows, and model instances cost more
    # than the query.
    stored = {
        (slice, day): (members, speakers, messages)
        for slice, day, members, speakers, messages in DailyRollup.objects.filter(
            slice__in=list(slices), day__range=(period.first, period.last)
        ).values_list("slice", "day", "members_end", "speakers", "messages")
    }
    nothing = (0, 0, 0)
    result = {}
    for slice, gid in slices.items():
        rows = {day: stored.get((slice, day), nothing) for day in period.days}
        result[gid] = (
            DailyMean({d: Ratio(speakers, members) for d, (members, speakers, _m) in rows.items()}),
            DailyMean({d: Ratio(messages, members) for d, (members, _s, messages) in rows.items()}),
        )
    return result
