"""The customers REST API under /api/v1/: each subject's viewsets, registered here (one place for the app)."""

from rest_framework.routers import DefaultRouter

from customers.members.api import MemberViewSet

router = DefaultRouter()
router.include_root_view = False  # stores' router already answers /api/v1/
router.register("members", MemberViewSet, basename="member")
urlpatterns = router.urls
