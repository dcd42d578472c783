"""`manage.py demo_data`: load a realistic, deterministic demo history (see analytics.demo)."""

import time
from datetime import date, timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from analytics.dashboard import default_period
from analytics.demo import (
    ALREADY_LOADED,
    OTHER_DEMO_LOADED,
    demo_config,
    demo_data_load,
    demo_data_summary,
)
from analytics.group_snapshot import snapshot_take
from analytics.rollups import rollup_rebuild, shanghai_today
from sop.demo import sop_demo_load


class Command(BaseCommand):
    help = (
        "Load a deterministic private-domain history: staff, channel codes, contacts, groups, "
        "memberships, orders, points and the event log. Running it again adds nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
        parser.add_argument(
            "--scale",
            action="store_true",
            help="load-test size: 100,000 contacts, 400 groups, ~4.3M events (with --contacts "
            "230000: ~10M)",
        )
        parser.add_argument(
            "--contacts",
            type=int,
            help="number of contacts; groups and staff scale with it (default 2,000, or 100,000 "
            "with --scale)",
        )
        parser.add_argument("--days", type=int, default=90, help="days of history (default 90)")
        parser.add_argument(
            "--end-date",
            type=date.fromisoformat,
            help="YYYY-MM-DD; the history ends at 00:00 Shanghai time of this day, so it covers "
            "the --days full days before it (default: today)",
        )

    def handle(self, *args, **options):
        try:
            config = demo_config(
                seed=options["seed"],
                scale=options["scale"],
                contacts=options["contacts"],
                days=options["days"],
                end_date=options["end_date"],
            )
        except ValueError as error:
            raise CommandError(str(error)) from error
        first_day = config.end_date - timedelta(days=config.days)
        self.stdout.write(
            f"Demo data, seed {config.seed}: {config.contacts:,} contacts, {config.groups} groups, "
            f"{config.staff} staff, {first_day} up to (not including) {config.end_date}"
        )
        started = time.monotonic()
        result = demo_data_load(config, progress=self.stdout.write)
        if result.outcome == OTHER_DEMO_LOADED:
            self.stdout.write(
                self.style.WARNING(
                    "Demo data generated with other arguments (seed, size, days or end date) is "
                    "already loaded; left as it is. Use a fresh database to load this one."
                )
            )
        elif result.outcome == ALREADY_LOADED:
            self.stdout.write("demo data already loaded")
        else:
            self.stdout.write(
                f"Added {result.events_added:,} events; done in {time.monotonic() - started:.1f}s"
            )
            # The dashboard reads rollups: have them before the first 5-minute refresh.
            started = time.monotonic()
            days = rollup_rebuild(first_day, max(config.end_date, shanghai_today()))
            snapshot_take(default_period())
            self.stdout.write(
                f"Rolled up {len(days)} days and every customer's activity in "
                f"{time.monotonic() - started:.1f}s"
            )
            # After a bulk load, as after any: fresh planner statistics, and the visibility
            # map set so covering indexes are read without visiting the table. Autovacuum
            # gets there some minutes later, and does when a caller's transaction (VACUUM
            # cannot run inside one) holds the load.
            if not connection.in_atomic_block:
                started = time.monotonic()
                with connection.cursor() as cursor:
                    cursor.execute("VACUUM (ANALYZE)")
                self.stdout.write(f"Vacuumed and analysed in {time.monotonic() - started:.1f}s")
        if sop_demo_load():
            self.stdout.write("Added the demo SOP plans and content library")
        self._print_summary(demo_data_summary())

    def _print_summary(self, summary: dict) -> None:
        write = self.stdout.write
        write(self.style.SUCCESS("Summary"))
        write(f"  staff          {summary['staff']:>12,}")
        write(f"  contacts       {summary['contacts']:>12,}")
        write(f"  groups         {summary['groups']:>12,}")
        write(
            f"  memberships    {summary['memberships_open']:>12,} open, "
            f"{summary['memberships_closed']:,} closed"
        )
        revenue = Decimal(summary["revenue_fen"]) / 100
        write(f"  orders         {summary['orders']:>12,}, revenue ¥{revenue:,.2f}")
        write(f"  events         {summary['events_total']:>12,}")
        for label, count in summary["events"].items():
            write(f"    {label:<28}{count:>12,}")
