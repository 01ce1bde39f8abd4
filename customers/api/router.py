from rest_framework.routers import DefaultRouter

router = DefaultRouter()
router.include_root_view = False  # stores' router already answers /api/v1/
