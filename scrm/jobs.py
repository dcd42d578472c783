"""Background jobs (scrm.models.Job): start one, claim it, report progress, finish or fail."""

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import QuerySet
from django.utils import timezone

from scrm.models import Job

logger = logging.getLogger(__name__)

# What a long task calls every N rows: progress(done, total=None, phase=None).
Progress = Callable[..., None]


def job_create(*, kind: str, user, params: dict | None = None, total: int = 0) -> Job:
    return Job.objects.create(
        kind=kind, created_by=user if user and user.pk else None, params=params or {}, total=total
    )


def job_queue(job: Job, task, **kwargs) -> None:
    """Send the job's task once the transaction that created the job commits."""
    transaction.on_commit(lambda: task.delay(job_id=job.pk, **kwargs))


def job_claim(job_id: int) -> Job | None:
    """Move a queued job to running and return it; None if it is gone or already taken.

    A conditional UPDATE decides, so a duplicated task message runs the work only once.
    """
    claimed = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.RUNNING, done=0
    )
    if not claimed:
        return None
    return Job.objects.select_related("created_by").get(pk=job_id)


_PROGRESS_SQL = f"UPDATE {Job._meta.db_table} SET done = %s, total = %s, result = result || %s::jsonb WHERE id = %s"  # noqa: E501


class ProgressReporter:
    """Writes a running job's done/total so the page can show them while the work goes on.

    Inside a transaction (an import writes all rows in one) an update on the same connection
    would stay invisible until the commit, so it goes through a second connection of its own.
    """

    def __init__(self, job_id: int):
        self.job_id = job_id
        self.total = 0
        self._side = None

    def __call__(self, done: int, total: int | None = None, *, phase: str | None = None) -> None:
        if total is not None:
            self.total = total
        params = (min(done, self.total), self.total, json.dumps({"phase": phase} if phase else {}))
        if connection.in_atomic_block:
            if self._side is None:
                self._side = connections.create_connection(DEFAULT_DB_ALIAS)
            with self._side.cursor() as cursor:
                cursor.execute(_PROGRESS_SQL, (*params, self.job_id))
        else:
            with connection.cursor() as cursor:
                cursor.execute(_PROGRESS_SQL, (*params, self.job_id))

    def close(self) -> None:
        if self._side is not None:
            self._side.close()
            self._side = None


@contextmanager
def job_progress(job_id: int) -> Iterator[ProgressReporter]:
    reporter = ProgressReporter(job_id)
    try:
        yield reporter
    finally:
        reporter.close()


def job_finish(job_id: int, *, result: dict) -> None:
    """The job is done; `result` says what it produced (counts, a download path)."""
    job = Job.objects.get(pk=job_id)
    job.status = Job.Status.DONE
    job.done = job.total = max(job.total, job.done, 1)
    job.result = {**job.result, **result, "phase": "done"}
    job.error = ""
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "done", "total", "result", "error", "finished_at"])


def job_fail(job_id: int, *, error: str, result: dict | None = None) -> None:
    """The job stopped; `error` is the one line the user reads, `result` any details."""
    job = Job.objects.get(pk=job_id)
    job.status = Job.Status.FAILED
    job.result = {**job.result, **(result or {}), "phase": "failed"}
    job.error = error
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "result", "error", "finished_at"])


def jobs_visible_to(user) -> QuerySet[Job]:
    """A user's own jobs; managers see everyone's."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Job.objects.none()
    if user.is_manager:
        return Job.objects.all()
    return Job.objects.filter(created_by=user)


def job_is_finished(job: Job) -> bool:
    return job.status in (Job.Status.DONE, Job.Status.FAILED)
