"""Celery tasks for groups: thin, idempotent."""

from celery import shared_task

from groups.handover import handover_poll
from groups.models import Handover
from groups.sync import full_sync, full_sync_failure
from scrm.jobs import LONG_JOB_LIMITS, job_run
from wecom.errors import WeComError


@shared_task(bind=True, acks_late=True, max_retries=3, **LONG_JOB_LIMITS)
def wecom_full_sync(self, job_id: int | None = None) -> dict | str:
    """A full sync from WeCom.

    Started by a manager (groups.sync.full_sync_start) it runs as that Job: its page shows the
    progress, and a WeCom error ends it FAILED with one line, to be started again. Without a
    job (beat, a script) a transient WeCom error is retried later instead.
    """
    if job_id is not None:
        return job_run(
            job_id, lambda job, progress: full_sync(progress=progress), explain=full_sync_failure
        )
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
