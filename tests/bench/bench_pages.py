"""Benchmark: the server time of every main dashboard page on the --scale demo data.

    make bench-pages                                      # the database under .data/
    make bench-pages BENCH_ARGS="--runs 9 --only contacts"
    SCRM_DATA_DIR=/tmp/scale .venv/bin/python -m scrm.embedded -- \\
        .venv/bin/python tests/bench/bench_pages.py       # another data dir

Reads the database the run was started with (issue 7, point 7: every dashboard page under
300 ms server time on `demo_data --scale`: 100,000 contacts, 1,000 groups, ~10M events).
It changes none of the demo data. What it writes, it says: when there is no manager login
it creates `bench-manager`; the login stores a session (deleted at the end) and the user's
last_login.

Each page is requested through Django's test client, logged in as a manager: one request to
warm, then --runs (5) timed; the table gives the median, the 95th percentile (nearest rank)
and the number of queries of the last request.
"""

import argparse
import logging
import math
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# Fewer events than this is not the --scale data: timings would say nothing about 10M.
MIN_EVENTS = 1_000_000
# Issue 7, point 7: milliseconds of server time, warm.
PAGE_TARGET_MS = 300


def page_manager():
    """A saved manager login: the first active one, else bench-manager (created)."""
    from django.db.models import Q

    from scrm.models import Role, User

    manager = (
        User.objects.filter(Q(role=Role.ADMIN) | Q(is_superuser=True), is_active=True)
        .order_by("pk")
        .first()
    )
    if manager:
        return manager, f"as existing manager {manager.username}"
    manager = User.objects.create_user("bench-manager", role=Role.ADMIN)
    return manager, "as bench-manager (created: there was no manager login)"


def sample_objects() -> dict:
    """The rows the detail pages show: the biggest group, the contact in most groups, the
    plan with the most deliveries, the latest campaign."""
    from django.db import connection
    from django.db.models import Count, Q

    from groups.models import Group

    open_stays = Q(memberships__left_at__isnull=True, memberships__contact__isnull=False)
    group = (
        Group.objects.annotate(members=Count("memberships", filter=open_stays))
        .order_by("-members", "pk")
        .first()
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT contact_id FROM groups_groupmembership WHERE contact_id IS NOT NULL "
            "GROUP BY contact_id ORDER BY count(*) DESC, contact_id LIMIT 1"
        )
        contact = cursor.fetchone()
        # The plan with the most deliveries, from a sample: counting 10M rows is slow.
        cursor.execute(
            "SELECT plan_id FROM sop_delivery TABLESAMPLE SYSTEM (1) "
            "GROUP BY plan_id ORDER BY count(*) DESC LIMIT 1"
        )
        plan = cursor.fetchone()
        if plan is None:
            cursor.execute("SELECT min(id) FROM sop_plan")
            plan = cursor.fetchone()
        # The latest campaign, by id only: its other columns may be missing (see
        # unapplied_migrations).
        cursor.execute("SELECT max(id) FROM campaigns_campaign")
        campaign = cursor.fetchone()
    return {
        "group": group.pk if group else None,
        "contact": contact[0] if contact else None,
        "plan": plan[0] if plan else None,
        "campaign": campaign[0] if campaign else None,
    }


OTHER_RANGE = ", other range"  # ends the name of a page timed for reference only
SORTED_BY = ("members_end", "retention", "interaction_rate", "conversion", "roi", "referral_rate")


def pages(objects: dict) -> list[tuple[str, str]]:
    """(page, URL) of every main dashboard page, by area; a detail page only when its row
    exists."""
    from django.urls import reverse

    from analytics.dashboard import default_period

    # The default range a week earlier.
    default = default_period()
    first, last = (day - timedelta(days=7) for day in (default.first, default.last))
    earlier = f"first={first}&last={last}"

    def detail(key: str, *more: tuple[str, str]) -> list[tuple[str, str]]:
        if not objects[key]:
            return []
        return [(label, reverse(url_name, args=[objects[key]])) for label, url_name in more]

    return [
        ("workbench", reverse("dashboard")),
        ("contact list", reverse("contacts:list")),
        *detail("contact", ("contact 360", "contacts:detail")),
        ("group list", reverse("groups:list")),
        *detail(
            "group",
            ("group page", "groups:detail"),
            ("group members", "groups:members"),
            ("group history", "groups:history"),
        ),
        ("group overlap", reverse("groups:overlap")),
        ("channel codes", reverse("groups:channel-codes")),
        ("handovers", reverse("groups:handovers")),
        ("SOP plans", reverse("sop:plans")),
        *detail(
            "plan",
            ("SOP plan", "sop:plan"),
            ("SOP plan deliveries", "sop:plan-deliveries"),
        ),
        ("new SOP plan", reverse("sop:plan-new") + "?kind=group"),
        ("content library", reverse("sop:content")),
        ("SOP completion", reverse("sop:completion")),
        ("campaigns", reverse("campaign_admin:list")),
        ("new campaign", reverse("campaign_admin:new")),
        *detail("campaign", ("campaign", "campaign_admin:detail")),
        ("analytics overview", reverse("analytics:overview")),
        ("group comparison", reverse("analytics:groups")),
        # Sorted by a figure: that figure of every group (stored by the 5-minute refresh for
        # the default range), then the page's 50 whole.
        *((f"groups by {key}", f"{reverse('analytics:groups')}?sort=-{key}") for key in SORTED_BY),
        # For reference, not a target: the same sorts over a range of the operator's choosing.
        # The first sort computes every group's figure; it also queues the range's figures
        # to be stored (analytics.group_snapshot), which a worker does in about a second,
        # and from then on the range reads them as the default one does.
        *(
            (
                f"groups by {key}{OTHER_RANGE}",
                f"{reverse('analytics:groups')}?sort=-{key}&{earlier}",
            )
            for key in SORTED_BY
        ),
        ("channel comparison", reverse("analytics:channels")),
        ("cohorts", reverse("analytics:cohorts")),
        ("customer types", reverse("analytics:customers")),
        ("customer value", reverse("analytics:value")),
        ("funnel", reverse("analytics:funnel")),
        ("costs", reverse("analytics:costs")),
        ("import/export", reverse("io:home")),
        ("jobs", reverse("io:jobs")),
        ("settings", reverse("settings")),
    ]


def stored_figures() -> str:
    """Whether the group comparison's sorts read stored figures, as after the 5-minute refresh."""
    from analytics.dashboard import default_period
    from analytics.group_snapshot import snapshot_rows

    period = default_period()
    if snapshot_rows(period, []) is None:
        return f"none for {period.first}…{period.last} (manage.py rollups_rebuild stores them)"
    return f"hold for {period.first}…{period.last}"


def unapplied_migrations() -> list[str]:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


def p95(samples: list[float]) -> float:
    """The nearest-rank 95th percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def measure(client, url: str, *, runs: int) -> tuple[list[float], int]:
    """One request to warm, then `runs` timed: (milliseconds each, queries of the last)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def get():
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}")

    get()
    samples = []
    queries = 0
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            get()
            samples.append((time.perf_counter() - started) * 1000)
        queries = len(captured.captured_queries)
    return samples, queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed requests after the warm one")
    parser.add_argument(
        "--only", action="append", default=[], help="only pages whose name contains this"
    )
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scrm.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.utils import translation

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM analytics_event")
        (events,) = cursor.fetchone()
    if events < MIN_EVENTS:
        print(
            f"This database holds {events:,} events; the benchmark needs the --scale demo data "
            f"(at least {MIN_EVENTS:,}). Load it first (same SCRM_DATA_DIR or DATABASE_URL):\n"
            "    .venv/bin/python -m scrm.embedded -- sh -c \\\n"
            "        '.venv/bin/python manage.py migrate && "
            ".venv/bin/python manage.py demo_data --scale'",
            file=sys.stderr,
        )
        sys.exit(2)

    pending = unapplied_migrations()
    if pending:
        # Not applied here: the benchmark changes no schema. Pages needing them fail in the
        # table (ERROR) and the rest are still measured.
        print(
            f"warning: this database lacks migrations: {', '.join(pending)}; pages that need "
            "them will show ERROR. Apply them with manage.py migrate (same SCRM_DATA_DIR).",
            file=sys.stderr,
        )
    objects = sample_objects()
    user, who = page_manager()
    chosen = [
        (name, url)
        for name, url in pages(objects)
        if not args.only or any(part in name for part in args.only)
    ]
    print(f"{events:,} events; {len(chosen)} pages {who}; {objects}", flush=True)
    print(f"group figures stored by the refresh: {stored_figures()}", flush=True)
    # A failing page becomes an ERROR row; its traceback would drown the table.
    logging.getLogger("django.request").disabled = True
    # DEBUG is off here, so CaptureQueriesContext turns query logging on for its block.
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    rows = []
    try:
        with translation.override("zh-hans"):
            for name, url in chosen:
                print(f"  {name} {url} …", flush=True)
                try:
                    samples, queries = measure(client, url, runs=args.runs)
                except Exception as exc:  # a broken page is a row of the table, not the end
                    rows.append((name, url, None, None, None, f"ERROR {exc}"[:60]))
                    continue
                median = statistics.median(samples)
                if name.endswith(OTHER_RANGE):
                    outcome = "(reference)"
                else:
                    outcome = "OK" if median < PAGE_TARGET_MS else "MISSES"
                rows.append((name, url, median, p95(samples), queries, outcome))
    finally:
        client.logout()  # deletes the session row the login stored

    print(f"\nWarm: one request, then {args.runs} timed; target < {PAGE_TARGET_MS} ms median.")
    print(f"{'page':<22}{'URL':<34}{'median ms':>10}{'p95':>8}{'queries':>9}  target")
    for name, url, median, high, queries, outcome in rows:
        if median is None:
            print(f"{name:<22}{url:<34}{'':>10}{'':>8}{'':>9}  {outcome}")
            continue
        print(f"{name:<22}{url:<34}{median:>10,.0f}{high:>8,.0f}{queries:>9}  {outcome}")
    targets = [row for row in rows if row[5] != "(reference)"]
    missed = [row[0] for row in targets if row[5] != "OK"]
    if not targets:
        return
    print(
        f"\n{len(targets) - len(missed)} of {len(targets)} pages under {PAGE_TARGET_MS} ms", end=""
    )
    print(f"; over or failing: {', '.join(missed)}" if missed else "")


if __name__ == "__main__":
    main()
