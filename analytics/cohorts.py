"""Cohorts: join-cohort retention triangles and contacts' lifecycle states week by week.

Same conventions as analytics.metrics: Shanghai days and Monday-to-Sunday weeks, customers
only, a person counted once across the slice's groups.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.utils import timezone

from analytics.metrics import ALL_GROUPS, SHANGHAI, Groups, Ratio, _rows
from analytics.models import ContactActivity

UNITS = {"day": 1, "week": 7}


@dataclass(frozen=True)
class CohortRow:
    start: date  # the cohort's first day
    size: int  # people whose first join into the slice fell in the cohort's day or week
    retained: list[Ratio | None]  # [N] = still members at the end of period start + N


def _period_start(day: date, unit: str) -> date:
    return day - timedelta(days=day.weekday()) if unit == "week" else day


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=SHANGHAI)


# The Shanghai day whose 00:00 is the first midnight at or after the instant `{at}` (NULL
# for an open end).
_FIRST_MIDNIGHT = "((({at}) AT TIME ZONE 'Asia/Shanghai') - interval '1 microsecond')::date + 1"


def join_cohorts(
    groups: Groups,
    *,
    first: date,
    last: date,
    unit: str = "week",
    horizon: int = 12,
    now: datetime | None = None,
) -> list[CohortRow]:
    """Join-cohort retention as a triangle: one row per day or week of first joining the
    slice between `first` and `last`; column N is the share of that cohort still a member
    (of any of the slice's groups) at the end of the Nth day or week after; None where that
    moment has not come yet. Column 0 is the end of the joining day or week itself.

    A person belongs to the cohort of their first join into the slice ever: people who
    were members before `first` are in no cohort, and a rejoin starts no new cohort.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}")
    step = UNITS[unit]
    now = now or timezone.now()
    first_start = _period_start(first, unit)
    starts = []
    day = first_start
    while day <= last:
        starts.append(day)
        day += timedelta(days=step)
    where, params = groups.sql("m.group_id")
    if groups == ALL_GROUPS:
        # Every group: each person's stays from ContactActivity (analytics.activity), the
        # first join the earliest of them.
        firsts = f"""
            SELECT contact_id, joined_at, member FROM (
                SELECT contact_id, least(lower(member), lower(blips)) AS joined_at, member
                FROM {ContactActivity._meta.db_table}
            ) AS a
            WHERE joined_at >= %(from)s AND joined_at < %(until)s
        """
    else:
        firsts = f"""
            SELECT m.contact_id, min(m.joined_at) AS joined_at,
                   coalesce(range_agg(tstzrange(m.joined_at, m.left_at, '[)'))
                       FILTER (WHERE m.left_at IS NULL OR m.left_at > m.joined_at), '{{}}')
                       AS member
            FROM groups_groupmembership m
            WHERE m.contact_id IS NOT NULL AND {where}
            GROUP BY m.contact_id
            HAVING min(m.joined_at) >= %(from)s AND min(m.joined_at) < %(until)s
        """
    # A person is kept at column N when one of their stays (disjoint: a multirange's parts)
    # holds the moment cohort + step × (N + 1) at 00:00 Shanghai. The columns a stay [lo, hi)
    # holds are consecutive, N_lo … N_hi, worked out from the first midnight at or after lo
    # and after hi: a row per stay instead of a containment test per person and column.
    rows = _rows(
        f"""
        WITH firsts AS ({firsts}),
        cohorts AS MATERIALIZED (
            SELECT member,
                   %(first_start)s::date + %(step)s * floor(
                       ((joined_at AT TIME ZONE 'Asia/Shanghai')::date - %(first_start)s::date)
                       / %(step)s::numeric)::int AS cohort
            FROM firsts
        ),
        stays AS (
            SELECT c.cohort,
                   {_FIRST_MIDNIGHT.format(at="lower(r)")} AS lo_day,
                   {_FIRST_MIDNIGHT.format(at="upper(r)")} AS hi_day
            FROM cohorts c CROSS JOIN unnest(c.member) AS r
        ),
        spans AS (
            SELECT cohort,
                   greatest(0, (lo_day - cohort + %(step)s - 1) / %(step)s - 1) AS n_lo,
                   least(%(horizon)s, coalesce((hi_day - 1 - cohort) / %(step)s - 1,
                                               %(horizon)s)) AS n_hi
            FROM stays
        )
        SELECT cohort, -1, -1, count(*) FROM cohorts GROUP BY cohort
        UNION ALL
        SELECT cohort, n_lo, n_hi, count(*) FROM spans WHERE n_lo <= n_hi
        GROUP BY cohort, n_lo, n_hi
        """,
        {
            **params,
            "from": _midnight(first_start),
            "until": _midnight(last + timedelta(days=1)),
            "first_start": first_start,
            "step": step,
            "horizon": horizon,
        },
    )
    sizes: dict[date, int] = {}
    kept: dict[date, list[int]] = {}
    for cohort, n_lo, n_hi, count in rows:
        if n_lo < 0:
            sizes[cohort] = count
            continue
        columns = kept.setdefault(cohort, [0] * (horizon + 1))
        for n in range(n_lo, n_hi + 1):
            columns[n] += count
    result = []
    for start in starts:
        size = sizes.get(start, 0)
        columns = kept.get(start, [0] * (horizon + 1))
        reached = [
            _midnight(start + timedelta(days=step * (n + 1))) <= now for n in range(horizon + 1)
        ]
        retained = [Ratio(columns[n], size) if reached[n] else None for n in range(horizon + 1)]
        result.append(CohortRow(start=start, size=size, retained=retained))
    return result


@dataclass(frozen=True)
class WeekStates:
    week: date  # Monday
    new: int  # first added to a staff member that week
    returning: int  # active that week and the week before
    resurrected: int  # active that week, not the week before, active some time earlier
    dormant: int  # active the week before, not that week


def lifecycle_weeks(*, first: date, last: date) -> list[WeekStates]:
    """Contacts' lifecycle states per week ("active" = spoke or ordered, PRODUCT.md): spoke
    in a group or bought on a day of the week, by ContactActivity (analytics.activity)."""
    first_week = first - timedelta(days=first.weekday())
    weeks = []
    week = first_week
    while week <= last:
        weeks.append(week)
        week += timedelta(days=7)
    # One pass over the people active in the weeks shown or the week before the first: each
    # gives a flag per week (index 0 the week before the first) and their first active day
    # ever, and people alike are counted together, so no person is joined to every week.
    bounds = [weeks[0] - timedelta(days=7), *weeks]
    params = {f"w{i}": week for i, week in enumerate(bounds)}
    flags = ", ".join(
        f"spoke && daterange(%(w{i})s, %(w{i})s + 7) OR bought && daterange(%(w{i})s, %(w{i})s + 7)"
        for i in range(len(bounds))
    )
    window = "daterange(%(from)s, %(until)s)"
    alike = _rows(
        f"""
        SELECT ARRAY[{flags}],
               greatest(least(lower(spoke), lower(bought)), %(from)s - 1) AS first_day,
               count(*)
        FROM {ContactActivity._meta.db_table}
        WHERE spoke && {window} OR bought && {window}
        GROUP BY 1, 2
        """,
        {**params, "from": bounds[0], "until": weeks[-1] + timedelta(days=7)},
    )
    # New: first added to a staff member in the week, by the week's index in `weeks`.
    new = dict(
        _rows(
            """
            SELECT ((first_added_at AT TIME ZONE 'Asia/Shanghai')::date - %(from)s) / 7, count(*)
            FROM contacts_contact
            WHERE first_added_at >= (%(from)s::timestamp AT TIME ZONE 'Asia/Shanghai')
              AND first_added_at < (%(until)s::timestamp AT TIME ZONE 'Asia/Shanghai')
            GROUP BY 1
            """,
            {"from": weeks[0], "until": weeks[-1] + timedelta(days=7)},
        )
    )
    result = []
    for i, week in enumerate(weeks, start=1):
        returning = resurrected = dormant = 0
        for active, first_day, count in alike:
            if active[i] and active[i - 1]:
                returning += count
            elif active[i] and first_day < week:
                resurrected += count
            elif active[i - 1] and not active[i]:
                dormant += count
        result.append(WeekStates(week, new.get(i - 1, 0), returning, resurrected, dormant))
    return result
