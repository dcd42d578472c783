"""Celery tasks for contacts: thin, idempotent, taking ids."""

import logging
import time

from celery import shared_task

from contacts import services
from contacts.models import Follow
from wecom import gateway
from wecom.errors import WeComAlreadyDone, WeComError
from wecom.types import Content

logger = logging.getLogger(__name__)
WELCOME_WINDOW = 20  # seconds WeCom accepts a welcome message after the add


@shared_task(bind=True, acks_late=True, max_retries=3)
def send_welcome_message(self, *, follow_id: int, welcome_code: str, added_at: float) -> str:
    follow = Follow.objects.select_related("channel").filter(pk=follow_id).first()
    if follow is None or not follow.channel or not follow.channel.welcome_message:
        return "no welcome message"
    if time.time() - added_at > WELCOME_WINDOW:
        logger.warning("welcome for follow %s arrived after WeCom's 20 s window", follow_id)
        return "too late"
    contact = follow.contact
    if not contact.name:
        # The add callback carries no name; one quick fetch makes "{name}" personal. Best
        # effort: the welcome goes out without it rather than miss WeCom's window.
        try:
            for info in gateway.contact_get(contact.external_userid):
                contact, _ = services.contact_upsert(info)
        except WeComError as exc:
            logger.info("no profile for the welcome of follow %s: %s", follow_id, exc)
    text = follow.channel.welcome_message.replace("{name}", contact.name or "")
    try:
        gateway.welcome_message_send(welcome_code=welcome_code, content=Content(text=text))
    except WeComAlreadyDone:
        return "already sent"  # 41051: never retry
    except WeComError as exc:
        if exc.transient and time.time() - added_at < WELCOME_WINDOW - 2:
            raise self.retry(exc=exc, countdown=1) from None
        logger.warning("welcome for follow %s not sent: %s", follow_id, exc)
        return "failed"
    return "sent"


@shared_task(bind=True, acks_late=True, max_retries=5)
def refresh_contact(self, external_userid: str) -> None:
    """Fetch the contact's profile and follow relations after an add or edit."""
    try:
        infos = gateway.contact_get(external_userid)
    except WeComError as exc:
        if exc.transient:
            raise self.retry(exc=exc, countdown=getattr(exc, "retry_after", 10)) from None
        raise
    for info in infos:
        services.contact_upsert(info)


@shared_task(bind=True, acks_late=True, max_retries=5)
def sync_corp_tags(self) -> int:
    try:
        groups = gateway.corp_tags()
    except WeComError as exc:
        if exc.transient:
            raise self.retry(exc=exc, countdown=getattr(exc, "retry_after", 10)) from None
        raise
    return services.tags_sync_from_wecom(groups)


from contacts.io_tasks import *  # noqa: E402, F401, F403
from contacts.loyalty_tasks import *  # noqa: E402, F401, F403
