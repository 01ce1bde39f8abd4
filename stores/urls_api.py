"""The stores REST API under /api/v1/: the organisation's viewsets, registered here (one place for the app)."""

from rest_framework.routers import DefaultRouter

from stores.org.api import FranchiseeViewSet, RegionViewSet, StaffViewSet, StoreViewSet

router = DefaultRouter()
router.register("regions", RegionViewSet)
router.register("franchisees", FranchiseeViewSet)
router.register("stores", StoreViewSet)
router.register("staff", StaffViewSet)
urlpatterns = router.urls
