"""Celery tasks of the customers app, one module per area (thin: each calls a service)."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
