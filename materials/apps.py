from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

# The app's subjects (DESIGN.md), each a package; startup imports each one's admin, tasks, handlers, hooks.
SUBJECTS = ("library", "media", "posters", "usage")


class MaterialsConfig(AppConfig):
    name = "materials"
    verbose_name = _("素材库")

    def ready(self) -> None:
        from portal.subjects import subjects_import

        subjects_import(app=self.name, subjects=SUBJECTS)
