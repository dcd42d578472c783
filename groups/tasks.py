"""Celery tasks for groups: thin, idempotent."""

from celery import shared_task

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
