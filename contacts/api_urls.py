"""REST API of contacts (DRF router), mounted under /api/."""

from rest_framework.routers import DefaultRouter

from contacts.api import ContactViewSet

router = DefaultRouter()
router.register("contacts", ContactViewSet, basename="contact")
urlpatterns = router.urls
