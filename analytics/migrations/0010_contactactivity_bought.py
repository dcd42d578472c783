"""Per customer, the Shanghai days they bought on (ContactActivity.bought), filled from the
event log's ORDER_PAID events as analytics.activity's rebuild would fill it."""

import analytics.models
from django.db import migrations

# ORDER_PAID is 30; written out so the migration does not move with analytics.models.
FILL_BOUGHT = """
INSERT INTO analytics_contactactivity AS a (contact_id, member, lefts, blips, spoke, bought)
SELECT d.contact_id, '{}', '{}', '{}', '{}', range_agg(daterange(d.day, d.day + 1))
FROM (
    SELECT DISTINCT contact_id, (occurred_at AT TIME ZONE 'Asia/Shanghai')::date AS day
    FROM analytics_event
    WHERE type = 30 AND contact_id IS NOT NULL
) AS d
GROUP BY d.contact_id
ON CONFLICT (contact_id) DO UPDATE SET bought = EXCLUDED.bought
"""


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0009_event_campaign_type"),
    ]

    operations = [
        migrations.AddField(
            model_name="contactactivity",
            name="bought",
            field=analytics.models.MultiRangeField(
                default="{}", range_type="datemultirange", verbose_name="bought on"
            ),
            preserve_default=False,
        ),
        migrations.RunSQL(FILL_BOUGHT, migrations.RunSQL.noop),
    ]
