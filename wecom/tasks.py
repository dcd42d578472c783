"""Celery tasks of the WeCom boundary: thin, idempotent, taking ids."""

import logging

from celery import shared_task

from wecom import services

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 5


@shared_task(bind=True, acks_late=True, max_retries=MAX_ATTEMPTS)
def apply_callback(self, callback_id: int) -> None:
    try:
        services.callback_apply(callback_id)
    except Exception as exc:
        if self.request.retries >= MAX_ATTEMPTS:
            services.callback_give_up(callback_id, error=f"{type(exc).__name__}: {exc}")
            return
        # Transient or not, a handler failure is retried a few times with backoff: most are
        # a race with another callback about the same contact or group.
        raise self.retry(exc=exc, countdown=min(2**self.request.retries * 5, 300)) from None


@shared_task
def requeue_pending_callbacks() -> int:
    """Every minute (settings.CELERY_BEAT_SCHEDULE): re-queue callbacks nobody applied."""
    ids = services.pending_callback_ids()
    for callback_id in ids:
        apply_callback.delay(callback_id)
    return len(ids)
