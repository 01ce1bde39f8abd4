from rest_framework.routers import DefaultRouter

from stores.api.views import FranchiseeViewSet, RegionViewSet, StaffViewSet, StoreViewSet

router = DefaultRouter()
router.register("regions", RegionViewSet)
router.register("franchisees", FranchiseeViewSet)
router.register("stores", StoreViewSet)
router.register("staff", StaffViewSet)
urlpatterns = router.urls
