"""Import and export: the pages, the job pages with their progress endpoint, and the API.

Importing writes, so analysts may not; exporting only reads, so any login may export what
it can see. A job and its files are shown only to whoever started it, and to managers.
Managers also start the long upkeep here (a full sync from WeCom, a rebuild of the figures),
followed on the same job pages.
"""

import csv
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _
from django.views import View
from django.views.generic import ListView, TemplateView
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from contacts.exports import ExportError, ExportFormat, contacts_export_start
from contacts.imports import (
    CONTACT_COLUMNS,
    ImportFileError,
    contacts_import_start,
    file_error_message,
    media_path,
    problem_text,
    row_error_message,
)
from scrm.jobs import job_is_finished, jobs_visible_to
from scrm.models import Job
from scrm.roles import RoleRequiredMixin, can_write

KIND_LABELS = {
    "contacts_import": _("Customer import"),
    "orders_import": _("Order import"),
    "contacts_export": _("Customer export"),
    "orders_export": _("Order export"),
    "contacts_tag": _("Customer tagging"),
    "contacts_untag": _("Customer untagging"),
    "wecom_sync": _("Full sync from WeCom"),
    "rollups_rebuild": _("Rebuild of the figures"),
}
PHASE_LABELS = {
    "queued": _("Waiting for a worker"),
    "running": _("Working"),
    "reading": _("Reading the file"),
    "checking": _("Checking every row"),
    "writing": _("Writing"),
    "exporting": _("Writing the file"),
    "wecom_staff": _("Reading staff and tags from WeCom"),
    "wecom_contacts": _("Reading customers from WeCom"),
    "wecom_groups": _("Reading groups and members from WeCom"),
    "rollup_days": _("Recomputing the daily figures"),
    "activity": _("Recomputing each customer's activity"),
    "done": _("Done"),
    "failed": _("Stopped"),
}
ERRORS_PER_PAGE = 100
# The API lists this many problems; the error report has all of them.
API_ERRORS_MAX = 1_000


def _orders_import_start(**kwargs) -> Job:
    # Orders live in campaigns, above contacts: reached only when asked for.
    from campaigns.imports import orders_import_start

    return orders_import_start(**kwargs)


def _orders_export_start(*, user, fmt: str, **_ignored) -> Job:
    from campaigns.imports import orders_export_start

    return orders_export_start(user=user, fmt=fmt)


IMPORTS = {"contacts": contacts_import_start, "orders": _orders_import_start}
EXPORTS = {"contacts": contacts_export_start, "orders": _orders_export_start}


# The upkeep lives above contacts (groups, analytics): reached only when asked for.
def _full_sync_start(*, user) -> tuple[Job, bool]:
    from groups.sync import full_sync_start

    return full_sync_start(user=user)


def _rollups_rebuild_start(*, user) -> tuple[Job, bool]:
    from analytics.rollups import rollup_rebuild_start

    return rollup_rebuild_start(user=user)


# Job kind -> its start service, which returns the job and whether it is a new one.
UPKEEP = {"wecom_sync": _full_sync_start, "rollups_rebuild": _rollups_rebuild_start}
# What a finished upkeep job's page lists, in this order: result key -> label.
OUTCOME_LABELS = {
    "wecom_sync": {
        "staff": _("Staff changed"),
        "tags": _("Tag changes"),
        "follows": _("Customer relations in WeCom"),
        "follows_added": _("Customer relations added"),
        "follows_ended": _("Customer relations ended"),
        "tag_changes": _("Customer tag changes"),
        "groups": _("Groups in WeCom"),
        "groups_changed": _("Groups changed"),
        "groups_dismissed": _("Groups dismissed"),
    },
    "rollups_rebuild": {
        "first": _("From"),
        "last": _("To"),
        "days": _("Days recomputed"),
        "customers": _("Customers whose activity was recomputed"),
    },
}


def _order_columns() -> tuple[str, ...]:
    from campaigns.imports import ORDER_COLUMNS

    return ORDER_COLUMNS


# --- what a job looks like to the page, the progress endpoint and the API --------------------


def job_phase(job: Job) -> str:
    if job.status in (Job.Status.DONE, Job.Status.FAILED):
        return job.status
    return job.result.get("phase") or job.status


def job_percent(job: Job) -> int:
    return 100 if job.status == Job.Status.DONE else job.percent


def job_count_label(job: Job) -> str:
    """Under the bar: "40 of 120", or "40 so far" while the total is not known yet."""
    if job.total:
        return _t("%(done)s of %(total)s") % {"done": job.done, "total": job.total}
    return _t("%(done)s so far") % {"done": job.done} if job.done else ""


def _url(request, name: str, pk: int) -> str:
    return request.build_absolute_uri(reverse(name, args=[pk]))


def job_payload(job: Job, request, *, with_errors: bool = False) -> dict:
    result = job.result or {}
    phase = job_phase(job)
    payload = {
        "id": job.pk,
        "kind": job.kind,
        "kind_label": str(KIND_LABELS.get(job.kind, job.kind)),
        "status": job.status,
        "phase": phase,
        "phase_label": str(PHASE_LABELS.get(phase, phase)),
        "done": job.done,
        "total": job.total,
        "percent": job_percent(job),
        "count_label": job_count_label(job),
        "finished": job_is_finished(job),
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "error": job.error,
        "counts": {k: v for k, v in result.items() if isinstance(v, int)},
        "error_count": result.get("error_count", 0),
        "page_url": _url(request, "io:job", job.pk),
        "download_url": _url(request, "io:job-download", job.pk)
        if job.status == Job.Status.DONE and result.get("file")
        else None,
        "error_report_url": _url(request, "io:job-errors", job.pk)
        if result.get("error_report")
        else None,
    }
    if "file_error" in result:
        payload["error"] = file_error_message(result["file_error"])
    if with_errors:
        payload["errors"] = [
            {
                "row": e["row"],
                "column": e["column"],
                "code": e["code"],
                "message": row_error_message(e),
            }
            for e in result.get("errors", [])[:API_ERRORS_MAX]
        ]
    return payload


def _visible_job(request, pk: int) -> Job:
    # Someone else's job is "not found", not "forbidden": its existence is no one's business.
    return get_object_or_404(jobs_visible_to(request.user).select_related("created_by"), pk=pk)


def _job_file(job: Job, key: str) -> Path:
    relative = (job.result or {}).get(key)
    if not relative:
        raise Http404("no file")
    root = Path(settings.MEDIA_ROOT).resolve()
    path = media_path(relative).resolve()
    if root not in path.parents or not path.is_file():
        raise Http404("no file")
    return path


# --- pages -----------------------------------------------------------------------------------


class ImportForm(forms.Form):
    file = forms.FileField(
        label=_("File"), help_text=_("CSV (UTF-8 or GBK) or Excel XLSX, up to 50 MB.")
    )


class ExportForm(forms.Form):
    format = forms.ChoiceField(
        label=_("Format"), choices=ExportFormat.choices, initial=ExportFormat.CSV
    )
    # Set by the contact list's "export" action: these contacts only, or the list's filters.
    contact_ids = forms.CharField(required=False, widget=forms.HiddenInput)
    filters = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean_contact_ids(self) -> list[int] | None:
        raw = self.cleaned_data["contact_ids"].replace("，", ",")
        if not raw.strip():
            return None
        try:
            return [int(part) for part in raw.split(",") if part.strip()]
        except ValueError:
            raise forms.ValidationError(_("Contact ids are whole numbers.")) from None


def _upkeep(user) -> list[dict]:
    """The upkeep a manager may start, each with its latest job; nothing for anyone else."""
    if not user.is_manager:
        return []
    from analytics.rollups import REBUILD_DAYS

    about = {
        "wecom_sync": _t(
            "Reads every staff member, tag, customer and group from WeCom and brings ours in "
            "line. Callbacks keep things current; run this after WeCom was unreachable or "
            "when something looks missing. Safe to run again: what already matches stays."
        ),
        "rollups_rebuild": _t(
            "Recomputes the daily figures of the last %(days)s days and every customer's "
            "activity from the event log, after a fix to past data."
        )
        % {"days": REBUILD_DAYS},
    }
    upkeep = []
    for kind in UPKEEP:
        latest = Job.objects.filter(kind=kind).order_by("-created_at", "-pk").first()
        upkeep.append(
            {
                "kind": kind,
                "label": KIND_LABELS[kind],
                "about": about[kind],
                "latest": latest,
                "under_way": latest is not None and not job_is_finished(latest),
            }
        )
    return upkeep


def _home_context(request, **forms_by_name) -> dict:
    context = {
        "upkeep": _upkeep(request.user),
        "can_import": can_write(request.user),
        "contacts_import_form": ImportForm(prefix="contacts"),
        "orders_import_form": ImportForm(prefix="orders"),
        "contacts_export_form": ExportForm(prefix="contacts"),
        "orders_export_form": ExportForm(prefix="orders"),
        "contact_columns": CONTACT_COLUMNS,
        "order_columns": _order_columns(),
        "recent_jobs": Job.objects.filter(created_by=request.user)[:5],
        "kind_labels": KIND_LABELS,
        "active_nav": "io",
    }
    context.update(forms_by_name)
    return context


class IoHomeView(LoginRequiredMixin, TemplateView):
    """导入导出: upload a contacts or orders file, or start an export."""

    template_name = "io/home.html"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **_home_context(self.request)}


class ImportStartView(RoleRequiredMixin, TemplateView):
    """Keep the upload, queue the import, and go to the job page to watch it."""

    template_name = "io/home.html"
    http_method_names = ["post"]

    def post(self, request, kind: str):
        if kind not in IMPORTS:
            raise Http404("no such import")
        form = ImportForm(request.POST, request.FILES, prefix=kind)
        if form.is_valid():
            try:
                job = IMPORTS[kind](user=request.user, uploaded=form.cleaned_data["file"])
            except ImportFileError as problem:
                form.add_error("file", problem.message)
            else:
                return redirect("io:job", pk=job.pk)
        context = _home_context(request, **{f"{kind}_import_form": form})
        return self.render_to_response(context, status=400)


class ExportStartView(LoginRequiredMixin, TemplateView):
    """Queue an export (analysts too: it only reads) and go to the job page."""

    template_name = "io/home.html"
    http_method_names = ["post"]

    def post(self, request, kind: str):
        if kind not in EXPORTS:
            raise Http404("no such export")
        form = ExportForm(request.POST, prefix=kind)
        if form.is_valid():
            options = {"user": request.user, "fmt": form.cleaned_data["format"]}
            if kind == "contacts":
                options["contact_ids"] = form.cleaned_data["contact_ids"]
                if form.cleaned_data["filters"]:
                    options["query"] = QueryDict(form.cleaned_data["filters"])
            job = EXPORTS[kind](**options)
            return redirect("io:job", pk=job.pk)
        context = _home_context(request, **{f"{kind}_export_form": form})
        return self.render_to_response(context, status=400)


class UpkeepStartView(LoginRequiredMixin, View):
    """A manager starts a full sync or a rebuild and goes to its job page; one already queued
    or running is shown instead of starting a second. Anyone else: 403 (the service says)."""

    http_method_names = ["post"]

    def post(self, request, kind: str):
        if kind not in UPKEEP:
            raise Http404("no such job")
        job, started = UPKEEP[kind](user=request.user)
        if not started:
            messages.info(
                request,
                _t("%(job)s #%(id)s is already under way; here it is.")
                % {"job": KIND_LABELS[kind], "id": job.pk},
            )
        return redirect("io:job", pk=job.pk)


class JobListView(LoginRequiredMixin, ListView):
    """The user's recent jobs, to come back to one."""

    template_name = "io/job_list.html"
    paginate_by = 20
    context_object_name = "jobs"

    def get_queryset(self):
        return Job.objects.filter(created_by=self.request.user).order_by("-created_at", "-pk")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        for job in context["jobs"]:
            job.kind_label = KIND_LABELS.get(job.kind, job.kind)
            job.phase_label = PHASE_LABELS.get(job_phase(job), "")
            job.shown_percent = job_percent(job)
        context["active_nav"] = "io"
        return context


class JobDetailView(LoginRequiredMixin, TemplateView):
    """One job: its progress while it runs, then its outcome, problems or download."""

    template_name = "io/job_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        job = _visible_job(self.request, kwargs["pk"])
        result = job.result or {}
        errors = Paginator(result.get("errors", []), ERRORS_PER_PAGE).get_page(
            self.request.GET.get("page")
        )
        errors.object_list = [
            {**e, "problem": problem_text(e["code"], e["params"])} for e in errors.object_list
        ]
        context.update(
            job=job,
            status=job_payload(job, self.request),
            kind_label=KIND_LABELS.get(job.kind, job.kind),
            is_import=job.kind.endswith("_import"),
            is_export=job.kind.endswith("_export"),
            is_tagging=job.kind in ("contacts_tag", "contacts_untag"),
            outcome=[
                (label, result[key])
                for key, label in OUTCOME_LABELS.get(job.kind, {}).items()
                if key in result
            ],
            result=result,
            errors=errors,
            page_obj=errors,
            errors_truncated=result.get("error_count", 0) > len(result.get("errors", [])),
            active_nav="io",
        )
        return context


class JobStatusJsonView(LoginRequiredMixin, View):
    """What the job page polls every second while the job runs."""

    def get(self, request, pk: int):
        return JsonResponse(job_payload(_visible_job(request, pk), request))


class JobDownloadView(LoginRequiredMixin, View):
    """An export's file, to whoever started it (or a manager)."""

    def get(self, request, pk: int):
        job = _visible_job(request, pk)
        if job.status != Job.Status.DONE:
            raise Http404("not ready")
        path = _job_file(job, "file")
        return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)


class JobErrorReportView(LoginRequiredMixin, View):
    """Every problem of a rejected import as a CSV."""

    def get(self, request, pk: int):
        job = _visible_job(request, pk)
        path = _job_file(job, "error_report")
        name = f"{Path(job.params.get('name') or 'import').stem}-errors.csv"
        return FileResponse(open(path, "rb"), as_attachment=True, filename=name)


class ImportTemplateView(LoginRequiredMixin, View):
    """An empty file with the columns an import reads, to fill in."""

    def get(self, request, kind: str):
        columns = {"contacts": CONTACT_COLUMNS, "orders": None}.get(kind, ())
        if columns is None:
            columns = _order_columns()
        if not columns:
            raise Http404("no such import")
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{kind}-template.csv"'
        response.write("\ufeff")
        csv.writer(response).writerow(columns)
        return response


# --- API -------------------------------------------------------------------------------------

JobOut = inline_serializer(
    "IoJob",
    {
        "id": serializers.IntegerField(),
        "kind": serializers.CharField(),
        "kind_label": serializers.CharField(),
        "status": serializers.ChoiceField(choices=Job.Status.choices),
        "phase": serializers.CharField(),
        "phase_label": serializers.CharField(),
        "done": serializers.IntegerField(),
        "total": serializers.IntegerField(),
        "percent": serializers.IntegerField(),
        "count_label": serializers.CharField(),
        "finished": serializers.BooleanField(),
        "created_at": serializers.DateTimeField(),
        "finished_at": serializers.DateTimeField(allow_null=True),
        "error": serializers.CharField(),
        "counts": serializers.DictField(child=serializers.IntegerField()),
        "error_count": serializers.IntegerField(),
        "errors": inline_serializer(
            "IoRowProblem",
            {
                "row": serializers.IntegerField(),
                "column": serializers.CharField(),
                "code": serializers.CharField(),
                "message": serializers.CharField(),
            },
            many=True,
            required=False,
        ),
        "page_url": serializers.URLField(),
        "download_url": serializers.URLField(allow_null=True),
        "error_report_url": serializers.URLField(allow_null=True),
    },
)


class ExportIn(serializers.Serializer):
    format = serializers.ChoiceField(choices=ExportFormat.values, default=ExportFormat.CSV)
    contact_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        allow_null=True,
        help_text="Customer exports only: just these contacts (of those you may see).",
    )


class ImportApiView(APIView):
    """POST a CSV or XLSX file as `file` (multipart); the import runs as a job."""

    parser_classes = [MultiPartParser, FormParser]
    kind = ""

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
        responses={202: JobOut, 400: OpenApiResponse(description="The file cannot be imported.")},
    )
    def post(self, request):
        uploaded = request.FILES.get("file")
        if uploaded is None:
            return Response({"file": [_t("Choose a file to upload.")]}, status=400)
        try:
            job = IMPORTS[self.kind](user=request.user, uploaded=uploaded)
        except ImportFileError as problem:
            return Response({"file": [problem.message]}, status=400)
        return Response(job_payload(job, request), status=status.HTTP_202_ACCEPTED)


class ExportApiView(APIView):
    """Start an export; anyone logged in may export what they can see."""

    permission_classes = [IsAuthenticated]
    kind = ""

    @extend_schema(request=ExportIn, responses={202: JobOut})
    def post(self, request):
        data = ExportIn(data=request.data)
        data.is_valid(raise_exception=True)
        options = {"user": request.user, "fmt": data.validated_data["format"]}
        if self.kind == "contacts":
            options["contact_ids"] = data.validated_data.get("contact_ids")
        try:
            job = EXPORTS[self.kind](**options)
        except ExportError as problem:
            return Response({problem.field: [str(problem)]}, status=400)
        return Response(job_payload(job, request), status=status.HTTP_202_ACCEPTED)


class UpkeepApiView(APIView):
    """Managers: start a full sync from WeCom (`wecom_sync`) or a rebuild of the figures
    (`rollups_rebuild`) as a job; 202 with the new job, or 200 with the one of that kind
    already queued or running (none is started twice at once). Others: 403."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        parameters=[OpenApiParameter("kind", str, OpenApiParameter.PATH, enum=list(UPKEEP))],
        responses={
            202: JobOut,
            200: OpenApiResponse(JobOut, description="One of this kind is already under way."),
            403: OpenApiResponse(description="Only managers may start these."),
            404: OpenApiResponse(description="No such kind of job."),
        },
    )
    def post(self, request, kind: str):
        if kind not in UPKEEP:
            raise Http404("no such job")
        job, started = UPKEEP[kind](user=request.user)
        return Response(
            job_payload(job, request),
            status=status.HTTP_202_ACCEPTED if started else status.HTTP_200_OK,
        )


class JobApiView(APIView):
    """A job's status, progress, problems (the first 1,000) and download link."""

    @extend_schema(responses={200: JobOut})
    def get(self, request, pk: int):
        return Response(job_payload(_visible_job(request, pk), request, with_errors=True))
