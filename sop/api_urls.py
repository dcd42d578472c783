"""REST API of the SOP engine (DRF router), mounted under /api/."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from sop import api

router = DefaultRouter()
router.register("sop/plans", api.PlanViewSet, basename="sop-plan")
router.register("sop/steps", api.StepViewSet, basename="sop-step")
router.register("sop/deliveries", api.DeliveryViewSet, basename="sop-delivery")
router.register("sop/content", api.ContentViewSet, basename="sop-content")
urlpatterns = [
    path("sop/completion/", api.CompletionView.as_view(), name="sop-completion"),
    *router.urls,
]
