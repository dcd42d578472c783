"""Celery tasks of the campaign engine. Thin: the rules live in the services and types."""

import logging
from importlib import import_module

from celery import shared_task
from django.db import transaction

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


ORDERS_PER_TASK = 500


@shared_task
def orders_settle(order_ids: list[int]) -> dict:
    """New paid orders after they are committed: spend-and-get gifts (campaigns.offers) and
    distribution commissions up the referral chain (campaigns.fission). Both are given once
    per order, so a retried task changes nothing."""
    from campaigns.fission import order_attributed
    from campaigns.models import Order
    from campaigns.offers import orders_paid

    orders = list(Order.objects.filter(pk__in=order_ids, status=Order.Status.PAID))
    gifts = orders_paid(orders)
    commissions = sum(len(order_attributed(order)) for order in orders)
    return {"orders": len(orders), "gifts": gifts, "commissions": commissions}


def orders_settle_after_commit(order_ids: list[int]) -> None:
    """Queue orders_settle for these orders once the transaction that wrote them commits."""

    def queue() -> None:
        for start in range(0, len(order_ids), ORDERS_PER_TASK):
            orders_settle.delay(order_ids[start : start + ORDERS_PER_TASK])

    if order_ids:
        transaction.on_commit(queue)
