"""Dashboard pages."""

from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.generic import TemplateView

from scrm.roles import RoleRequiredMixin


class DashboardView(RoleRequiredMixin, TemplateView):
    template_name = "analytics/dashboard.html"


def healthz(request) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})
