"""Per-customer activity, and from it the period numbers of every group at once.

The overview of all groups counts people once across a thousand groups and ten million
events: who was a member at an instant, during a period, who left, who spoke, who bought.
Done from the raw tables that is a pass over every membership and every message of the
period each time. ContactActivity keeps, per customer, the same facts as multiranges:

- member: the union of their stays [joined_at, left_at) with left_at > joined_at;
- lefts: every left_at, as a point [left_at, left_at];
- blips: stays that ended the instant they began (joined_at = left_at), as points;
- spoke: the Shanghai days with a MESSAGE event of theirs in a group;
- bought: the Shanghai days with an ORDER_PAID event of theirs (analytics.cohorts'
  lifecycle weeks: "active" is spoke or ordered).

GroupSpeech keeps the spoken days per group and customer too, for figures of many groups
side by side (analytics.comparison).

so each question is one test on one row (@> an instant, && a period), exactly as
analytics.metrics words it (see `everyone`). A customer's row is always recomputed whole
from its memberships, speech and orders when its stays change; new speech and orders only
add days. The
incremental refresh (`activity_recent`, run with the rollups' after new events) and the full
rebuild (`activity_rebuild`, with theirs) end with the same rows.

Like the rollups, a membership changed without an event (a data fix) needs the rebuild.
"""

import logging
from dataclasses import dataclass

from django.db import connection, transaction

from analytics.metrics import PeopleRatios, Period, Ratio, _one, counted_orders_sql
from analytics.models import ContactActivity, Event, EventType, GroupSpeech
from groups.models import GroupMembership

logger = logging.getLogger(__name__)

ACTIVITY = ContactActivity._meta.db_table
GROUP_SPEECH = GroupSpeech._meta.db_table
EVENTS = Event._meta.db_table
MEMBERSHIPS = GroupMembership._meta.db_table
CHUNK = 5_000  # customers recomputed per statement by a refresh
# Events after which a customer's stays may be different.
MEMBERSHIP_EVENTS = (EventType.GROUP_JOINED, EventType.GROUP_LEFT, EventType.GROUP_DISMISSED)

# Rows recomputed whole for the customers `{people}` yields, from their memberships, speech
# and orders (`{only}` narrows every read to them).
_RECOMPUTE_SQL = f"""
WITH stays AS (
    SELECT m.contact_id,
        range_agg(tstzrange(m.joined_at, m.left_at, '[)'))
            FILTER (WHERE m.left_at IS NULL OR m.left_at > m.joined_at) AS member,
        range_agg(tstzrange(m.left_at, m.left_at, '[]'))
            FILTER (WHERE m.left_at IS NOT NULL) AS lefts,
        range_agg(tstzrange(m.joined_at, m.joined_at, '[]'))
            FILTER (WHERE m.left_at = m.joined_at) AS blips
    FROM {MEMBERSHIPS} m
    WHERE m.contact_id IS NOT NULL AND {{only}}
    GROUP BY m.contact_id
),
speech AS (
    SELECT d.contact_id, range_agg(daterange(d.day, d.day + 1)) AS spoke
    FROM (
        -- Aliased m like the memberships, so one `only` narrows both.
        SELECT DISTINCT m.contact_id, (m.occurred_at AT TIME ZONE 'Asia/Shanghai')::date AS day
        FROM {EVENTS} m
        WHERE m.type = {int(EventType.MESSAGE)} AND m.group_id IS NOT NULL
          AND m.contact_id IS NOT NULL AND {{only}}
    ) AS d
    GROUP BY d.contact_id
),
purchases AS (
    SELECT d.contact_id, range_agg(daterange(d.day, d.day + 1)) AS bought
    FROM (
        SELECT DISTINCT m.contact_id, (m.occurred_at AT TIME ZONE 'Asia/Shanghai')::date AS day
        FROM {EVENTS} m
        WHERE m.type = {int(EventType.ORDER_PAID)} AND m.contact_id IS NOT NULL AND {{only}}
    ) AS d
    GROUP BY d.contact_id
)
INSERT INTO {ACTIVITY} (contact_id, member, lefts, blips, spoke, bought)
SELECT p.contact_id, coalesce(st.member, '{{{{}}}}'), coalesce(st.lefts, '{{{{}}}}'),
    coalesce(st.blips, '{{{{}}}}'), coalesce(sp.spoke, '{{{{}}}}'), coalesce(pu.bought, '{{{{}}}}')
FROM ({{people}}) AS p
LEFT JOIN stays st ON st.contact_id = p.contact_id
LEFT JOIN speech sp ON sp.contact_id = p.contact_id
LEFT JOIN purchases pu ON pu.contact_id = p.contact_id
ON CONFLICT (contact_id) DO UPDATE SET member = EXCLUDED.member, lefts = EXCLUDED.lefts,
    blips = EXCLUDED.blips, spoke = EXCLUDED.spoke, bought = EXCLUDED.bought
"""


def activity_refresh(contact_ids) -> None:
    """Recompute these customers' rows whole."""
    ids = sorted(set(contact_ids))
    sql = _RECOMPUTE_SQL.format(
        only="m.contact_id = ANY(%(ids)s)", people="SELECT unnest(%(ids)s::bigint[]) AS contact_id"
    )
    for start in range(0, len(ids), CHUNK):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, {"ids": ids[start : start + CHUNK]})


def activity_rebuild() -> int:
    """Recompute every customer's row (anyone with a membership, a word in a group, an order
    or a row already) in one statement; returns how many rows there are."""
    people = (
        "SELECT contact_id FROM stays UNION SELECT contact_id FROM speech"
        f" UNION SELECT contact_id FROM purchases UNION SELECT contact_id FROM {ACTIVITY}"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_RECOMPUTE_SQL.format(only="TRUE", people=people))
        cursor.execute(f"DELETE FROM {GROUP_SPEECH}")
        cursor.execute(_GROUP_SPEECH_SQL.format(window="TRUE"), {})
    return ContactActivity.objects.count()


def _days_sql(column: str, events: str) -> str:
    """Speech and orders only ever add days: the Shanghai days of the `events` with ids in
    (since, high] are added to their people's `column` (a day already there stays once), so
    rereading an event is harmless."""
    other = {"spoke": "bought", "bought": "spoke"}[column]
    return f"""
    INSERT INTO {ACTIVITY} AS a (contact_id, member, lefts, blips, {other}, {column})
    SELECT d.contact_id, '{{}}', '{{}}', '{{}}', '{{}}', range_agg(daterange(d.day, d.day + 1))
    FROM (
        SELECT DISTINCT contact_id, (occurred_at AT TIME ZONE 'Asia/Shanghai')::date AS day
        FROM {EVENTS}
        WHERE id > %(since)s AND id <= %(high)s AND {events} AND contact_id IS NOT NULL
    ) AS d
    GROUP BY d.contact_id
    ON CONFLICT (contact_id) DO UPDATE SET {column} = a.{column} + EXCLUDED.{column}
    """


_SPEECH_SQL = _days_sql("spoke", f"type = {int(EventType.MESSAGE)} AND group_id IS NOT NULL")
_PURCHASE_SQL = _days_sql("bought", f"type = {int(EventType.ORDER_PAID)}")


# Per group the same: the days each customer spoke there, added to.
_GROUP_SPEECH_SQL = f"""
INSERT INTO {GROUP_SPEECH} AS g (group_id, contact_id, spoke)
SELECT d.group_id, d.contact_id, range_agg(daterange(d.day, d.day + 1))
FROM (
    SELECT DISTINCT group_id, contact_id,
        (occurred_at AT TIME ZONE 'Asia/Shanghai')::date AS day
    FROM {EVENTS}
    WHERE {{window}} AND type = {int(EventType.MESSAGE)}
      AND group_id IS NOT NULL AND contact_id IS NOT NULL
) AS d
GROUP BY d.group_id, d.contact_id
ON CONFLICT (group_id, contact_id) DO UPDATE SET spoke = g.spoke + EXCLUDED.spoke
"""


def activity_recent(since: int, high: int) -> int:
    """Bring the rows up to date with the events with ids in (since, high]: recompute the
    customers whose stays they change (their own joins and leaves, every member of a group
    dismissed), and add the days others spoke or bought. Returns how many were recomputed."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT ev.contact_id FROM {EVENTS} ev
            WHERE ev.id > %(since)s AND ev.id <= %(high)s AND ev.type = ANY(%(types)s)
              AND ev.contact_id IS NOT NULL
            UNION
            SELECT m.contact_id FROM {EVENTS} ev JOIN {MEMBERSHIPS} m ON m.group_id = ev.group_id
            WHERE ev.id > %(since)s AND ev.id <= %(high)s
              AND ev.type = {int(EventType.GROUP_DISMISSED)} AND m.contact_id IS NOT NULL
            """,
            {"since": since, "high": high, "types": [int(t) for t in MEMBERSHIP_EVENTS]},
        )
        ids = [row[0] for row in cursor.fetchall()]
    activity_refresh(ids)
    window = {"since": since, "high": high}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_SPEECH_SQL, window)
        cursor.execute(_PURCHASE_SQL, window)
        cursor.execute(_GROUP_SPEECH_SQL.format(window="id > %(since)s AND id <= %(high)s"), window)
    return len(ids)


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Everyone(PeopleRatios):
    """analytics.metrics' figures for every group (ALL_GROUPS) over one period."""

    members_start: int  # members_at(start)
    members_end: int  # members_at(end)
    exposed: int  # members_during: members at the start + joins
    left: int  # leave_rate's numerator
    retained: int  # retention's numerator (its denominator is members_start)
    buyers: int  # people with a counted order while a member
    repeat_buyers: int  # … with two or more
    orders: int
    revenue_fen: int
    active: int  # referral_rate's denominator: exposed people who spoke or bought
    referrers: int  # … of whom brought someone in P

    @property
    def conversion(self) -> Ratio:
        return Ratio(self.buyers, self.exposed)

    @property
    def average_order_value(self) -> Ratio:
        return Ratio(self.revenue_fen, self.buyers)

    @property
    def repurchase_rate(self) -> Ratio:
        return Ratio(self.repeat_buyers, self.buyers)


# Each test against metrics.py's wording, with stays as [joined_at, left_at):
#   member at t:          joined_at <= t < left_at         member @> t
#   member during P:      joined_at < end, left_at > start member && [start, end)
#                         (a momentary stay at t: start < t < end, blips && (start, end))
#   left in P:            start <= left_at < end           lefts && [start, end)
#   spoke in P:           a MESSAGE on a day of P          spoke && [first, last]
#   ordered while member: member when paying               member @> paid_at
_EVERYONE_SQL = f"""
WITH people AS (
    SELECT a.contact_id,
        a.member @> %(start)s::timestamptz AS at_start,
        a.member @> %(end)s::timestamptz AS at_end,
        (a.member && tstzrange(%(start)s, %(end)s, '[)')
            OR a.blips && tstzrange(%(start)s, %(end)s, '()')) AS exposed,
        a.lefts && tstzrange(%(start)s, %(end)s, '[)') AS left_,
        a.spoke && daterange(%(first)s, %(last)s, '[]') AS spoke
    FROM {ACTIVITY} a
),
buyers AS (
    SELECT o.contact_id, count(*) AS orders, sum(o.net_fen) AS fen
    FROM ({counted_orders_sql()}) AS o
    JOIN {ACTIVITY} a ON a.contact_id = o.contact_id AND a.member @> o.paid_at
    GROUP BY o.contact_id
),
referrers AS (
    SELECT DISTINCT contact_id FROM {EVENTS}
    WHERE type = {int(EventType.REFERRAL)} AND contact_id IS NOT NULL
      AND occurred_at >= %(start)s AND occurred_at < %(end)s
)
SELECT
    count(*) FILTER (WHERE p.at_start),
    count(*) FILTER (WHERE p.at_end),
    count(*) FILTER (WHERE p.exposed),
    count(*) FILTER (WHERE p.left_ AND NOT p.at_end),
    count(*) FILTER (WHERE p.at_start AND p.at_end),
    count(b.contact_id),
    count(*) FILTER (WHERE b.orders >= 2),
    coalesce(sum(b.orders), 0),
    coalesce(sum(b.fen), 0),
    count(*) FILTER (WHERE p.exposed AND (p.spoke OR b.contact_id IS NOT NULL)),
    count(*) FILTER (WHERE p.exposed AND (p.spoke OR b.contact_id IS NOT NULL)
                     AND r.contact_id IS NOT NULL)
FROM people p
LEFT JOIN buyers b ON b.contact_id = p.contact_id
LEFT JOIN referrers r ON r.contact_id = p.contact_id
"""


def everyone(period: Period) -> Everyone:
    """The period's people figures for all groups, in one pass over ContactActivity."""
    row = _one(
        _EVERYONE_SQL,
        {"start": period.start, "end": period.end, "first": period.first, "last": period.last},
    )
    return Everyone(*(int(v) for v in row))
