"""The group/time index on events, now covering type, contact and amount; a channel/time one.

The group list's activity figures (distinct speakers and messages over the last days, per
group) then come from an index-only scan instead of a heap visit per event, and a channel
code's exposures and arrivals from the few events with a channel instead of every event of
the period. Built concurrently, and the new group index before the old one goes, so writes
to the event log and the queries that used the old index go on during the build.
"""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("analytics", "0004_event_event_contact_orders"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="event",
            index=models.Index(
                condition=models.Q(("group__isnull", False)),
                fields=["group", "occurred_at"],
                include=("type", "contact", "amount"),
                name="event_group_time_cover",
            ),
        ),
        RemoveIndexConcurrently(model_name="event", name="event_group_time"),
        AddIndexConcurrently(
            model_name="event",
            index=models.Index(
                condition=models.Q(("channel__isnull", False)),
                fields=["channel", "occurred_at"],
                include=("type", "amount"),
                name="event_channel_time",
            ),
        ),
    ]
