"""Benchmark: the lifecycle analytics on the --scale demo data, beside DuckDB as the reference.

    make bench-analytics                                  # the database under .data/
    make bench-analytics BENCH_ARGS="--load"              # load `demo_data --scale` first if needed
    make bench-analytics BENCH_ARGS="--runs 3 --last 2026-12-06"
    SCRM_DATA_DIR=/tmp/scale .venv/bin/python -m scrm.embedded -- \\
        .venv/bin/python tests/bench/bench_analytics.py   # another data dir

Reads the database the run was started with (issue 6: 100,000 contacts, ~10M events over 90
days, from `manage.py demo_data --scale`). It changes none of the demo data; what it does
write, it says: when the daily rollup table is empty it rebuilds the period's days (what
`manage.py rollups_rebuild` does), when there is no manager login it creates `bench-manager`
for the group page, and that page's login stores a session (deleted at the end) and the
user's last_login.

Each measure is warm: one run to warm, then the median of --runs (5) runs.
1. The overview of every group over the last 90 whole Shanghai days, for a manager
   (analytics.dashboard.overview).
2. One group's page, the group with the most members: analytics.dashboard.group_figures, and
   the server time of GET /groups/<id>/ through Django's test client, logged in as a manager.
3. The 12-week join-cohort triangle (analytics.cohorts.join_cohorts, every group).
4. The customer-type split (analytics.customers.type_split) as a manager.
5. The reference: the events, memberships and follow relations exported to Parquet
   (COPY … TO STDOUT as CSV, converted by DuckDB), then DuckDB computing the same overview
   from those files with the formulas of analytics.metrics, on every core.
6. The check: DuckDB's numbers must equal ours, every numerator and denominator (daily means
   to 1e-9). A difference is printed and the run exits with status 1.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# Fewer events than this is not the --scale data: timings would say nothing about 10M.
MIN_EVENTS = 1_000_000
PERIOD_DAYS = 90
COHORT_WEEKS = 12
# A second, shorter period the check compares (untimed): one that starts with members.
CHECK_DAYS = 30
# Issue 6, "Done when": milliseconds, warm.
OVERVIEW_TARGET_MS = 300
GROUP_PAGE_TARGET_MS = 300
COHORT_TARGET_MS = 2_000
TYPE_SPLIT_TARGET_MS = 2_000
MEAN_TOLERANCE = 1e-9

# --- the reference: PostgreSQL → Parquet → DuckDB ---------------------------------------------

# (name, what PostgreSQL copies out, the columns and types DuckDB reads it as, Parquet sort).
# Timestamps leave as text with their UTC offset and arrive as TIMESTAMPTZ. Events keep every
# column but the payload, of which orders and refunds need the order number (refunds match
# their order by it).
EXPORTS = [
    (
        "events",
        """
        SELECT id, type, occurred_at, contact_id, group_id, staff_id, channel_id, campaign_id,
               amount, key,
               CASE WHEN type IN (30, 31) THEN payload ->> 'order_no' END
        FROM analytics_event
        """,
        {
            "id": "BIGINT",
            "type": "SMALLINT",
            "occurred_at": "TIMESTAMPTZ",
            "contact_id": "BIGINT",
            "group_id": "BIGINT",
            "staff_id": "BIGINT",
            "channel_id": "BIGINT",
            "campaign_id": "BIGINT",
            "amount": "BIGINT",
            "key": "UUID",
            "order_no": "VARCHAR",
        },
        # Each event type in its own run of row groups, so a query for one type (orders,
        # referrals) skips the others by their min/max statistics.
        "type, occurred_at",
    ),
    (
        "memberships",
        "SELECT group_id, contact_id, joined_at, left_at FROM groups_groupmembership",
        {
            "group_id": "BIGINT",
            "contact_id": "BIGINT",
            "joined_at": "TIMESTAMPTZ",
            "left_at": "TIMESTAMPTZ",
        },
        "contact_id, joined_at",
    ),
    (
        "follows",
        "SELECT contact_id, staff_id, added_at, deleted_by_staff_at, deleted_by_contact_at"
        " FROM contacts_follow",
        {
            "contact_id": "BIGINT",
            "staff_id": "BIGINT",
            "added_at": "TIMESTAMPTZ",
            "deleted_by_staff_at": "TIMESTAMPTZ",
            "deleted_by_contact_at": "TIMESTAMPTZ",
        },
        "contact_id",
    ),
]

# Parameters of every query: $start and $end, 00:00 of P's first day and 24:00 of its last,
# Shanghai time (TIMESTAMPTZ); $first and $last, the days themselves. Event types as in
# analytics.models.EventType: 3 CONTACT_BLOCKED, 6 REFERRAL, 20 MESSAGE, 30 ORDER_PAID,
# 31 ORDER_REFUNDED. Members are customers: stays with a contact_id (staff stays have none).

# Members at an instant t (metrics.members_at): people with a stay open at t,
#   joined_at <= t AND (left_at IS NULL OR left_at > t), a person counted once.
# Members during P (metrics.members_during, "members at the start of P + joins in P"):
#   people with a stay overlapping P, joined_at < end AND (left_at IS NULL OR left_at > start).
# 退群率 leave rate = people who left a group in P and are members of none at the end of P
#   ÷ members during P.
# 留存率 retention = members at the start of P still members at its end ÷ members at the start.
DUCK_MEMBERS = """
WITH person AS (
    SELECT contact_id,
           bool_or(joined_at <= $start AND coalesce(left_at > $start, TRUE)) AS at_start,
           bool_or(joined_at <= $end AND coalesce(left_at > $end, TRUE)) AS at_end,
           bool_or(joined_at < $end AND coalesce(left_at > $start, TRUE)) AS during,
           bool_or(coalesce(left_at >= $start AND left_at < $end, FALSE)) AS left_in_p
    FROM memberships
    WHERE contact_id IS NOT NULL
    GROUP BY contact_id
)
SELECT count(*) FILTER (at_start) AS members_start,
       count(*) FILTER (at_end) AS members_end,
       count(*) FILTER (during) AS members_during,
       count(*) FILTER (left_in_p AND NOT at_end) AS left_in_p,
       count(*) FILTER (at_start AND at_end) AS kept
FROM person
"""

# Speech in P, per Shanghai day and speaker: MESSAGE events in a group, messages being
# Σ coalesce(amount, 1) (a row may stand for several). The daily figures and the referral
# rate's "active" both read it, so the 8.5M events are scanned once. An event's day is
# $first + whole 24-hour steps since $start: exact, as Asia/Shanghai has kept UTC+8 without
# daylight saving since 1991 (and 3× faster than converting each timestamp's zone).
# contact_id may be NULL (not a customer): its messages count, it is no speaker.
DUCK_SPEECH = """
CREATE OR REPLACE TEMP TABLE speech AS
SELECT $first::DATE + ((epoch_us(occurred_at) - epoch_us($start)) // 86400000000)::INT AS day,
       contact_id, sum(coalesce(amount, 1)) AS messages
FROM events
WHERE type = 20 AND group_id IS NOT NULL AND occurred_at >= $start AND occurred_at < $end
GROUP BY ALL
"""

# Per Shanghai day d of P (metrics._daily):
#   speakers(d)    = distinct contacts who spoke in a group on d;
#   messages(d)    = messages in groups on d;
#   members_end(d) = members at 24:00 of d.
# 互动率 interaction rate = mean over the days with members_end > 0 of speakers ÷ members_end;
# 人均消息量 messages per member = the same mean of messages ÷ members_end.
# To count a person once without a DISTINCT over days × stays, a person's overlapping or
# touching stays are first merged into spans (a stay starts a new span when it begins after
# every earlier stay of theirs has ended); a person's spans are disjoint, so at most one
# covers any instant.
DUCK_DAILY = """
WITH days AS (
    SELECT d::DATE AS day, timezone('Asia/Shanghai', d + INTERVAL 1 DAY) AS day_end
    FROM range($first::TIMESTAMP, $last::TIMESTAMP + INTERVAL 1 DAY, INTERVAL 1 DAY) AS t(d)
),
stays AS (
    SELECT contact_id, joined_at, coalesce(left_at, 'infinity'::TIMESTAMPTZ) AS left_at
    FROM memberships
    WHERE contact_id IS NOT NULL
),
marked AS (
    SELECT *, joined_at > coalesce(
               max(left_at) OVER (PARTITION BY contact_id ORDER BY joined_at, left_at
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
               '-infinity'::TIMESTAMPTZ) AS starts_span
    FROM stays
),
numbered AS (
    SELECT *, sum(starts_span::INT) OVER (PARTITION BY contact_id ORDER BY joined_at, left_at
                                          ROWS UNBOUNDED PRECEDING) AS span
    FROM marked
),
spans AS (
    SELECT contact_id, min(joined_at) AS joined_at, max(left_at) AS left_at
    FROM numbered GROUP BY contact_id, span
),
members AS (
    SELECT days.day, count(*) AS members_end
    FROM days JOIN spans ON spans.joined_at <= days.day_end AND spans.left_at > days.day_end
    GROUP BY days.day
),
spoken AS (
    SELECT day, count(contact_id) AS speakers, sum(messages) AS messages
    FROM speech GROUP BY day
),
daily AS (
    SELECT days.day, coalesce(s.speakers, 0) AS speakers, coalesce(s.messages, 0) AS messages,
           coalesce(m.members_end, 0) AS members_end
    FROM days LEFT JOIN spoken s USING (day) LEFT JOIN members m USING (day)
)
SELECT day, speakers, messages, members_end,
       avg(speakers / members_end) FILTER (members_end > 0) OVER () AS interaction_rate,
       avg(messages / members_end) FILTER (members_end > 0) OVER () AS messages_per_member
FROM daily
ORDER BY day
"""

# Orders (metrics.counted_orders_sql): ORDER_PAID events of a contact in P, net of the
# refunds (ORDER_REFUNDED, same contact and order_no) made before the end of P; an order
# counts while its net is above 0. It belongs to the groups' numbers when its buyer was a
# member of one of them when paying (a stay open at paid_at).
# 转化率 conversion = distinct buyers ÷ members during P.
# 客单价 average order value = Σ net fen ÷ distinct buyers.
# 复购率 repurchase rate = buyers with ≥ 2 orders ÷ buyers.
# 转介绍率 referral rate (metrics.referral_rate): among the members during P who were active
#   in P (spoke in a group, or bought as above), those with a REFERRAL event in P (the event's
#   contact is the referrer) ÷ all of them.
DUCK_ORDERS_REFERRALS = """
WITH refunds AS (
    SELECT contact_id, order_no, sum(amount) AS refunded
    FROM events
    WHERE type = 31 AND occurred_at < $end
    GROUP BY contact_id, order_no
),
counted AS (
    SELECT p.contact_id, p.occurred_at AS paid_at,
           p.amount - coalesce(r.refunded, 0) AS net_fen
    FROM events p
    LEFT JOIN refunds r ON r.contact_id = p.contact_id AND r.order_no = p.order_no
    WHERE p.type = 30 AND p.contact_id IS NOT NULL
      AND p.occurred_at >= $start AND p.occurred_at < $end
      AND p.amount - coalesce(r.refunded, 0) > 0
),
member_orders AS (
    SELECT o.* FROM counted o
    WHERE EXISTS (
        SELECT 1 FROM memberships m
        WHERE m.contact_id = o.contact_id
          AND m.joined_at <= o.paid_at AND coalesce(m.left_at > o.paid_at, TRUE)
    )
),
per_buyer AS (
    SELECT contact_id, count(*) AS orders, sum(net_fen) AS net_fen
    FROM member_orders GROUP BY contact_id
),
exposed AS (
    SELECT DISTINCT contact_id FROM memberships
    WHERE contact_id IS NOT NULL AND joined_at < $end AND coalesce(left_at > $start, TRUE)
),
active AS (
    SELECT contact_id FROM speech WHERE contact_id IS NOT NULL
    UNION
    SELECT contact_id FROM member_orders
),
active_members AS (
    SELECT contact_id FROM active WHERE contact_id IN (SELECT contact_id FROM exposed)
),
referrers AS (
    SELECT DISTINCT contact_id FROM events
    WHERE type = 6 AND occurred_at >= $start AND occurred_at < $end
)
SELECT
    (SELECT count(*) FROM per_buyer) AS buyers,
    (SELECT count(*) FROM per_buyer WHERE orders >= 2) AS repeat_buyers,
    (SELECT coalesce(sum(net_fen), 0) FROM per_buyer) AS net_fen,
    (SELECT count(*) FROM active_members) AS active,
    (SELECT count(*) FROM active_members
     WHERE contact_id IN (SELECT contact_id FROM referrers)) AS referrers
"""

# 拉黑率 block rate (metrics.block_rate, every staff member): distinct contacts with a
# CONTACT_BLOCKED event in P ÷ distinct contacts with a follow relation open at the start of
# P (added by then, deleted by neither side by then).
DUCK_BLOCKS = """
SELECT
    (SELECT count(DISTINCT contact_id) FROM events
     WHERE type = 3 AND occurred_at >= $start AND occurred_at < $end) AS blocked,
    (SELECT count(DISTINCT contact_id) FROM follows
     WHERE added_at <= $start
       AND coalesce(deleted_by_staff_at > $start, TRUE)
       AND coalesce(deleted_by_contact_at > $start, TRUE)) AS contacts_at_start
"""


def duck_connect(directory: Path):
    import duckdb

    duck = duckdb.connect()
    duck.execute(f"SET threads = {os.cpu_count()}")
    for name, *_ in EXPORTS:
        duck.execute(
            f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{directory / name}.parquet')"
        )
    return duck


def export_parquet(duck, directory: Path) -> tuple[dict, float]:
    """Copy each table out of PostgreSQL as CSV into a file, and DuckDB turns it into
    Parquet. Returns {name: (rows, bytes)} and the seconds it took in all."""
    from django.db import connection

    sizes = {}
    started = time.perf_counter()
    for name, select, columns, order in EXPORTS:
        csv_path = directory / f"{name}.csv"
        with connection.cursor() as cursor, open(csv_path, "wb") as out:
            with cursor.cursor.copy(f"COPY ({select}) TO STDOUT (FORMAT csv)") as copy:
                for chunk in copy:
                    out.write(chunk)
        parquet_path = directory / f"{name}.parquet"
        types = ", ".join(f"'{column}': '{kind}'" for column, kind in columns.items())
        duck.execute(
            f"COPY (SELECT * FROM read_csv('{csv_path}', header = false, columns = {{{types}}})"
            f" ORDER BY {order}) TO '{parquet_path}' (FORMAT parquet, COMPRESSION zstd)"
        )
        csv_path.unlink()
        (rows,) = duck.execute(f"SELECT count(*) FROM read_parquet('{parquet_path}')").fetchone()
        sizes[name] = (rows, parquet_path.stat().st_size)
    return sizes, time.perf_counter() - started


def duck_overview(duck, period) -> dict:
    """The overview's numbers, computed by DuckDB from the Parquet files."""
    given = {"start": period.start, "end": period.end, "first": period.first, "last": period.last}

    def run(sql: str):
        # DuckDB wants exactly the parameters a query names.
        return duck.execute(sql, {k: v for k, v in given.items() if f"${k}" in sql})

    members_start, members_end, during, left_in_p, kept = run(DUCK_MEMBERS).fetchone()
    run(DUCK_SPEECH)
    daily = run(DUCK_DAILY).fetchall()
    buyers, repeat_buyers, net_fen, active, referrers = run(DUCK_ORDERS_REFERRALS).fetchone()
    blocked, contacts_at_start = run(DUCK_BLOCKS).fetchone()
    return {
        "members_start": members_start,
        "members_end": members_end,
        "leave_rate": (left_in_p, during),
        "retention": (kept, members_start),
        "interaction_rate": (
            {day: (speakers, members) for day, speakers, _, members, _, _ in daily},
            daily[0][4] if daily else None,
        ),
        "messages_per_member": (
            {day: (messages, members) for day, _, messages, members, _, _ in daily},
            daily[0][5] if daily else None,
        ),
        "conversion": (buyers, during),
        "average_order_value": (int(net_fen), buyers),
        "repurchase_rate": (repeat_buyers, buyers),
        "referral_rate": (referrers, active),
        "block_rate": (blocked, contacts_at_start),
    }


# --- ours ---------------------------------------------------------------------------------------


def our_overview(overview) -> dict:
    """analytics.dashboard.Overview in the shape of duck_overview's result."""
    from analytics.metrics import DailyMean, Ratio

    figures = {}
    for name in DUCK_FIELDS:
        value = getattr(overview, name, None)
        if isinstance(value, Ratio):
            figures[name] = (value.numerator, value.denominator)
        elif isinstance(value, DailyMean):
            days = {day: (r.numerator, r.denominator) for day, r in value.days.items()}
            figures[name] = (days, value.value)
        else:
            figures[name] = value
    return figures


DUCK_FIELDS = (
    "members_start",
    "members_end",
    "leave_rate",
    "retention",
    "interaction_rate",
    "messages_per_member",
    "conversion",
    "average_order_value",
    "repurchase_rate",
    "referral_rate",
    "block_rate",
)
DAILY_FIELDS = ("interaction_rate", "messages_per_member")


def mismatches(ours: dict, duck: dict) -> tuple[list[str], int]:
    """Every figure where the two differ, as a readable line, and how many were compared."""
    found, compared = [], 0
    for name in DUCK_FIELDS:
        mine, theirs = ours.get(name), duck[name]
        if name not in DAILY_FIELDS:
            compared += 2 if isinstance(theirs, tuple) else 1
            if mine != theirs:
                found.append(f"{name}: ours {mine}, DuckDB {theirs}")
            continue
        if not isinstance(mine, tuple):
            found.append(f"{name}: ours {mine!r}, DuckDB a daily mean")
            continue
        (my_days, my_mean), (their_days, their_mean) = mine, theirs
        for day in sorted(set(my_days) | set(their_days)):
            compared += 2
            if my_days.get(day) != their_days.get(day):
                found.append(f"{name} {day}: ours {my_days.get(day)}, DuckDB {their_days.get(day)}")
        compared += 1
        if (my_mean is None) != (their_mean is None) or (
            my_mean is not None and abs(float(my_mean) - their_mean) > MEAN_TOLERANCE
        ):
            found.append(f"{name} mean: ours {my_mean}, DuckDB {their_mean}")
    return found, compared


# --- the run ------------------------------------------------------------------------------------


def timed(function, *, runs: int):
    """One run to warm, then `runs` timed: (median ms, the last result)."""
    result = function()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), result


def scalar(sql: str, params=None):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def scale_data_check(*, load: bool) -> tuple[int, object]:
    """(events, the latest event time); loads the --scale demo data first when asked and
    needed, and exits with advice when the database is too small to say anything."""
    from django.core.management import call_command
    from django.db import connection

    def count():
        if "analytics_event" not in connection.introspection.table_names():
            return 0, None  # a database never migrated
        return scalar("SELECT count(*), max(occurred_at) FROM analytics_event")

    events, latest = count()
    if events < MIN_EVENTS and load:
        print(f"{events:,} events: loading the --scale demo data (about 10 minutes)…", flush=True)
        call_command("migrate", verbosity=0)
        call_command("demo_data", scale=True)
        events, latest = count()
    if events < MIN_EVENTS:
        print(
            f"This database holds {events:,} events; the benchmark needs the --scale demo data "
            f"(100,000 contacts, ~10M events; at least {MIN_EVENTS:,}). Load it into the same "
            "database first (same SCRM_DATA_DIR or DATABASE_URL):\n"
            "    .venv/bin/python -m scrm.embedded -- sh -c \\\n"
            "        '.venv/bin/python manage.py migrate && "
            ".venv/bin/python manage.py demo_data --scale'\n"
            'or run the benchmark with --load (make bench-analytics BENCH_ARGS="--load").',
            file=sys.stderr,
        )
        sys.exit(2)
    return events, latest


def unapplied_migrations() -> list[str]:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


def rollups_ready(period) -> str:
    """Build the period's daily rollups when the table is empty (as `rollups_rebuild`
    would); never touch rollups that exist. Says what it found or did."""
    from analytics.models import DailyRollup
    from analytics.rollups import rollup_rebuild

    if DailyRollup.objects.exists():
        days = (
            DailyRollup.objects.filter(day__range=(period.first, period.last))
            .values("day")
            .distinct()
            .count()
        )
        return f"rollups: present, {days} of the period's {len(period.days)} days (left as is)"
    started = time.perf_counter()
    rollup_rebuild(period.first, period.last)
    return (
        f"rollups: the table was empty; rebuilt the period's {len(period.days)} days in "
        f"{time.perf_counter() - started:.1f} s"
    )


def page_manager():
    """A saved manager login for the group page: the first active one, else bench-manager."""
    from django.db.models import Q

    from scrm.models import Role, User

    manager = (
        User.objects.filter(Q(role=Role.ADMIN) | Q(is_superuser=True), is_active=True)
        .order_by("pk")
        .first()
    )
    if manager:
        return manager, f"group page as existing manager {manager.username}"
    manager = User.objects.create_user("bench-manager", role=Role.ADMIN)
    return manager, "group page as bench-manager (created: there was no manager login)"


def biggest_group():
    """The group with the most customers in it now."""
    from django.db.models import Count, Q

    from groups.models import Group

    open_stays = Q(memberships__left_at__isnull=True, memberships__contact__isnull=False)
    return (
        Group.objects.annotate(members=Count("memberships", filter=open_stays))
        .order_by("-members", "pk")
        .first()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs after the warm one")
    parser.add_argument(
        "--last",
        type=date.fromisoformat,
        help="the period's last day, YYYY-MM-DD (default: the last day with events, "
        "at the latest yesterday)",
    )
    parser.add_argument(
        "--load",
        action="store_true",
        help=f"load `demo_data --scale` first when the database has fewer than {MIN_EVENTS:,} "
        "events",
    )
    parser.add_argument(
        "--parquet-dir", type=Path, help="write the Parquet files here, and keep them"
    )
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scrm.settings")
    import django

    django.setup()
    import duckdb
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from analytics import cohorts, customers, dashboard
    from analytics.metrics import ALL_GROUPS, SHANGHAI, Period
    from contacts.models import Contact
    from groups.models import Group, GroupMembership
    from scrm.models import Role, User

    events, latest = scale_data_check(load=args.load)
    yesterday = timezone.localdate(timezone.now(), SHANGHAI) - timedelta(days=1)
    last = args.last or min(yesterday, latest.astimezone(SHANGHAI).date())
    period = Period(last - timedelta(days=PERIOD_DAYS - 1), last)
    # The 90 days may start with the history (no one a member at their start): the check
    # also compares a shorter period that starts with members, contacts and retention.
    check_period = Period(last - timedelta(days=CHECK_DAYS - 1), last)
    contacts = Contact.objects.count()
    print(
        f"Lifecycle analytics: {events:,} events, {contacts:,} contacts, "
        f"{Group.objects.count():,} groups, {GroupMembership.objects.count():,} memberships; "
        f"period {period.first} … {period.last} ({PERIOD_DAYS} Shanghai days)",
        flush=True,
    )
    pending = unapplied_migrations()
    if pending:
        # The code would fail on a missing table halfway through; the benchmark changes no
        # schema itself.
        print(
            f"This database lacks migrations the code needs: {', '.join(pending)}. Apply them "
            "first (same SCRM_DATA_DIR or DATABASE_URL):\n"
            "    .venv/bin/python -m scrm.embedded -- .venv/bin/python manage.py migrate",
            file=sys.stderr,
        )
        sys.exit(2)
    notes = [rollups_ready(period)]
    # The functions only ask the login's role: an unsaved manager is enough for them.
    manager = User(username="bench-manager", role=Role.ADMIN)

    print("timing the overview…", flush=True)
    overview_ms, overview = timed(
        lambda: dashboard.overview(user=manager, period=period), runs=args.runs
    )

    group = biggest_group()
    print(f"timing group {group.pk}'s page…", flush=True)
    figures_ms, _ = timed(lambda: dashboard.group_figures(group, period), runs=args.runs)
    page_user, who = page_manager()
    notes.append(who)
    client = Client(HTTP_HOST="localhost")
    client.force_login(page_user)
    url = reverse("groups:detail", args=[group.pk])

    def group_page():
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}")

    try:
        page_ms, _ = timed(group_page, runs=args.runs)
    finally:
        client.logout()  # deletes the session row the login stored

    print("timing the cohort triangle and the customer-type split…", flush=True)
    cohort_first = period.last - timedelta(weeks=COHORT_WEEKS) + timedelta(days=1)
    cohort_ms, triangle = timed(
        lambda: cohorts.join_cohorts(
            ALL_GROUPS,
            first=cohort_first,
            last=period.last,
            unit="week",
            horizon=COHORT_WEEKS,
            now=period.end,
        ),
        runs=args.runs,
    )
    split_ms, split = timed(
        lambda: customers.type_split(user=manager, now=period.end), runs=args.runs
    )

    print("exporting to Parquet and timing DuckDB…", flush=True)
    directory = args.parquet_dir or Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with duckdb.connect() as converter:
            converter.execute(f"SET threads = {os.cpu_count()}")
            sizes, export_s = export_parquet(converter, directory)
        with duck_connect(directory) as duck:
            duck_ms, duck_figures = timed(lambda: duck_overview(duck, period), runs=args.runs)
            duck_check = duck_overview(duck, check_period)
    finally:
        if args.parquet_dir is None:
            shutil.rmtree(directory, ignore_errors=True)
    print(f"checking the last {CHECK_DAYS} days too…", flush=True)
    ours_check = dashboard.overview(user=manager, period=check_period)

    def verdict(ms: float, target_ms: int) -> tuple[str, str]:
        return f"< {target_ms:,} ms", "OK" if ms < target_ms else "MISSES"

    rows = [
        (
            f"overview, every group, {PERIOD_DAYS} days",
            overview_ms,
            f"< {OVERVIEW_TARGET_MS} ms, < DuckDB",
            "OK" if overview_ms < min(OVERVIEW_TARGET_MS, duck_ms) else "MISSES",
        ),
        ("  DuckDB, the same overview from Parquet", duck_ms, "reference", ""),
        (
            f"group figures (group {group.pk}, {group.members:,} members)",
            figures_ms,
            *verdict(figures_ms, GROUP_PAGE_TARGET_MS),
        ),
        (f"group page GET {url}", page_ms, *verdict(page_ms, GROUP_PAGE_TARGET_MS)),
        (
            f"cohort triangle, {len(triangle)} weeks × {COHORT_WEEKS + 1}",
            cohort_ms,
            *verdict(cohort_ms, COHORT_TARGET_MS),
        ),
        (
            f"customer-type split, {contacts:,} contacts",
            split_ms,
            *verdict(split_ms, TYPE_SPLIT_TARGET_MS),
        ),
    ]
    print(f"\nWarm: one run, then the median of {args.runs}. DuckDB on {os.cpu_count()} threads.")
    print(f"{'measure':<48}{'time':>12}  {'target':<22}")
    for measure, ms, target, outcome in rows:
        print(f"{measure:<48}{ms:>9,.0f} ms  {target:<22}{outcome}")
    print()
    for name, (count, size) in sizes.items():
        print(f"Parquet {name:<12}{count:>12,} rows {size / 1e6:>9.1f} MB")
    print(f"Parquet export (COPY … TO STDOUT as CSV, DuckDB to Parquet): {export_s:.1f} s")
    print("customer types: " + ", ".join(f"{s.type} {s.count:,}" for s in split))
    for note in notes:
        print(note)

    failed = False
    for checked, ours, duck in (
        (period, our_overview(overview), duck_figures),
        (check_period, our_overview(ours_check), duck_check),
    ):
        found, compared = mismatches(ours, duck)
        what = f"{checked.first} … {checked.last}"
        if found:
            failed = True
            print(
                f"\n!!! MISMATCH, {what}: DuckDB and our overview differ in {len(found)} of "
                f"{compared} numbers:"
            )
            for line in found:
                print(f"!!!   {line}")
            continue
        print(f"\ncheck, {what}: DuckDB equals our overview on all {compared} numbers")
        for name in DUCK_FIELDS:
            value = ours[name]
            shown = f"mean {value[1]}" if name in DAILY_FIELDS else value
            print(f"  {name:<22}{shown}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
