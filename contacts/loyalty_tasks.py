"""Celery tasks that keep tiers, lifecycle stages and rule tags following behaviour.

Imported by contacts/tasks.py (Celery discovers only `tasks` modules). Periodic entries for
settings.CELERY_BEAT_SCHEDULE are in BEAT_SCHEDULE below.
"""

import logging

from celery import shared_task
from celery.schedules import crontab
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from contacts.lifecycle import stage_update, stages_refresh
from contacts.models import Contact, TagRule
from contacts.tag_rules import tag_rule_apply, tag_rules_apply_to_contact
from contacts.tags import tag_push_to_wecom as push_tag
from contacts.tiers import tier_update, tiers_refresh
from wecom.errors import WeComError

__all__ = [
    "contact_refresh",
    "contact_refresh_soon",
    "stages_refresh_all",
    "tag_push_to_wecom",
    "tag_rule_evaluate",
    "tag_rules_evaluate",
    "tiers_refresh_all",
]

logger = logging.getLogger(__name__)

# A chatty customer's messages arrive seconds apart; one refresh covers a burst of them.
REFRESH_DEBOUNCE_SECONDS = 10
_PENDING = "loyalty:contact-refresh:{}"

BEAT_SCHEDULE = {
    # Hourly at :05 (UTC, like all of beat): silence turns customers dormant and churned
    # without any new event, so stages are re-read from the event log on a clock.
    "contacts-stages-refresh": {
        "task": "contacts.loyalty_tasks.stages_refresh_all",
        "schedule": crontab(minute=5),
    },
    # Hourly at :20: every active tag rule over every contact ("动态调整").
    "contacts-tag-rules-evaluate": {
        "task": "contacts.loyalty_tasks.tag_rules_evaluate",
        "schedule": crontab(minute=20),
    },
    # Daily at 19:35 UTC (03:35 Shanghai): tiers caught up with orders whose refresh was
    # missed; on other days only tier edits trigger it.
    "contacts-tiers-refresh": {
        "task": "contacts.loyalty_tasks.tiers_refresh_all",
        "schedule": crontab(minute=35, hour=19),
    },
}


def contact_refresh_soon(contact_id: int, *, delay_seconds: int = REFRESH_DEBOUNCE_SECONDS) -> None:
    """Call after recording an order, refund or message of this contact: once the writing
    transaction commits, their tier, stage and rule tags are refreshed (one refresh per
    burst of events)."""

    def enqueue() -> None:
        if cache.add(_PENDING.format(contact_id), 1, timeout=delay_seconds + 60):
            contact_refresh.apply_async(args=[contact_id], countdown=delay_seconds)

    transaction.on_commit(enqueue)


@shared_task(ignore_result=True, acks_late=True)
def contact_refresh(contact_id: int) -> str:
    """Tier, stage and rule tags of one contact, from their events up to now."""
    # Cleared first: events arriving from here on ask for another refresh.
    cache.delete(_PENDING.format(contact_id))
    contact = Contact.objects.filter(pk=contact_id).first()
    if contact is None:
        return "gone"
    now = timezone.now()
    key = f"refresh:{contact_id}:{now.isoformat()}"
    tier_update(contact, occurred_at=now, key=key)
    stage_update(contact, now=now, key=key)
    tag_rules_apply_to_contact(contact, now=now)
    return "refreshed"


@shared_task(ignore_result=True)
def tag_rules_evaluate() -> int:
    """Fan out: one task per active rule, so each commits on its own."""
    rule_ids = list(TagRule.objects.filter(is_active=True).values_list("pk", flat=True))
    for rule_id in rule_ids:
        tag_rule_evaluate.delay(rule_id)
    return len(rule_ids)


@shared_task(ignore_result=True, acks_late=True)
def tag_rule_evaluate(rule_id: int) -> str:
    rule = TagRule.objects.filter(pk=rule_id).first()
    if rule is None:
        return "gone"
    outcome = tag_rule_apply(rule, now=timezone.now())
    logger.info(
        "tag rule %s: %d added, %d removed", rule_id, len(outcome.added), len(outcome.removed)
    )
    return f"{len(outcome.added)} added, {len(outcome.removed)} removed"


@shared_task(ignore_result=True, acks_late=True)
def stages_refresh_all() -> int:
    return stages_refresh(now=timezone.now())


@shared_task(ignore_result=True, acks_late=True)
def tiers_refresh_all() -> int:
    now = timezone.now()
    return tiers_refresh(occurred_at=now, key=f"tiers-refresh:{now.isoformat()}")


@shared_task(bind=True, ignore_result=True, acks_late=True, max_retries=8)
def tag_push_to_wecom(self, tag_id: int, contact_ids: list[int]) -> str:
    """Rule tags follow behaviour here first; this makes WeCom's corp tags agree."""
    try:
        refused = push_tag(tag_id, contact_ids)
    except WeComError as exc:  # transient: the whole batch again later (idempotent)
        raise self.retry(exc=exc, countdown=min(2**self.request.retries * 10, 600)) from None
    for contact_id, reason in refused.items():
        logger.warning("WeCom refused tag %s for contact %s: %s", tag_id, contact_id, reason)
    return f"{len(contact_ids) - len(refused)} pushed, {len(refused)} refused"
