"""Full sync from WeCom: staff, tags and contacts (contacts.sync), then groups and members.

Idempotent like contacts.sync: a second run against an unchanged WeCom changes nothing, so a
sync that stopped half way is finished by running it again.
"""

import logging

from django.core.exceptions import PermissionDenied
from django.utils import timezone
from django.utils.translation import gettext as _t

from contacts import sync as contacts_sync
from groups import services
from groups.models import Group
from scrm.jobs import Progress, job_start_once, no_progress
from scrm.models import Job
from wecom import gateway
from wecom.errors import WeComAuthError, WeComError, WeComUnavailable

logger = logging.getLogger(__name__)

FULL_SYNC_JOB = "wecom_sync"  # the Job kind


def sync_groups(*, progress: Progress = no_progress) -> dict:
    now = timezone.now()
    chat_ids = list(gateway.group_ids())
    progress(0, len(chat_ids), phase="wecom_groups")
    seen, changed = set(), 0
    for chat_id in chat_ids:
        info = gateway.group_get(chat_id)
        _, changes = services.group_upsert(
            info, key=f"sync:{chat_id}:{now.timestamp():.0f}", occurred_at=now
        )
        seen.add(chat_id)
        changed += bool(changes)
        progress(len(seen), phase="wecom_groups")
    dismissed = 0
    for group in Group.objects.filter(dismissed_at__isnull=True).exclude(chat_id__in=seen):
        services.group_dismiss(
            chat_id=group.chat_id, occurred_at=now, key=f"sync-dismissed:{group.chat_id}"
        )
        dismissed += 1
    return {"groups": len(seen), "groups_changed": changed, "groups_dismissed": dismissed}


def full_sync(*, progress: Progress = no_progress) -> dict:
    """Everything WeCom holds, phase by phase; `progress(done, total, phase=...)` hears how far
    each phase is (total 0 while WeCom has not said how many customers there are)."""
    progress(0, 0, phase="wecom_staff")
    report = contacts_sync.sync_staff_and_tags()
    progress(0, 0, phase="wecom_contacts")
    report.update(
        contacts_sync.sync_contacts(progress=lambda seen: progress(seen, phase="wecom_contacts"))
    )
    report.update(sync_groups(progress=progress))
    logger.info("wecom full sync: %s", report)
    return report


def full_sync_start(*, user) -> tuple[Job, bool]:
    """Queue a full sync as a Job the pages follow; managers only.

    While a full sync is queued or running, that one is returned (with False) instead of a
    second one started: two at once would read and write the same rows twice over.
    """
    if not (user.is_authenticated and user.is_manager):
        raise PermissionDenied(_t("Only managers may start a full sync from WeCom."))
    from groups.tasks import wecom_full_sync  # the tasks module imports this one

    return job_start_once(kind=FULL_SYNC_JOB, user=user, task=wecom_full_sync)


def full_sync_failure(error: Exception) -> str | None:
    """The one line a stopped sync's page shows; None for an error no one expected."""
    if not isinstance(error, WeComError):
        return None
    kept = _t("What was synced so far is kept; start the sync again to finish.")
    if isinstance(error, WeComUnavailable):
        problem = _t("WeCom could not be reached.")
    elif error.transient:
        problem = _t("WeCom is busy or over its call limit.")
    elif isinstance(error, WeComAuthError):
        problem = _t("WeCom refused our corp ID or secret; check the WeCom settings.")
    else:
        problem = _t("WeCom refused a request: %(error)s.") % {"error": error}
    return f"{problem} {kept}"
