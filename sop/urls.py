"""Dashboard pages of the SOP engine, mounted at /sop/."""

from django.urls import path

from sop import views

app_name = "sop"
urlpatterns = [
    path("", views.PlanListView.as_view(), name="plans"),
    path("plans/new/", views.PlanEditView.as_view(), name="plan-new"),
    path("plans/<int:pk>/", views.PlanDetailView.as_view(), name="plan"),
    path("plans/<int:pk>/edit/", views.PlanEditView.as_view(), name="plan-edit"),
    path("plans/<int:pk>/preview/", views.PlanPreviewView.as_view(), name="plan-preview"),
    path("plans/<int:pk>/deliveries/", views.PlanDeliveriesView.as_view(), name="plan-deliveries"),
    path(
        "plans/<int:pk>/<str:action>/",
        views.PlanActionView.as_view(),
        name="plan-action",
    ),
    path("plans/<int:pk>/steps/new/", views.StepEditView.as_view(), name="step-new"),
    path("plans/<int:pk>/steps/<int:step_pk>/", views.StepEditView.as_view(), name="step-edit"),
    path(
        "plans/<int:pk>/steps/<int:step_pk>/remove/",
        views.StepRemoveView.as_view(),
        name="step-remove",
    ),
    path("content/", views.ContentListView.as_view(), name="content"),
    path("content/new/", views.ContentEditView.as_view(), name="content-new"),
    path("content/<int:pk>/", views.ContentEditView.as_view(), name="content-edit"),
    path("content/<int:pk>/archive/", views.ContentArchiveView.as_view(), name="content-archive"),
    path("completion/", views.CompletionView.as_view(), name="completion"),
]
