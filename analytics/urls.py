"""The 数据 (analytics) pages, mounted at /analytics/."""

from django.urls import path

from analytics import pages

app_name = "analytics"
urlpatterns = [
    path("", pages.OverviewPage.as_view(), name="overview"),
    path("groups/", pages.GroupComparisonPage.as_view(), name="groups"),
    path("channels/", pages.ChannelComparisonPage.as_view(), name="channels"),
    path("cohorts/", pages.CohortPage.as_view(), name="cohorts"),
    path("customers/", pages.CustomerTypesPage.as_view(), name="customers"),
    path("value/", pages.CustomerValuePage.as_view(), name="value"),
    path("funnel/", pages.FunnelPage.as_view(), name="funnel"),
    path("costs/", pages.CostsPage.as_view(), name="costs"),
]
