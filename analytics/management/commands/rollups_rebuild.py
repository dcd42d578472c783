"""`manage.py rollups_rebuild`: recompute the daily rollups of a range of days from the raw log."""

import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from analytics.dashboard import default_period
from analytics.group_snapshot import snapshot_take
from analytics.rollups import REBUILD_DAYS, rebuild_period, rollup_rebuild


def _day(value: str | None, option: str) -> date:
    if value is None:
        raise CommandError(f"{option}: required with the other of --first/--last (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option}: expected a date as YYYY-MM-DD, got {value!r}") from None


class Command(BaseCommand):
    help = (
        "Recompute the daily rollups (every slice) of the last N Shanghai days, or of the days "
        "from --first to --last. Gives the same rows as the incremental refresh."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, help=f"the last N days up to today (default {REBUILD_DAYS})"
        )
        parser.add_argument("--first", help="first day, YYYY-MM-DD")
        parser.add_argument("--last", help="last day, YYYY-MM-DD")

    def handle(self, *args, days=None, first=None, last=None, **options):
        if first is not None or last is not None:
            if days is not None:
                raise CommandError("--days: give either --days or --first/--last, not both")
            first_day, last_day = _day(first, "--first"), _day(last, "--last")
            if last_day < first_day:
                raise CommandError("--last: must not be before --first")
        else:
            days = REBUILD_DAYS if days is None else days
            if days < 1:
                raise CommandError(f"--days: must be at least 1, got {days}")
            period = rebuild_period(days)
            first_day, last_day = period.first, period.last

        started = time.monotonic()
        rebuilt = rollup_rebuild(
            first_day,
            last_day,
            progress=lambda done, total, phase=None: self.stdout.write(
                f"  {done}/{total}", ending="\r"
            ),
        )
        self.stdout.write(
            f"Rebuilt {len(rebuilt)} day(s) from {first_day} to {last_day} "
            f"in {time.monotonic() - started:.1f} s."
        )
        # The rebuild dropped the group comparison's stored figures; without waiting for the
        # next refresh (None while it has events to roll up first).
        if snapshot_take(default_period()):
            self.stdout.write("Stored every group's figures for the default range.")
