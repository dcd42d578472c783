"""Celery tasks that run imports and exports as Jobs: thin, taking the job id.

Imported by contacts/tasks.py (Celery discovers only `tasks` modules). The order import and
export live in campaigns (contacts sit below campaigns), so they are imported inside the
tasks that need them, never when this module loads.
"""

import logging
import time
from collections.abc import Callable

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import translation
from django.utils.translation import gettext as _t

from contacts.exports import contacts_export_job
from contacts.imports import (
    ImportFileError,
    ImportRejected,
    contacts_import,
    error_report_write,
    media_path,
    rejection_result,
)
from contacts.tags import TagError, contacts_tag_job
from scrm.jobs import job_claim, job_fail, job_finish, job_progress
from scrm.models import Job

__all__ = [
    "contacts_export_run",
    "contacts_import_run",
    "contacts_tag_run",
    "orders_export_run",
    "orders_import_run",
]

logger = logging.getLogger(__name__)

# Above the global limits (CELERY_TASK_*_TIME_LIMIT): 100,000 rows take minutes, not seconds.
LONG_JOB = {"soft_time_limit": 3_600, "time_limit": 3_660, "ignore_result": True}
# A tagging job of 100,000 customers runs for about an hour at WeCom's rate limit: each run
# does this many seconds of it and queues the rest as a fresh run, well inside the limits.
TAG_SLICE_SECONDS = 600


def _run(job_id: int, work: Callable[[Job, Callable], dict]) -> str:
    """Claim the job, run `work(job, progress)`, and record how it ended."""
    job = job_claim(job_id)
    if job is None:
        return "not queued"  # gone, or another delivery of this message has it
    with translation.override(job.params.get("language")), job_progress(job.pk) as progress:
        try:
            if job.created_by is None:
                raise ImportFileError("no_user")
            result = work(job, progress)
        except ImportRejected as rejected:
            report = f"imports/{job.pk}-errors.csv"
            error_report_write(rejected.errors, media_path(report))
            message = _t("%(count)s problems in %(rows)s rows; nothing was imported.") % {
                "count": len(rejected.errors),
                "rows": len({e.row for e in rejected.errors}),
            }
            job_fail(job.pk, error=message, result=rejection_result(rejected, report=report))
            return "rejected"
        except ImportFileError as problem:
            job_fail(job.pk, error=problem.message, result={"file_error": problem.as_dict()})
            return "rejected"
        except SoftTimeLimitExceeded:
            job_fail(job.pk, error=_t("The job took too long and was stopped; nothing changed."))
            return "timed out"
        except Exception:
            logger.exception("job %s (%s) failed", job.pk, job.kind)
            job_fail(job.pk, error=_t("An unexpected error stopped the job; nothing changed."))
            return "failed"
    job_finish(job.pk, result=result)
    return "done"


def _import_work(service: Callable) -> Callable[[Job, Callable], dict]:
    def work(job: Job, progress) -> dict:
        outcome = service(
            path=media_path(job.params["file"]),
            name=job.params["name"],
            user=job.created_by,
            progress=progress,
        )
        return outcome.as_dict()

    return work


@shared_task(**LONG_JOB)
def contacts_import_run(job_id: int) -> str:
    return _run(job_id, _import_work(contacts_import))


@shared_task(**LONG_JOB)
def orders_import_run(job_id: int) -> str:
    from campaigns.imports import orders_import

    return _run(job_id, _import_work(orders_import))


@shared_task(**LONG_JOB)
def contacts_export_run(job_id: int) -> str:
    return _run(job_id, lambda job, progress: contacts_export_job(job, progress=progress))


@shared_task(**LONG_JOB)
def orders_export_run(job_id: int) -> str:
    from campaigns.imports import orders_export_job

    return _run(job_id, lambda job, progress: orders_export_job(job, progress=progress))


@shared_task(**LONG_JOB)
def contacts_tag_run(job_id: int) -> str:
    """Tag or untag a bulk action's customers (contacts.tags.contacts_tag_job), a slice at
    a time; safe to run twice, as the job resumes after the last customer done."""
    job = job_claim(job_id)
    if job is None:
        return "not queued"  # gone, or another delivery of this message has it
    kept = _t("Customers done so far keep the change.")
    with translation.override(job.params.get("language")), job_progress(job.pk) as progress:
        try:
            if job.created_by is None:
                raise TagError(_t("Whoever started the job is no longer a user."), field="user")
            result = contacts_tag_job(
                job, progress=progress, stop_at=time.monotonic() + TAG_SLICE_SECONDS
            )
        except TagError as problem:
            job_fail(job.pk, error=str(problem))
            return "rejected"
        except SoftTimeLimitExceeded:
            job_fail(job.pk, error=f"{_t('The job took too long and was stopped.')} {kept}")
            return "timed out"
        except Exception:
            logger.exception("job %s (%s) failed", job.pk, job.kind)
            job_fail(job.pk, error=f"{_t('An unexpected error stopped the job.')} {kept}")
            return "failed"
    if result is None:
        # Back to queued, so the next run's claim takes it and resumes where this one ended.
        Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(status=Job.Status.QUEUED)
        contacts_tag_run.delay(job_id=job.pk)
        return "continued"
    job_finish(job.pk, result=result)
    return "done"
