from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _sync_role_groups(sender, **kwargs):
    # Like Django's own permission creation: keep role groups matching the declared permissions.
    from stores.access.services import role_groups_sync

    role_groups_sync()


# The app's subjects (DESIGN.md), each a package; startup imports each one's admin, tasks, handlers, hooks.
SUBJECTS = ("org", "access", "notices")


class StoresConfig(AppConfig):
    name = "stores"
    verbose_name = _("组织与门店")

    def ready(self) -> None:
        from portal.admin_base import scope_declare
        from portal.dashboard import Panel, panel_register
        from portal.schedules import Schedule, schedule_register
        from portal.subjects import subjects_import
        from portal.wecom.syncs import SyncKind, sync_kind_register
        from stores.access.field_policy import field_policies_register
        from stores.access.scoping import HQ_ONLY_MODELS, hq_only_rows
        from stores.org.hooks import org_panel

        subjects_import(app=self.name, subjects=SUBJECTS)
        for label, reason in HQ_ONLY_MODELS.items():
            scope_declare(model=label, apply=hq_only_rows, reason=reason)

        panel_register(Panel(key="org", title=_("组织"), order=10, build=org_panel))
        field_policies_register()  # who may change identity and scope fields (admin, API, imports)
        post_migrate.connect(_sync_role_groups, sender=self)
        sync_kind_register(SyncKind(kind="addressbook.full", label=str(_("通讯录全量同步")),
                                    task="stores.org.tasks.addressbook_sync_task"))
        schedule_register(Schedule(name="stores.addressbook_sync", task="stores.org.tasks.addressbook_sync_task",
                                   crontab="30 2 * * *", description=str(_("企业微信通讯录全量同步"))))
