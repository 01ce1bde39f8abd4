"""The customers REST API: each area adds its viewsets to ``router`` in customers/api/<area>.py."""

import importlib
import pkgutil

import customers.api
from customers.api.router import router

for _module in pkgutil.iter_modules(customers.api.__path__):
    if _module.name not in ("urls", "router"):
        importlib.import_module(f"customers.api.{_module.name}")

urlpatterns = router.urls
