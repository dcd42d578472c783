"""Celery tasks of the campaign engine. Thin: the rules live in the services and types."""

import logging
from importlib import import_module

from celery import shared_task

from campaigns import services
from campaigns.types import TYPE_MODULES

logger = logging.getLogger(__name__)


@shared_task
def tick() -> dict:
    """Every minute: campaigns start and end by the clock, and each type module's timed
    work (`timed_work()`: invites whose window passed, group-buys past their deadline,
    coupons expiring) runs. Every step is idempotent."""
    started, ended = services.campaigns_tick()
    done = {"started": started, "ended": ended}
    for name in sorted(set(TYPE_MODULES.values())):
        timed = getattr(import_module(name), "timed_work", None)
        if timed is None:
            continue
        try:
            done[name] = timed()
        except Exception:  # one type's failure must not hold up the others' clocks
            logger.exception("campaigns: %s timed work failed", name)
            done[name] = "failed"
    return done
