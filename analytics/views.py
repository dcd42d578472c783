"""Dashboard pages."""

from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.generic import TemplateView

from analytics.selectors import dashboard_headline
from scrm.roles import RoleRequiredMixin


class DashboardView(RoleRequiredMixin, TemplateView):
    """The workbench (工作台): headline counts every morning starts with."""

    template_name = "analytics/dashboard.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["headline"] = dashboard_headline(user=self.request.user)
        context["active_nav"] = "workbench"
        return context


def healthz(request) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})
