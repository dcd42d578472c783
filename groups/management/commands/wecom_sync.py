"""`manage.py wecom_sync`: pull staff, tags, contacts and groups from WeCom (idempotent)."""

from django.core.management.base import BaseCommand

from groups.sync import full_sync


class Command(BaseCommand):
    help = "Full sync from WeCom: staff, corp tags, contacts with follow info, groups with members."

    def handle(self, *args, **options):
        report = full_sync(progress=self._progress)
        self.stdout.write("")  # past the progress line, which each update rewrote in place
        for name, value in report.items():
            self.stdout.write(f"{name}: {value}")

    def _progress(self, done: int, total: int | None = None, *, phase: str | None = None) -> None:
        if done:  # each phase's start (0) says nothing worth a line
            self.stdout.write(f"  {phase}: {done}", ending="\r")
