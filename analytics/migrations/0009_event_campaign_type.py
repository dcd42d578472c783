"""An index on the event log's campaign events (a campaign's funnel).

The index is built concurrently, so writes to the event log go on during the build.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("analytics", "0008_group_speech"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="event",
            index=models.Index(
                condition=models.Q(("campaign__isnull", False)),
                fields=["campaign", "type"],
                include=("contact",),
                name="event_campaign_type",
            ),
        ),
    ]
