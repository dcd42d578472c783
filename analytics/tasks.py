"""Celery tasks of analytics: keeping the daily rollups up to date. Thin; see analytics.rollups."""

from celery import shared_task

from analytics import rollups


# Safe to run twice or side by side: each day is rewritten whole under a per-day lock.
@shared_task(ignore_result=True)
def rollups_refresh() -> int:
    """Every 5 minutes (settings.CELERY_BEAT_SCHEDULE): recompute the days new events touched."""
    return len(rollups.rollup_recent())
