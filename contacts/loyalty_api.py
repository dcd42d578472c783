"""REST API for tiers, points, the points mall, tags and tag rules, mounted under /api/."""

from rest_framework.routers import DefaultRouter

router = DefaultRouter()
urlpatterns = router.urls
