"""Background jobs (scrm.models.Job): start one, claim it, report progress, finish or fail."""

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext as _t

from scrm.models import Job

logger = logging.getLogger(__name__)

# What a long task calls every N rows: progress(done, total=None, phase=None).
Progress = Callable[..., None]


def no_progress(done: int, total: int | None = None, *, phase: str | None = None) -> None:
    """The progress of work no one follows."""


# Time limits of a task that runs a long job (the global ones are minutes).
LONG_JOB_LIMITS = {"soft_time_limit": 3_600, "time_limit": 3_660}
# A run-once-at-a-time job still queued or running this long after it was started has lost its
# worker (a restart, a lost message): the hard time limit would have ended it. It no longer
# blocks a new one.
ABANDONED_AFTER = timedelta(hours=2)
# pg_advisory_xact_lock(JOB_START_LOCK, hashtext(kind)): two clicks never start two of a kind.
JOB_START_LOCK = 0x4A4F4253  # "JOBS"


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
        # total 0: not known yet (e.g. how many customers WeCom will list); done still counts.
        shown = min(done, self.total) if self.total else done
        params = (shown, self.total, json.dumps({"phase": phase} if phase else {}))
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


def job_start_once(*, kind: str, user, task, params: dict | None = None) -> tuple[Job, bool]:
    """Start a job of a kind that must not run twice at once (a full sync, a rebuild).

    While one of the kind is queued or running, that one is returned with False and nothing
    new starts; otherwise a new job is queued for `task` and returned with True.
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [JOB_START_LOCK, kind])
        unfinished = Job.objects.filter(
            kind=kind, status__in=(Job.Status.QUEUED, Job.Status.RUNNING)
        ).order_by("created_at")
        for abandoned in unfinished.filter(created_at__lt=timezone.now() - ABANDONED_AFTER):
            job_fail(
                abandoned.pk,
                error=_t("The worker running this job stopped before it finished; start it again."),
            )
        current = unfinished.first()
        if current is not None:
            return current, False
        job = job_create(
            kind=kind,
            user=user,
            params={"language": translation.get_language(), **(params or {})},
        )
        job_queue(job, task)
        return job, True


def job_run(
    job_id: int,
    work: Callable[[Job, Progress], dict],
    *,
    explain: Callable[[Exception], str | None] = lambda error: None,
) -> str:
    """Claim the job, run `work(job, progress)` in the language it was started in, and record
    how it ended: DONE with what `work` returned, or FAILED with one line the user reads.

    `explain(error)` gives that line for an error the work may meet (WeCom unreachable);
    anything else is logged with its traceback and shown as an unexpected error.
    """
    job = job_claim(job_id)
    if job is None:
        return "not queued"  # gone, or another delivery of this message has it
    with translation.override(job.params.get("language")), job_progress(job.pk) as progress:
        try:
            result = work(job, progress)
        except SoftTimeLimitExceeded:
            job_fail(job.pk, error=_t("The job took too long and was stopped."))
            return "timed out"
        except Exception as error:
            message = explain(error)
            if message is None:
                logger.exception("job %s (%s) failed", job.pk, job.kind)
                message = _t("An unexpected error stopped the job.")
            else:
                logger.warning("job %s (%s) failed: %s", job.pk, job.kind, error)
            job_fail(job.pk, error=message)
            return "failed"
    job_finish(job.pk, result=result)
    return "done"


def jobs_visible_to(user) -> QuerySet[Job]:
    """A user's own jobs; managers see everyone's."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Job.objects.none()
    if user.is_manager:
        return Job.objects.all()
    return Job.objects.filter(created_by=user)


def job_is_finished(job: Job) -> bool:
    return job.status in (Job.Status.DONE, Job.Status.FAILED)
