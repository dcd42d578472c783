"""Benchmark: the contact list query (three tags all-of + tier + stage), first page + total.

    make bench-contacts                                  # 100,000 contacts × 20 tags
    make bench-contacts BENCH_ARGS="--contacts 20000 --runs 30"
    make bench-contacts BENCH_ARGS="--events-per-contact 20 --try-order-index"

Runs in its own database (scrm_bench_contacts, created and dropped here) on the server the
run was started with, so demo data is untouched. Loads contacts, 200 tags in 10 groups
(20 per contact, popularity skewed like real tags: a few common, many rare), tiers, stages,
one follow each (50 staff) by COPY; VACUUM ANALYZE; then times, warm, what one list page
costs: the total count and the first 50 rows, exactly as contacts.selectors builds them, as
a manager and as an operator. Prints median and p95, and EXPLAIN ANALYZE of both queries.
With --events-per-contact it also loads an event log and times the filters that read it
(orders, spend, customer type), and with --try-order-index again after adding the partial
index on order events those filters want.
"""

import argparse
import io
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
BENCH_DB = "scrm_bench_contacts"
TAG_GROUPS = 10
TAGS_PER_GROUP = 20
STAFF = 50
TIERS = [("VIP1", 0.50), ("VIP2", 0.30), ("VIP3", 0.15), ("VIP4", 0.05)]
STAGES = [
    ("new", 0.30),
    ("first_order", 0.25),
    ("repeat", 0.20),
    ("dormant", 0.15),
    ("churned", 0.10),
]
TARGET_MS = 100.0
PAGE_SIZE = 50


def bench_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def _copy(cursor, table: str, columns: str, lines) -> None:
    """COPY text rows (tab-separated, one per line) in chunks of about 8 MB."""
    with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        buffer = io.StringIO()
        for line in lines:
            buffer.write(line)
            if buffer.tell() > 8_000_000:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())


def load(*, contacts: int, tags_per_contact: int, seed: int) -> dict:
    """Fill the bench database; returns ids the queries need."""
    import numpy as np
    from django.db import connection

    from contacts.models import MemberTier, Staff, Tag, TagGroup

    rng = np.random.default_rng(seed)
    now = datetime(2026, 9, 1, tzinfo=UTC)
    tiers = [MemberTier.objects.create(name=name, level=n + 1) for n, (name, _) in enumerate(TIERS)]
    staff = Staff.objects.bulk_create(
        Staff(userid=f"bench-staff-{n:02d}", name=f"员工{n:02d}") for n in range(STAFF)
    )
    groups = TagGroup.objects.bulk_create(
        TagGroup(name=f"标签组{g}", order=g) for g in range(TAG_GROUPS)
    )
    tags = Tag.objects.bulk_create(
        Tag(group=groups[g], name=f"标签{g}-{t}", order=t)
        for g in range(TAG_GROUPS)
        for t in range(TAGS_PER_GROUP)
    )
    tag_ids = np.array([t.pk for t in tags])
    # Popularity ~ 1 / rank^0.8, ranks shuffled across groups.
    weights = 1.0 / np.arange(1, len(tags) + 1) ** 0.8
    rng.shuffle(weights)
    log_weights = np.log(weights)

    tier_ids = rng.choice([t.pk for t in tiers], size=contacts, p=[p for _, p in TIERS])
    stages = rng.choice([s for s, _ in STAGES], size=contacts, p=[p for _, p in STAGES])
    added_days = rng.uniform(0, 365, size=contacts)
    active_days = rng.uniform(0, 180, size=contacts)
    never_active = rng.random(contacts) < 0.10
    follow_staff = rng.integers(0, STAFF, size=contacts)

    null = r"\N"  # COPY's text format for NULL

    def stamp(days_ago: float) -> str:
        return (now - timedelta(days=float(days_ago))).isoformat()

    started = time.perf_counter()
    with connection.cursor() as cursor:
        _copy(
            cursor,
            "contacts_contact",
            "id, external_userid, name, gender, avatar, unionid, tier_id, stage, influence,"
            " opted_out, points_balance, first_added_at, last_active_at, created_at, updated_at",
            (
                f"{i + 1}\twm-bench-{i:06d}\t客户{i:06d}\t{i % 3}\t\t\t{tier_ids[i]}\t{stages[i]}"
                f"\t\tf\t{(i * 37) % 5000}\t{stamp(added_days[i])}"
                f"\t{null if never_active[i] else stamp(min(active_days[i], added_days[i]))}"
                f"\t{stamp(added_days[i])}\t{stamp(0)}\n"
                for i in range(contacts)
            ),
        )
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('contacts_contact', 'id'), %s)", [contacts]
        )
        _copy(
            cursor,
            "contacts_follow",
            "contact_id, staff_id, remark, description, added_at, add_way, state",
            (
                f"{i + 1}\t{staff[follow_staff[i]].pk}\t\t\t{stamp(added_days[i])}\t0\t\n"
                for i in range(contacts)
            ),
        )
        contact_tag_rows = 0

        def contact_tags():
            nonlocal contact_tag_rows
            chunk = 10_000
            created = stamp(30)
            for start in range(0, contacts, chunk):
                size = min(chunk, contacts - start)
                # Gumbel top-k: k distinct tags per contact, drawn by weight.
                keys = log_weights + rng.gumbel(size=(size, len(tags)))
                picks = np.argpartition(-keys, tags_per_contact, axis=1)[:, :tags_per_contact]
                picks.sort(axis=1)
                for row, chosen in enumerate(tag_ids[picks]):
                    contact_id = start + row + 1
                    for tag_id in chosen:
                        yield f"{contact_id}\t{tag_id}\tmanual\t{created}\n"
                contact_tag_rows += size * tags_per_contact

        _copy(
            cursor, "contacts_contacttag", "contact_id, tag_id, source, created_at", contact_tags()
        )
    loaded = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE contacts_contact")
        cursor.execute("VACUUM ANALYZE contacts_contacttag")
        cursor.execute("VACUUM ANALYZE contacts_follow")
        cursor.execute(
            "SELECT tag_id, count(*) FROM contacts_contacttag GROUP BY tag_id ORDER BY 2 DESC"
        )
        popularity = cursor.fetchall()
    return {
        "tiers": tiers,
        "staff": staff,
        "popularity": popularity,
        "contact_tag_rows": contact_tag_rows,
        "load_seconds": loaded,
    }


def load_events(*, contacts: int, per_contact: int, seed: int) -> int:
    """An event log behind the order filters: per contact about `per_contact` events, one in
    twenty an order (some refunded), the rest speech, over the last 180 days."""
    import numpy as np
    from django.db import connection

    rng = np.random.default_rng(seed + 1)
    now = datetime(2026, 9, 1, tzinfo=UTC)
    total = contacts * per_contact
    contact_ids = rng.integers(1, contacts + 1, size=total)
    days_ago = rng.uniform(0, 180, size=total)
    is_order = rng.random(total) < 0.05
    amounts = rng.integers(500, 60_000, size=total)
    refunded = rng.random(total) < 0.03
    null = r"\N"

    def rows():
        for n in range(total):
            at = (now - timedelta(days=float(days_ago[n]))).isoformat()
            key = f"00000000-0000-4000-8000-{n:012d}"
            if is_order[n]:
                payload = f'{{"order_no": "B{n:09d}"}}'
                yield f"30\t{at}\t{contact_ids[n]}\t{amounts[n]}\t{payload}\t{key}\n"
                if refunded[n]:
                    later = (now - timedelta(days=float(days_ago[n]) / 2)).isoformat()
                    refund_key = f"00000000-0000-4000-9000-{n:012d}"
                    yield (
                        f"31\t{later}\t{contact_ids[n]}\t{amounts[n]}\t{payload}\t{refund_key}\n"
                    )
            else:
                yield f"20\t{at}\t{contact_ids[n]}\t1\t{null}\t{key}\n"

    with connection.cursor() as cursor:
        _copy(
            cursor, "analytics_event", "type, occurred_at, contact_id, amount, payload, key", rows()
        )
        cursor.execute("VACUUM ANALYZE analytics_event")
        cursor.execute("SELECT count(*) FROM analytics_event")
        return cursor.fetchone()[0]


def timed(function, *, runs: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


# The index the order filters would want (analytics owns the model): order events by contact.
ORDER_INDEX_SQL = (
    "CREATE INDEX event_contact_orders ON analytics_event (contact_id, occurred_at)"
    " WHERE type IN (30, 31) AND contact_id IS NOT NULL"
)


def time_order_filters(base, *, manager, runs: int, events: int, label: str) -> list:
    """Count + first page for filters that read the event log, with and without tags."""
    from django.http import QueryDict

    from contacts.filters import contact_filters_parse
    from contacts.selectors import contacts_filtered

    tier_stage = QueryDict(mutable=True)
    tier_stage["tier"], tier_stage["stage"] = base["tier"], base["stage"]
    cases = [
        ("tier + stage + orders ≥ 3", tier_stage, {"orders_min": "3"}),
        ("3 tags + tier + stage + spend ≥ ¥300", base, {"spend_min": "300"}),
        ("3 tags + tier + stage, sorted by spend", base, {"sort": "-spend"}),
        ("tier + stage + customer type bargain", tier_stage, {"customer_type": "bargain"}),
    ]
    results = []
    for what, start, extra in cases:
        query = start.copy()
        for name, value in extra.items():
            query[name] = value
        contacts = contacts_filtered(user=manager, filters=contact_filters_parse(query))
        matched = contacts.count()

        def count_and_page(contacts=contacts):
            contacts.count()
            list(contacts[:PAGE_SIZE])

        results.append((label, events, what, matched, timed(count_and_page, runs=runs, warmup=1)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--tags-per-contact", type=int, default=20)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument(
        "--events-per-contact",
        type=int,
        default=0,
        help="also load an event log this deep and time the order and customer-type filters",
    )
    parser.add_argument(
        "--try-order-index",
        action="store_true",
        help="then add a partial index on order events and time those filters again",
    )
    args = parser.parse_args()

    import psycopg

    admin_url = os.environ["DATABASE_URL"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    os.environ["DATABASE_URL"] = bench_url(admin_url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scrm.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.http import QueryDict

    from contacts.filters import contact_filters_parse
    from contacts.selectors import contact_rows, contact_rows_attach, contacts_filtered
    from scrm.models import Role, User

    try:
        call_command("migrate", verbosity=0)
        data = load(contacts=args.contacts, tags_per_contact=args.tags_per_contact, seed=args.seed)
        popularity = data["popularity"]
        # Three tags among the common ones (ranks 3, 6, 10), VIP2, repeat buyers: a filter
        # an operator would use, matching a few hundred to a few thousand customers.
        tag_ids = [popularity[rank][0] for rank in (2, 5, 9)]
        shares = [popularity[rank][1] / args.contacts for rank in (2, 5, 9)]
        query = QueryDict(mutable=True)
        query.setlist("tags_all", [str(t) for t in tag_ids])
        query["tier"] = str(data["tiers"][1].pk)
        query["stage"] = "repeat"
        filters = contact_filters_parse(query)
        manager = User.objects.create_user("bench-manager", role=Role.ADMIN)
        operator = User.objects.create_user("bench-operator", role=Role.OPERATOR)
        data["staff"][0].user = operator
        data["staff"][0].save(update_fields=["user"])
        operator.refresh_from_db()

        results = []
        explains = {}
        for label, user in (("manager", manager), ("operator", operator)):
            contacts = contacts_filtered(user=user, filters=filters)
            matched = contacts.count()

            def count_and_page(contacts=contacts):
                contacts.count()
                list(contacts[:PAGE_SIZE])

            def whole_page(contacts=contacts):
                contacts.count()
                rows = list(contact_rows(contacts)[:PAGE_SIZE])
                contact_rows_attach(rows)

            results.append(
                (label, matched, "count + 50 rows", timed(count_and_page, runs=args.runs))
            )
            results.append(
                (label, matched, "… + tags, staff, stats", timed(whole_page, runs=args.runs))
            )
            explains[label] = (
                contacts.order_by().explain(analyze=True, buffers=True),
                contacts[:PAGE_SIZE].explain(analyze=True, buffers=True),
            )
        order_results = []
        if args.events_per_contact:
            events = load_events(
                contacts=args.contacts, per_contact=args.events_per_contact, seed=args.seed
            )
            order_results = time_order_filters(
                query, manager=manager, runs=min(args.runs, 5), events=events, label="no index"
            )
            if args.try_order_index:
                with connection.cursor() as cursor:
                    cursor.execute(ORDER_INDEX_SQL)
                    cursor.execute("ANALYZE analytics_event")
                order_results += time_order_filters(
                    query, manager=manager, runs=min(args.runs, 5), events=events, label="index"
                )
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('contacts_contacttag'))")
            size = cursor.fetchone()[0]
    finally:
        connection.close()
        if not args.keep:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')

    print(
        f"\nContact list, {args.contacts:,} contacts × {args.tags_per_contact} tags "
        f"({data['contact_tag_rows']:,} contact-tag rows, {size} with indexes), "
        f"loaded in {data['load_seconds']:.1f} s"
    )
    print(
        "filter: tags_all of 3 tags held by "
        + ", ".join(f"{share:.0%}" for share in shares)
        + " of contacts, tier VIP2, stage repeat; default sort (last active, newest first)"
    )
    print(f"{'as':<10}{'matches':>9}  {'what':<24}{'median ms':>10}{'p95 ms':>9}{'max ms':>9}")
    for label, matched, what, samples in results:
        print(
            f"{label:<10}{matched:>9,}  {what:<24}{statistics.median(samples):>10.1f}"
            f"{p95(samples):>9.1f}{max(samples):>9.1f}"
        )
    worst = max(p95(samples) for *_, samples in results[::2])
    verdict = "meets" if worst < TARGET_MS else "MISSES"
    print(
        f"target: under {TARGET_MS:.0f} ms a page (count + 50 rows): {verdict}, p95 {worst:.1f} ms"
    )
    if order_results:
        print(f"\nOrder filters over the event log (manager; {order_results[0][1]:,} events)")
        print(f"{'index':<10}{'filter':<44}{'matches':>9}{'median ms':>11}{'max ms':>9}")
        for label, _, what, matched, samples in order_results:
            print(
                f"{label:<10}{what:<44}{matched:>9,}{statistics.median(samples):>11.1f}"
                f"{max(samples):>9.1f}"
            )
    for label, (count_plan, page_plan) in explains.items():
        print(f"\nEXPLAIN ANALYZE, {label}, total count:\n{count_plan}")
        print(f"\nEXPLAIN ANALYZE, {label}, first page:\n{page_plan}")


if __name__ == "__main__":
    main()
