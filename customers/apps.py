import importlib
import pkgutil

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = _("客户")

    def ready(self) -> None:
        # Each area registers its callback handlers, beat schedules and 工作台 panels in customers/hooks/<area>.py.
        from customers import hooks

        for module in pkgutil.iter_modules(hooks.__path__):
            importlib.import_module(f"customers.hooks.{module.name}")
