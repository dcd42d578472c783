"""Celery tasks of analytics: keeping the daily rollups up to date. Thin; see analytics.rollups."""

from datetime import date

from celery import shared_task

from analytics import dashboard, group_snapshot, rollups
from analytics.metrics import Period
from scrm.jobs import LONG_JOB_LIMITS, job_run


# Safe to run twice or side by side: each day is rewritten whole under a per-day lock.
@shared_task(ignore_result=True)
def rollups_refresh() -> int:
    """Every 5 minutes (settings.CELERY_BEAT_SCHEDULE): recompute the days new events touched,
    then keep the group comparison's stored figures in step with them."""
    days = rollups.rollup_recent()
    group_snapshot.snapshot_keep(dashboard.default_period())
    return len(days)


@shared_task(acks_late=True, ignore_result=True, **LONG_JOB_LIMITS)
def rollups_rebuild_run(job_id: int) -> str:
    """A manager's rebuild of the rollups (analytics.rollups.rollup_rebuild_start); job_run's
    claim makes a duplicated message run it once."""
    return job_run(job_id, lambda job, progress: rollups.rollup_rebuild_job(job, progress=progress))


@shared_task(ignore_result=True)
def group_figures_store(first: str, last: str) -> bool:
    """Store every group's figures over a range an operator sorted the comparison by
    (analytics.group_snapshot.snapshot_request)."""
    period = Period(date.fromisoformat(first), date.fromisoformat(last))
    return group_snapshot.snapshot_take(period) is not None
