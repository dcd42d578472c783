"""REST API of groups (DRF router), mounted under /api/."""

from rest_framework.routers import DefaultRouter

from groups import api

router = DefaultRouter()
router.register("groups", api.GroupViewSet, basename="group")
router.register("auto-replies", api.AutoReplyViewSet, basename="auto-reply")
router.register("channel-codes", api.ChannelCodeViewSet, basename="channel-code")
router.register("handovers", api.HandoverViewSet, basename="handover")
urlpatterns = router.urls
