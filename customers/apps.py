from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

# The app's subjects (DESIGN.md), each a package; startup imports each one's admin, tasks, handlers, hooks.
SUBJECTS = ("contacts", "tags", "acquisition", "members", "segments", "lifecycle", "dashboard")


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = _("客户")

    def ready(self) -> None:
        from customers.demo import customers_demo_run
        from portal.demo import demo_seeder_register
        from portal.subjects import subjects_import

        subjects_import(app=self.name, subjects=SUBJECTS)
        demo_seeder_register(name="customers", seed=customers_demo_run)
        # The demo's posters carry the staff codes made just above: customers hands them in (materials is left).
        demo_seeder_register(name="posters", seed=_posters_demo_run)


def _posters_demo_run() -> str:
    from materials.posters.demo import posters_demo_run

    return posters_demo_run()
