"""REST API of the operators' campaign section (DRF router), mounted under /api/."""

from rest_framework.routers import DefaultRouter

from campaigns import api

router = DefaultRouter()
router.register("campaigns", api.CampaignViewSet, basename="campaign")
# Each type's own endpoints, under the same /api/campaigns/<id>/….
router.register("campaigns", api.CampaignTypeViewSet, basename="campaign-type")
urlpatterns = router.urls
