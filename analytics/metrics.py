"""The lifecycle metrics of PRODUCT.md ("Metrics"), each exactly to its formula.

Every metric returns its numerator and denominator (a `Ratio`), so the UI can show
"12.3% (37 / 301)"; a zero denominator makes the value undefined (None, shown as "—"), never
0. Daily metrics (interaction rate, messages per member) return a `DailyMean`: the daily
ratios and their mean over the defined days.

Conventions, from PRODUCT.md, made precise here once:
- A period is whole Asia/Shanghai days, [00:00 of the first day, 24:00 of the last day).
- Members are customers (staff in a group are not members for the numbers). "Members at"
  an instant counts people with an open membership then; a person counts once however many
  of the slice's groups they are in, and someone who left and rejoined counts once.
- "Members at the start of P + joins in P" is everyone who was a member at some moment of
  P, a person counted once (a rejoin within P adds no one).
- Left in P: people who left a group of the slice in P and are not members of any of its
  groups at the end of P (a leave and rejoin within P is not a loss).
- Orders: ORDER_PAID events, net of refunds up to the end of P (contacts.lifecycle's rule:
  an order counts while what was paid minus its refunds is above zero). An order belongs to
  a group slice when its buyer was a member of one of the groups when ordering.

These read the raw membership table and event log: exact for any slice. The dashboard's
headline numbers come from rollups (analytics.rollups) that must agree with them.
"""

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import cached_property
from zoneinfo import ZoneInfo

from django.db import connection, transaction

from analytics.models import Event, EventType

SHANGHAI = ZoneInfo("Asia/Shanghai")
EVENTS = Event._meta.db_table


@dataclass(frozen=True)
class Period:
    """Whole Shanghai days from `first` to `last`, both included."""

    first: date
    last: date

    def __post_init__(self):
        if self.last < self.first:
            raise ValueError("a period's last day cannot be before its first")

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=SHANGHAI)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=SHANGHAI)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


@dataclass(frozen=True)
class Ratio:
    numerator: int | Decimal
    denominator: int | Decimal

    @property
    def value(self) -> Decimal | None:
        if not self.denominator:
            return None
        return Decimal(self.numerator) / Decimal(self.denominator)

    def __str__(self) -> str:
        value = self.value
        return "—" if value is None else f"{value:.4f} ({self.numerator} / {self.denominator})"


@dataclass(frozen=True)
class DailyMean:
    """A per-day ratio and its period mean, which skips undefined days."""

    days: dict[date, Ratio] = field(default_factory=dict)

    @cached_property  # read for sorting, charting and showing a thousand groups
    def value(self) -> Decimal | None:
        defined = [r.value for r in self.days.values() if r.value is not None]
        if not defined:
            return None
        return sum(defined, Decimal(0)) / len(defined)


@dataclass(frozen=True)
class Groups:
    """A slice of groups: the given ids, or every group when `ids` is None."""

    ids: tuple[int, ...] | None = None

    def sql(self, column: str) -> tuple[str, dict]:
        if self.ids is None:
            return "TRUE", {}
        return f"{column} = ANY(%(group_ids)s)", {"group_ids": list(self.ids)}


ALL_GROUPS = Groups()


# Sort and hash memory for one metric query: a whole customer base grouped per person fits,
# where the server's default (4 MB) spills it to disk.
WORK_MEM = "64MB"


@contextmanager
def _cursor():
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        yield cursor


def _one(sql: str, params: dict):
    with _cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _rows(sql: str, params: dict) -> list[tuple]:
    with _cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# --- members --------------------------------------------------------------------------------

_MEMBERSHIPS = "groups_groupmembership"


def _members_at_sql(groups: Groups, at_param: str) -> tuple[str, dict]:
    where, params = groups.sql("m.group_id")
    return (
        f"SELECT DISTINCT m.contact_id FROM {_MEMBERSHIPS} m"
        f" WHERE m.contact_id IS NOT NULL AND {where}"
        f" AND m.joined_at <= %({at_param})s"
        f" AND (m.left_at IS NULL OR m.left_at > %({at_param})s)",
        params,
    )


def members_at(groups: Groups, at: datetime) -> int:
    sql, params = _members_at_sql(groups, "at")
    return _one(f"SELECT count(*) FROM ({sql}) AS members", {**params, "at": at})[0]


def _exposed_sql(groups: Groups) -> tuple[str, dict]:
    """People who were members at some moment of [start, end): at the start, or joining."""
    where, params = groups.sql("m.group_id")
    return (
        f"SELECT DISTINCT m.contact_id FROM {_MEMBERSHIPS} m"
        f" WHERE m.contact_id IS NOT NULL AND {where}"
        " AND m.joined_at < %(end)s AND (m.left_at IS NULL OR m.left_at > %(start)s)",
        params,
    )


def members_during(groups: Groups, period: Period) -> int:
    """Members at the start of P plus joins in P, a person counted once."""
    sql, params = _exposed_sql(groups)
    return _one(
        f"SELECT count(*) FROM ({sql}) AS exposed",
        {**params, "start": period.start, "end": period.end},
    )[0]


def leave_rate(groups: Groups, period: Period) -> Ratio:
    """退群率: members who left in P ÷ (members at the start of P + joins in P)."""
    where, params = groups.sql("m.group_id")
    members_end, end_params = _members_at_sql(groups, "end")
    left = _one(
        f"""
        SELECT count(DISTINCT m.contact_id) FROM {_MEMBERSHIPS} m
        WHERE m.contact_id IS NOT NULL AND {where}
          AND m.left_at >= %(start)s AND m.left_at < %(end)s
          AND m.contact_id NOT IN ({members_end})
        """,
        {**params, **end_params, "start": period.start, "end": period.end},
    )[0]
    return Ratio(left, members_during(groups, period))


def retention(groups: Groups, period: Period) -> Ratio:
    """留存率: of the members at the start of P, the share still members at its end."""
    at_start, params = _members_at_sql(groups, "start")
    at_end, _ = _members_at_sql(groups, "end")
    start_count, kept = _one(
        f"""
        SELECT count(*), count(*) FILTER (WHERE s.contact_id IN ({at_end}))
        FROM ({at_start}) AS s
        """,
        {**params, "start": period.start, "end": period.end},
    )
    return Ratio(kept, start_count)


def cohort_retention(groups: Groups, joined_on: date, after_days: int) -> Ratio:
    """N-day cohort retention: of the people who joined on day d (their first join into the
    slice that day), those still members at the end of day d+N ÷ those who joined on d."""
    day = Period(joined_on, joined_on)
    where, params = groups.sql("m.group_id")
    at_end, _ = _members_at_sql(groups, "at")
    cohort, kept = _one(
        f"""
        WITH cohort AS (
            SELECT DISTINCT m.contact_id FROM {_MEMBERSHIPS} m
            WHERE m.contact_id IS NOT NULL AND {where}
              AND m.joined_at >= %(start)s AND m.joined_at < %(end)s
        )
        SELECT count(*), count(*) FILTER (WHERE contact_id IN ({at_end})) FROM cohort
        """,
        {
            **params,
            "start": day.start,
            "end": day.end,
            "at": Period(joined_on, joined_on + timedelta(days=after_days)).end,
        },
    )
    return Ratio(kept, cohort)


# --- speech ---------------------------------------------------------------------------------


def _daily(groups: Groups, period: Period, numerator: str) -> DailyMean:
    """Per day: `numerator` over the day's MESSAGE events ÷ members at the end of the day."""
    where_events, params = groups.sql("ev.group_id")
    where_members, _ = groups.sql("m.group_id")
    rows = _rows(
        f"""
        WITH days AS (
            SELECT d::date AS day,
                   (d::date::timestamp AT TIME ZONE 'Asia/Shanghai') AS day_start,
                   ((d::date + 1)::timestamp AT TIME ZONE 'Asia/Shanghai') AS day_end
            FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') AS d
        )
        SELECT days.day,
            (SELECT {numerator} FROM {EVENTS} ev
             WHERE ev.type = %(message)s AND ev.group_id IS NOT NULL AND {where_events}
               AND ev.occurred_at >= days.day_start AND ev.occurred_at < days.day_end),
            (SELECT count(DISTINCT m.contact_id) FROM {_MEMBERSHIPS} m
             WHERE m.contact_id IS NOT NULL AND {where_members}
               AND m.joined_at <= days.day_end
               AND (m.left_at IS NULL OR m.left_at > days.day_end))
        FROM days ORDER BY days.day
        """,
        {
            **params,
            "first": period.first,
            "last": period.last,
            "message": int(EventType.MESSAGE),
        },
    )
    return DailyMean({day: Ratio(int(num or 0), members) for day, num, members in rows})


def interaction_rate(groups: Groups, period: Period) -> DailyMean:
    """互动率: per day, distinct members who spoke ÷ members at the end of the day; P's mean."""
    return _daily(groups, period, "count(DISTINCT ev.contact_id)")


def messages_per_member(groups: Groups, period: Period) -> DailyMean:
    """人均消息量: per day, messages ÷ members at the end of the day; P's mean."""
    return _daily(groups, period, "coalesce(sum(coalesce(ev.amount, 1)), 0)")


# --- orders ---------------------------------------------------------------------------------


def counted_orders_sql() -> str:
    """Orders paid in [start, end) whose net (paid minus refunds up to `end`) is above
    zero, as (order_id, contact_id, paid_at, net_fen, group_id, channel_id, campaign_id),
    order_id being the ORDER_PAID event's id.

    Read from the index of rare events alone; refunds are rare too, so an order's number is
    fetched (and its refunds summed) only when its buyer has a refund before `end`."""
    refunds = (
        f"FROM {EVENTS} x WHERE x.type = {int(EventType.ORDER_REFUNDED)}"
        " AND x.occurred_at < %(end)s"
    )
    return f"""
        SELECT p.id AS order_id, p.contact_id, p.occurred_at AS paid_at,
               p.amount - r.refunded AS net_fen, p.group_id, p.channel_id, p.campaign_id
        FROM {EVENTS} p
        CROSS JOIN LATERAL (SELECT CASE
            WHEN p.contact_id IN (SELECT x.contact_id {refunds}) THEN coalesce((
                SELECT sum(x.amount) {refunds} AND x.contact_id = p.contact_id
                  AND x.payload ->> 'order_no' = (
                      SELECT o.payload ->> 'order_no' FROM {EVENTS} o WHERE o.id = p.id)
            ), 0)
            ELSE 0
        END AS refunded) r
        WHERE p.type = {int(EventType.ORDER_PAID)} AND p.contact_id IS NOT NULL
          AND p.occurred_at >= %(start)s AND p.occurred_at < %(end)s
          AND p.amount - r.refunded > 0
    """


def _group_orders_sql(groups: Groups) -> tuple[str, dict]:
    """Counted orders whose buyer was a member of one of the groups when ordering."""
    where, params = groups.sql("m.group_id")
    return (
        f"""
        SELECT o.* FROM ({counted_orders_sql()}) AS o
        WHERE EXISTS (
            SELECT 1 FROM {_MEMBERSHIPS} m
            WHERE m.contact_id = o.contact_id AND {where}
              AND m.joined_at <= o.paid_at AND (m.left_at IS NULL OR m.left_at > o.paid_at)
        )
        """,
        params,
    )


class PeopleRatios:
    """Leave rate, retention and referral rate from a slice's per-person counts, for the
    classes that count them in one pass (analytics.activity, analytics.comparison): they
    have members_start, exposed (members_during), left, retained, active and referrers."""

    @property
    def leave_rate(self) -> Ratio:
        return Ratio(self.left, self.exposed)

    @property
    def retention(self) -> Ratio:
        return Ratio(self.retained, self.members_start)

    @property
    def referral_rate(self) -> Ratio:
        return Ratio(self.referrers, self.active)


@dataclass(frozen=True)
class Orders:
    """A slice's counted orders in P (their buyers members of its groups when ordering)."""

    buyers: int
    repeat_buyers: int  # with two or more
    orders: int
    revenue_fen: int

    @property
    def average_order_value(self) -> Ratio:
        """客单价: order total in P ÷ distinct people who ordered in P (fen per buyer)."""
        return Ratio(self.revenue_fen, self.buyers)

    @property
    def repurchase_rate(self) -> Ratio:
        """复购率: people with ≥ 2 orders in P ÷ people with ≥ 1 order in P."""
        return Ratio(self.repeat_buyers, self.buyers)


def orders(groups: Groups, period: Period) -> Orders:
    """The slice's order figures for P, in one query (conversion, AOV and repurchase)."""
    orders_sql, params = _group_orders_sql(groups)
    buyers, repeat, count, total = _one(
        f"""
        SELECT count(*), count(*) FILTER (WHERE n >= 2), coalesce(sum(n), 0),
               coalesce(sum(fen), 0)
        FROM (SELECT contact_id, count(*) AS n, sum(net_fen) AS fen
              FROM ({orders_sql}) AS o GROUP BY contact_id) AS per_buyer
        """,
        {**params, "start": period.start, "end": period.end},
    )
    return Orders(buyers, repeat, count, int(total))


def conversion(groups: Groups, period: Period, *, buyers: int | None = None) -> Ratio:
    """转化率: distinct members who ordered in P ÷ (members at the start of P + joins in P).
    `buyers`: the numerator when already known (from `orders`)."""
    if buyers is None:
        buyers = orders(groups, period).buyers
    return Ratio(buyers, members_during(groups, period))


def average_order_value(groups: Groups, period: Period) -> Ratio:
    """客单价: order total in P ÷ distinct people who ordered in P (fen per buyer)."""
    return orders(groups, period).average_order_value


def repurchase_rate(groups: Groups, period: Period) -> Ratio:
    """复购率: people with ≥ 2 orders in P ÷ people with ≥ 1 order in P."""
    return orders(groups, period).repurchase_rate


def roi(
    period: Period,
    *,
    group: int | None = None,
    channel: int | None = None,
    campaign: int | None = None,
) -> Ratio:
    """投入产出比: attributed sales in P ÷ recorded cost in P, for one group, channel or
    campaign (orders attributed to it, costs recorded against it)."""
    targets = [
        (c, v)
        for c, v in (("group_id", group), ("channel_id", channel), ("campaign_id", campaign))
        if v is not None
    ]
    if len(targets) != 1:
        raise ValueError("give exactly one of group, channel or campaign")
    column, target = targets[0]
    return rois(column, [target], period)[target]


_ROI_COLUMNS = ("group_id", "channel_id", "campaign_id")


def rois(column: str, ids: list[int], period: Period) -> dict[int, Ratio]:
    """`roi` of each of many groups, channels or campaigns (`column`: group_id, channel_id or
    campaign_id), by id, in one query: a page of them costs no more than one. `roi` is this
    for one."""
    if column not in _ROI_COLUMNS:
        raise ValueError(f"column is one of {', '.join(_ROI_COLUMNS)}")
    # MATERIALIZED: every counted order of P from the index of rare events, then these
    # targets'; left to itself PostgreSQL walks a busy group's every event in P instead.
    # Each cost is spread evenly over the days of its own period.
    rows = _rows(
        f"""
        WITH o AS MATERIALIZED ({counted_orders_sql()}),
        sales AS (
            SELECT o.{column} AS id, sum(o.net_fen) AS fen FROM o
            WHERE o.{column} = ANY(%(ids)s) GROUP BY o.{column}
        ),
        costs AS (
            SELECT {column} AS id, sum(
                amount::numeric
                * greatest(0, least((payload ->> 'period_end')::date, %(last)s::date)
                              - greatest((payload ->> 'period_start')::date, %(first)s::date) + 1)
                / ((payload ->> 'period_end')::date - (payload ->> 'period_start')::date + 1)
            ) AS fen
            FROM {EVENTS}
            WHERE type = {int(EventType.COST_RECORDED)} AND {column} = ANY(%(ids)s)
              AND (payload ->> 'period_start')::date <= %(last)s
              AND (payload ->> 'period_end')::date >= %(first)s
            GROUP BY {column}
        )
        SELECT t.id, coalesce(sales.fen, 0), coalesce(costs.fen, 0)
        FROM unnest(%(ids)s::bigint[]) AS t (id)
        LEFT JOIN sales ON sales.id = t.id
        LEFT JOIN costs ON costs.id = t.id
        """,
        {
            "ids": list(ids),
            "start": period.start,
            "end": period.end,
            "first": period.first,
            "last": period.last,
        },
    )
    return {tid: Ratio(int(sales), Decimal(cost)) for tid, sales, cost in rows}


# --- people ---------------------------------------------------------------------------------


def referral_rate(groups: Groups, period: Period) -> Ratio:
    """转介绍率: members who brought ≥ 1 new contact in P ÷ members active in P (spoke in
    one of the groups, or ordered while a member)."""
    where, params = groups.sql("ev.group_id")
    orders_sql, _ = _group_orders_sql(groups)
    exposed, _ = _exposed_sql(groups)
    active, referrers = _one(
        f"""
        WITH active AS (
            SELECT DISTINCT ev.contact_id FROM {EVENTS} ev
            WHERE ev.type = {int(EventType.MESSAGE)} AND ev.contact_id IS NOT NULL
              AND ev.group_id IS NOT NULL AND {where}
              AND ev.occurred_at >= %(start)s AND ev.occurred_at < %(end)s
            UNION
            SELECT contact_id FROM ({orders_sql}) AS o
        )
        , referrers AS (
            SELECT DISTINCT r.contact_id FROM {EVENTS} r
            WHERE r.type = {int(EventType.REFERRAL)} AND r.contact_id IS NOT NULL
              AND r.occurred_at >= %(start)s AND r.occurred_at < %(end)s
        )
        SELECT count(*), count(referrers.contact_id)
        FROM active LEFT JOIN referrers ON referrers.contact_id = active.contact_id
        WHERE active.contact_id IN ({exposed})
        """,
        {**params, "start": period.start, "end": period.end},
    )
    return Ratio(referrers, active)


def join_rate(channel: int, period: Period) -> Ratio:
    """进群率: joins that came through channel c in P ÷ exposures of c in P."""
    joins, exposures = _one(
        f"""
        SELECT count(*) FILTER (WHERE type = {int(EventType.GROUP_JOINED)}),
               coalesce(sum(amount) FILTER (WHERE type = {int(EventType.CHANNEL_EXPOSURE)}), 0)
        FROM {EVENTS}
        WHERE channel_id = %(channel)s AND occurred_at >= %(start)s AND occurred_at < %(end)s
          AND type IN ({int(EventType.GROUP_JOINED)}, {int(EventType.CHANNEL_EXPOSURE)})
        """,
        {"channel": channel, "start": period.start, "end": period.end},
    )
    return Ratio(joins, int(exposures))


def channel_rates(channels: list[int], period: Period) -> dict[int, tuple[Ratio, Ratio]]:
    """(join rate, ROI) of each channel code in P, by id: `join_rate` and `roi(channel=…)`
    for many channels in two queries (the channel comparison)."""
    ids = list(channels)
    arrivals = {
        channel: (joins, int(exposures))
        for channel, joins, exposures in _rows(
            f"""
            SELECT channel_id, count(*) FILTER (WHERE type = {int(EventType.GROUP_JOINED)}),
                   coalesce(sum(amount) FILTER (
                       WHERE type = {int(EventType.CHANNEL_EXPOSURE)}), 0)
            FROM {EVENTS}
            WHERE channel_id = ANY(%(ids)s)
              AND occurred_at >= %(start)s AND occurred_at < %(end)s
              AND type IN ({int(EventType.GROUP_JOINED)}, {int(EventType.CHANNEL_EXPOSURE)})
            GROUP BY channel_id
            """,
            {"ids": ids, "start": period.start, "end": period.end},
        )
    }
    money = rois("channel_id", ids, period)
    return {channel: (Ratio(*arrivals.get(channel, (0, 0))), money[channel]) for channel in ids}


def block_rate(period: Period, *, staff: int | None = None) -> Ratio:
    """拉黑率: contacts who deleted their staff member in P ÷ contacts at the start of P
    (with a follow relation open then); for one staff member, their own contacts."""
    staff_filter = "" if staff is None else "AND f.staff_id = %(staff)s"
    event_staff = "" if staff is None else "AND ev.staff_id = %(staff)s"
    at_start, blocked = _one(
        f"""
        SELECT
            (SELECT count(DISTINCT f.contact_id) FROM contacts_follow f
             WHERE f.added_at <= %(start)s {staff_filter}
               AND (f.deleted_by_staff_at IS NULL OR f.deleted_by_staff_at > %(start)s)
               AND (f.deleted_by_contact_at IS NULL OR f.deleted_by_contact_at > %(start)s)),
            (SELECT count(DISTINCT ev.contact_id) FROM {EVENTS} ev
             WHERE ev.type = {int(EventType.CONTACT_BLOCKED)} {event_staff}
               AND ev.occurred_at >= %(start)s AND ev.occurred_at < %(end)s)
        """,
        {"staff": staff, "start": period.start, "end": period.end},
    )
    return Ratio(blocked, at_start)
