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
        # first join the earliest of them, kept when their union holds the moment.
        firsts = f"""
            SELECT contact_id, joined_at, member FROM (
                SELECT contact_id, least(lower(member), lower(blips)) AS joined_at, member
                FROM {ContactActivity._meta.db_table}
            ) AS a
            WHERE joined_at >= %(from)s AND joined_at < %(until)s
        """
        kept = "checks.member @> checks.at"
    else:
        firsts = f"""
            SELECT m.contact_id, min(m.joined_at) AS joined_at, NULL::tstzmultirange AS member
            FROM groups_groupmembership m
            WHERE m.contact_id IS NOT NULL AND {where}
            GROUP BY m.contact_id
            HAVING min(m.joined_at) >= %(from)s AND min(m.joined_at) < %(until)s
        """
        kept = f"""EXISTS (
            SELECT 1 FROM groups_groupmembership m
            WHERE m.contact_id = checks.contact_id AND {where}
              AND m.joined_at <= checks.at
              AND (m.left_at IS NULL OR m.left_at > checks.at))"""
    rows = _rows(
        f"""
        WITH firsts AS ({firsts}),
        cohorts AS (
            SELECT contact_id, member,
                   %(first_start)s::date + %(step)s * floor(
                       ((joined_at AT TIME ZONE 'Asia/Shanghai')::date - %(first_start)s::date)
                       / %(step)s::numeric)::int AS cohort
            FROM firsts
        ),
        checks AS (
            SELECT c.cohort, n,
                   ((c.cohort + %(step)s * (n + 1))::timestamp
                    AT TIME ZONE 'Asia/Shanghai') AS at,
                   c.contact_id, c.member
            FROM cohorts c CROSS JOIN generate_series(0, %(horizon)s) AS n
        )
        SELECT cohort, n, count(*) AS size, count(*) FILTER (WHERE {kept}) AS kept
        FROM checks WHERE checks.at <= %(now)s OR n = 0
        GROUP BY cohort, n ORDER BY cohort, n
        """,
        {
            **params,
            "from": _midnight(first_start),
            "until": _midnight(last + timedelta(days=1)),
            "first_start": first_start,
            "step": step,
            "horizon": horizon,
            "now": now,
        },
    )
    table: dict[date, dict[int, tuple[int, int]]] = {}
    for cohort, n, size, kept in rows:
        table.setdefault(cohort, {})[n] = (size, kept)
    result = []
    for start in starts:
        cells = table.get(start, {})
        size = cells[0][0] if 0 in cells else 0
        reached = [
            _midnight(start + timedelta(days=step * (n + 1))) <= now for n in range(horizon + 1)
        ]
        retained = [
            Ratio(cells.get(n, (size, 0))[1], size) if reached[n] else None
            for n in range(horizon + 1)
        ]
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
    # Only people active in the weeks shown or the week before the first are tested week by
    # week; "active some time earlier" is their first active day, the lower bound of the days.
    rows = _rows(
        f"""
        WITH people AS MATERIALIZED (  -- each union once, not once per test
            SELECT spoke + bought AS days FROM {ContactActivity._meta.db_table}
            WHERE (spoke + bought) && daterange(%(from)s, %(until)s)
        ),
        weeks AS (SELECT unnest(%(weeks)s::date[]) AS week),
        states AS (
            SELECT w.week,
                p.days && daterange(w.week, w.week + 7) AS active,
                p.days && daterange(w.week - 7, w.week) AS before,
                lower(p.days) < w.week AS earlier
            FROM weeks w JOIN people p ON p.days && daterange(w.week - 7, w.week + 7)
        )
        SELECT w.week,
            (SELECT count(*) FROM contacts_contact c
             WHERE c.first_added_at >= (w.week::timestamp AT TIME ZONE 'Asia/Shanghai')
               AND c.first_added_at < ((w.week + 7)::timestamp AT TIME ZONE 'Asia/Shanghai')),
            count(*) FILTER (WHERE s.active AND s.before),
            count(*) FILTER (WHERE s.active AND NOT s.before AND s.earlier),
            count(*) FILTER (WHERE s.before AND NOT s.active)
        FROM weeks w LEFT JOIN states s ON s.week = w.week
        GROUP BY w.week ORDER BY w.week
        """,
        {
            "weeks": weeks,
            "from": weeks[0] - timedelta(days=7),
            "until": weeks[-1] + timedelta(days=7),
        },
    )
    return [WeekStates(*row) for row in rows]
