"""Benchmark: bulk-load rate of the event log (record_many, COPY + ON CONFLICT) in events/s.

    make bench-events                      # 1,000,000 events
    make bench-events BENCH_ARGS="--events 200000"

Runs in its own database (scrm_bench, created and dropped here) on the server the run was
started with, so demo data is untouched. Loads the events once (all new), then again (all
seen: the idempotency check alone), and reports both rates.
"""

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
BENCH_DB = "scrm_bench"


def bench_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def events(count: int, seed: int):
    from analytics.events import EventRow
    from analytics.models import EventType

    rng = random.Random(seed)
    start = datetime(2026, 8, 1, tzinfo=UTC)
    step = timedelta(days=90) / count
    kinds = [EventType.MESSAGE] * 90 + [EventType.GROUP_JOINED] * 5 + [EventType.ORDER_PAID] * 5
    for i in range(count):
        kind = rng.choice(kinds)
        yield EventRow(
            kind,
            start + step * i,
            f"bench:{seed}:{i}",
            contact_id=rng.randrange(1, 100_001),
            group_id=rng.randrange(1, 401),
            amount=rng.randrange(100, 50_000) if kind == EventType.ORDER_PAID else 1,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=50_000)
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

    from analytics.events import record_many
    from analytics.models import Event

    try:
        call_command("migrate", verbosity=0)
        results = []
        for label in ("new events", "replayed (all seen)"):
            started = time.perf_counter()
            added = record_many(events(args.events, seed=1), batch_size=args.batch_size)
            elapsed = time.perf_counter() - started
            results.append((label, added, elapsed))
        stored = Event.objects.count()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('analytics_event'))")
            size = cursor.fetchone()[0]
            cursor.execute("SELECT pg_size_pretty(pg_relation_size('event_occurred_brin'))")
            brin = cursor.fetchone()[0]
    finally:
        connection.close()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')

    print(f"\nEvent log bulk load, {args.events:,} events, batch {args.batch_size:,}")
    print(f"{'pass':<22}{'added':>12}{'seconds':>10}{'events/s':>12}")
    for label, added, elapsed in results:
        print(f"{label:<22}{added:>12,}{elapsed:>10.1f}{args.events / elapsed:>12,.0f}")
    print(f"rows stored: {stored:,}; table with indexes: {size}; BRIN index: {brin}")
    assert stored == args.events, "the replay must add nothing"


if __name__ == "__main__":
    main()
