"""Celery tasks of the SOP engine: the minute tick, sending and follow-up. Thin, taking ids."""

import logging

from celery import shared_task

from sop import planner, sending
from wecom.errors import WeComError, WeComRateLimited

logger = logging.getLogger(__name__)
SEND_BATCH = 20  # messages per send task
MAX_SEND_RETRIES = 8


@shared_task
def tick() -> dict:
    """Every minute (settings.CELERY_BEAT_SCHEDULE): plan due slots, batch due deliveries
    into mass messages, and queue them with any the broker lost."""
    result = planner.plan_due()
    queue_sends(sending.dispatch_due() + sending.requeue_stuck())
    return {"planned": result.planned, "skipped": sum(result.skipped.values())}


def queue_sends(message_ids: list[int]) -> None:
    for start in range(0, len(message_ids), SEND_BATCH):
        send_messages.delay(message_ids[start : start + SEND_BATCH])


# acks_late + reject_on_worker_lost: a worker killed mid-task leaves the task on the broker
# for another worker; message_send makes the second run harmless.
@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=MAX_SEND_RETRIES)
def send_messages(self, message_ids: list[int]) -> dict:
    outcomes = {}
    for position, message_id in enumerate(message_ids):
        try:
            outcomes[message_id] = sending.message_send(message_id)
        except WeComError as exc:
            if not exc.transient or self.request.retries >= MAX_SEND_RETRIES:
                logger.error("mass message %s not sent: %s", message_id, exc)
                outcomes[message_id] = "error"
                continue
            wait = getattr(exc, "retry_after", None) if isinstance(exc, WeComRateLimited) else None
            countdown = wait or min(2**self.request.retries * 5, 600)
            # Those not tried yet go with it; the sent ones answer "done" on the retry.
            raise self.retry(args=[message_ids[position:]], countdown=countdown) from exc
    return outcomes


@shared_task
def follow_up() -> int:
    """Every 5 minutes: confirmations, results and reminders of open mass messages."""
    ids = sending.messages_to_follow_up()
    for start in range(0, len(ids), SEND_BATCH):
        follow_up_messages.delay(ids[start : start + SEND_BATCH])
    return len(ids)


@shared_task(acks_late=True)
def follow_up_messages(message_ids: list[int]) -> dict:
    outcomes = {}
    for message_id in message_ids:
        try:
            outcomes[message_id] = sending.message_follow_up(message_id)
        except WeComError as exc:  # asked again at the next follow-up
            logger.warning("follow-up of mass message %s failed: %s", message_id, exc)
            outcomes[message_id] = "error"
    return outcomes
