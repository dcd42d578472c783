"""REST API of the analytics section, mounted under /api/."""

from django.urls import path

from analytics import api

urlpatterns = [
    path("analytics/overview/", api.OverviewApi.as_view(), name="api-analytics-overview"),
    path("analytics/groups/", api.GroupComparisonApi.as_view(), name="api-analytics-groups"),
    path("analytics/channels/", api.ChannelComparisonApi.as_view(), name="api-analytics-channels"),
    path("analytics/funnel/", api.FunnelApi.as_view(), name="api-analytics-funnel"),
    path("analytics/cohorts/", api.CohortsApi.as_view(), name="api-analytics-cohorts"),
    path(
        "analytics/customer-types/",
        api.CustomerTypesApi.as_view(),
        name="api-analytics-customer-types",
    ),
    path(
        "analytics/customer-value/",
        api.CustomerValueApi.as_view(),
        name="api-analytics-customer-value",
    ),
    path("analytics/series/", api.SeriesApi.as_view(), name="api-analytics-series"),
    path("analytics/costs/", api.CostsApi.as_view(), name="api-analytics-costs"),
]
