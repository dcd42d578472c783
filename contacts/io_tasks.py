"""Celery tasks that run imports and exports as Jobs: thin, taking the job id.

Imported by contacts/tasks.py (Celery discovers only `tasks` modules). The order import and
export live in campaigns (contacts sit below campaigns), so they are imported inside the
tasks that need them, never when this module loads.
"""

import logging
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
from scrm.jobs import job_claim, job_fail, job_finish, job_progress
from scrm.models import Job

__all__ = [
    "contacts_export_run",
    "contacts_import_run",
    "orders_export_run",
    "orders_import_run",
]

logger = logging.getLogger(__name__)

# Above the global limits (CELERY_TASK_*_TIME_LIMIT): 100,000 rows take minutes, not seconds.
LONG_JOB = {"soft_time_limit": 3_600, "time_limit": 3_660, "ignore_result": True}


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
