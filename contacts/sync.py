"""Full sync of staff, corp tags, contacts and follow relations from WeCom.

Idempotent: against an unchanged WeCom a second run writes nothing and records no event, so
an interrupted run is resumed by running it again.
"""

import logging
from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from contacts import services
from contacts.models import Contact, Follow, Staff
from wecom import gateway

logger = logging.getLogger(__name__)


def sync_staff_and_tags() -> dict:
    return {
        "staff": services.staff_sync(gateway.staff_list()),
        "tags": services.tags_sync_from_wecom(gateway.corp_tags()),
    }


def sync_contacts(*, progress=None) -> dict:
    """Every follow relation of every active staff member, and the contacts' WeCom tags."""
    now = timezone.now()
    staff_by_userid = {s.userid: s for s in Staff.objects.filter(status=Staff.Status.ACTIVE)}
    seen_follows: set[tuple[int, int]] = set()
    wecom_tags: dict[int, set[str]] = defaultdict(set)
    added = seen = 0
    for info in gateway.contacts_by_staff(sorted(staff_by_userid)):
        staff = staff_by_userid[info.follow.userid]
        with transaction.atomic():
            follow, created = services.follow_sync(info, staff=staff)
        seen_follows.add((follow.contact_id, staff.pk))
        wecom_tags[follow.contact_id].update(info.follow.tag_ids)
        added += created
        seen += 1
        if progress and seen % 1000 == 0:
            progress(seen)

    tag_changes = 0
    for contact in Contact.objects.filter(pk__in=wecom_tags):
        with transaction.atomic():
            tag_changes += services.contact_tags_set_from_wecom(
                contact,
                wecom_tags[contact.pk],
                occurred_at=now,
                key=f"sync:{now.timestamp():.0f}:{contact.pk}",
            )

    # A relation we hold as active that WeCom no longer lists ended while we missed the
    # callback: close it, saying so.
    ended = 0
    active = Follow.objects.filter(
        staff__in=staff_by_userid.values(),
        deleted_by_staff_at__isnull=True,
        deleted_by_contact_at__isnull=True,
    ).select_related("staff", "contact")
    for follow in active:
        if (follow.contact_id, follow.staff_id) not in seen_follows:
            services.follow_ended(
                userid=follow.staff.userid,
                external_userid=follow.contact.external_userid,
                occurred_at=now,
                by_contact=False,
                key=f"sync-ended:{follow.pk}:{now.timestamp():.0f}",
                reason="missing_in_sync",
            )
            ended += 1
    return {
        "follows": seen,
        "follows_added": added,
        "follows_ended": ended,
        "tag_changes": tag_changes,
    }
