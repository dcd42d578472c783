"""Celery tasks for groups: thin, idempotent."""

from celery import shared_task

from groups.handover import handover_poll
from groups.models import Handover
from groups.sync import full_sync
from wecom.errors import WeComError


@shared_task(bind=True, acks_late=True, max_retries=3)
def wecom_full_sync(self) -> dict:
    try:
        return full_sync()
    except WeComError as exc:
        if exc.transient:  # a rerun resumes: the sync is idempotent
            raise self.retry(exc=exc, countdown=max(getattr(exc, "retry_after", 60), 60)) from None
        raise


@shared_task(bind=True, acks_late=True, max_retries=5, ignore_result=True)
def poll_handover(self, handover_id: int) -> None:
    """Ask WeCom how a handover's customer transfers went; safe to run any number of times."""
    handover = (
        Handover.objects.select_related("handover_staff", "takeover_staff")
        .filter(pk=handover_id, status=Handover.Status.PENDING)
        .first()
    )
    if handover is None:
        return  # gone, or finished by an earlier run
    try:
        handover_poll(handover=handover)
    except WeComError as exc:
        if exc.transient:
            raise self.retry(exc=exc, countdown=max(getattr(exc, "retry_after", 60), 60)) from None
        raise


@shared_task(ignore_result=True)
def poll_pending_handovers() -> int:
    """Beat: poll every handover still waiting for WeCom (WeCom finishes after about 24 h)."""
    pending = list(
        Handover.objects.filter(status=Handover.Status.PENDING).values_list("pk", flat=True)
    )
    for handover_id in pending:
        poll_handover.delay(handover_id)
    return len(pending)
