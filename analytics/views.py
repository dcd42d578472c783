"""Dashboard pages."""

from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.generic import TemplateView

from analytics.selectors import dashboard_headline
from analytics.workbench import workbench
from contacts.io_views import KIND_LABELS
from scrm.roles import RoleRequiredMixin


class DashboardView(RoleRequiredMixin, TemplateView):
    """The workbench (工作台): today's tasks, alerts, SOP completion and headline counts."""

    template_name = "analytics/dashboard.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["headline"] = dashboard_headline(user=self.request.user)
        bench = workbench(user=self.request.user)
        for job in bench.jobs:
            job.kind_label = KIND_LABELS.get(job.kind, job.kind)
        for row in bench.completion:
            row.rate_text = "—" if row.rate is None else f"{row.rate * 100:.1f}%"
        context["bench"] = bench
        context["active_nav"] = "workbench"
        return context


def healthz(request) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})
