"""`manage.py wecom_sync`: pull staff, tags, contacts and groups from WeCom (idempotent)."""

from django.core.management.base import BaseCommand

from groups.sync import full_sync


class Command(BaseCommand):
    help = "Full sync from WeCom: staff, corp tags, contacts with follow info, groups with members."

    def handle(self, *args, **options):
        report = full_sync(progress=lambda n: self.stdout.write(f"  {n} follow relations…"))
        for name, value in report.items():
            self.stdout.write(f"{name}: {value}")
