"""Per-customer activity (analytics.activity) and an index on the event log's rare kinds.

The index is built concurrently, so writes to the event log go on during the build.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models

import analytics.models


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("analytics", "0006_daily_rollups"),
    ]

    operations = [
        migrations.CreateModel(
            name="ContactActivity",
            fields=[
                (
                    "contact_id",
                    models.BigIntegerField(
                        primary_key=True, serialize=False, verbose_name="contact"
                    ),
                ),
                (
                    "member",
                    analytics.models.MultiRangeField(
                        range_type="tstzmultirange", verbose_name="member during"
                    ),
                ),
                (
                    "lefts",
                    analytics.models.MultiRangeField(
                        range_type="tstzmultirange", verbose_name="left at"
                    ),
                ),
                (
                    "blips",
                    analytics.models.MultiRangeField(
                        range_type="tstzmultirange", verbose_name="momentary stays"
                    ),
                ),
                (
                    "spoke",
                    analytics.models.MultiRangeField(
                        range_type="datemultirange", verbose_name="spoke on"
                    ),
                ),
            ],
            options={
                "verbose_name": "contact activity",
                "verbose_name_plural": "contact activity",
            },
        ),
        AddIndexConcurrently(
            model_name="event",
            index=models.Index(
                condition=models.Q(("type__in", [3, 5, 6, 30, 31, 70])),
                fields=["type", "occurred_at"],
                include=("id", "contact", "amount", "group", "channel", "campaign"),
                name="event_rare_time",
            ),
        ),
    ]
