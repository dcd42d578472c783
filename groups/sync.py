"""Full sync from WeCom: staff, tags and contacts (contacts.sync), then groups and members.

Idempotent like contacts.sync: a second run against an unchanged WeCom changes nothing.
"""

import logging

from django.utils import timezone

from contacts import sync as contacts_sync
from groups import services
from groups.models import Group
from wecom import gateway

logger = logging.getLogger(__name__)


def sync_groups() -> dict:
    now = timezone.now()
    seen, changed = set(), 0
    for chat_id in gateway.group_ids():
        info = gateway.group_get(chat_id)
        _, changes = services.group_upsert(
            info, key=f"sync:{chat_id}:{now.timestamp():.0f}", occurred_at=now
        )
        seen.add(chat_id)
        changed += bool(changes)
    dismissed = 0
    for group in Group.objects.filter(dismissed_at__isnull=True).exclude(chat_id__in=seen):
        services.group_dismiss(
            chat_id=group.chat_id, occurred_at=now, key=f"sync-dismissed:{group.chat_id}"
        )
        dismissed += 1
    return {"groups": len(seen), "groups_changed": changed, "groups_dismissed": dismissed}


def full_sync(*, progress=None) -> dict:
    report = contacts_sync.sync_staff_and_tags()
    report.update(contacts_sync.sync_contacts(progress=progress))
    report.update(sync_groups())
    logger.info("wecom full sync: %s", report)
    return report
