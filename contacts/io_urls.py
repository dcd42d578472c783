"""Pages and API for importing and exporting contacts and orders, mounted under /io/."""

from django.urls import path

from contacts import io_views as views

app_name = "io"
urlpatterns = [
    path("", views.IoHomeView.as_view(), name="home"),
    path("imports/<str:kind>/", views.ImportStartView.as_view(), name="import"),
    path("exports/<str:kind>/", views.ExportStartView.as_view(), name="export"),
    path("templates/<str:kind>.csv", views.ImportTemplateView.as_view(), name="template"),
    path("upkeep/<str:kind>/", views.UpkeepStartView.as_view(), name="upkeep"),
    path("jobs/", views.JobListView.as_view(), name="jobs"),
    path("jobs/<int:pk>/", views.JobDetailView.as_view(), name="job"),
    path("jobs/<int:pk>.json", views.JobStatusJsonView.as_view(), name="job-json"),
    path("jobs/<int:pk>/download", views.JobDownloadView.as_view(), name="job-download"),
    path("jobs/<int:pk>/errors.csv", views.JobErrorReportView.as_view(), name="job-errors"),
    # The API (session or token auth), under /io/api/.
    path(
        "api/imports/contacts",
        views.ImportApiView.as_view(kind="contacts"),
        name="api-import-contacts",
    ),
    path(
        "api/imports/orders",
        views.ImportApiView.as_view(kind="orders"),
        name="api-import-orders",
    ),
    path(
        "api/exports/contacts",
        views.ExportApiView.as_view(kind="contacts"),
        name="api-export-contacts",
    ),
    path(
        "api/exports/orders",
        views.ExportApiView.as_view(kind="orders"),
        name="api-export-orders",
    ),
    path("api/upkeep/<str:kind>", views.UpkeepApiView.as_view(), name="api-upkeep"),
    path("api/jobs/<int:pk>", views.JobApiView.as_view(), name="api-job"),
]
