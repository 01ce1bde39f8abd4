from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from portal.demo import DemoSeedError, demo_seeders
from stores.demo import DEMO_PASSWORD, OrgSize, org_build, sandbox_mirror_org
from wecom_sandbox.control import SandboxControlError


class Command(BaseCommand):
    help = "Create the demo organisation (set-based; running it again changes nothing)."

    def add_arguments(self, parser):
        parser.add_argument("--areas", type=int, default=3)
        parser.add_argument("--franchisees", type=int, default=2)
        parser.add_argument("--stores", type=int, default=30)
        parser.add_argument("--staff", type=int, default=150)
        parser.add_argument("--admin-password", default="admin")
        parser.add_argument("--no-sandbox", action="store_true", help="do not mirror the org into the sandbox")
        parser.add_argument("--no-customers", action="store_true",
                            help="only the organisation: no customer tags, channels, welcome messages or codes")

    def handle(self, *args, **opts):
        if not settings.XIAOER_DEMO:  # a superuser admin/admin and known passwords: never in production
            raise CommandError(_("seed_demo 只在演示模式下运行（XIAOER_DEMO=1）：它会创建口令公开的账号（admin / "
                                 "admin）。生产数据库不要导入演示数据。"))
        built = org_build(size=OrgSize(areas=opts["areas"], franchisees=opts["franchisees"], stores=opts["stores"],
                                       staff=opts["staff"]))
        user_model = get_user_model()
        if not user_model.objects.filter(username="admin").exists():
            user_model.objects.create_superuser("admin", "admin@example.com", opts["admin_password"],
                                                display_name="总部管理员")
        self.stdout.write(self.style.SUCCESS(
            f"demo organisation: {built.regions} regions, {built.franchisees} franchisees, {built.stores} stores, "
            f"{built.staff} staff"))
        if settings.WECOM_SANDBOX and not opts["no_sandbox"] and self._mirror() and not opts["no_customers"]:
            self._apps()
        self.stdout.write(f"logins: admin / {opts['admin_password']} (superuser); hq_operator, hq_finance, "
                          f"region_east, franchisee_fr001, manager_s0001, staff_s0001 / {DEMO_PASSWORD}")

    def _mirror(self) -> bool:
        try:
            mirrored = sandbox_mirror_org(sandbox_url=settings.XIAOER_SANDBOX_URL)
        except (OSError, SandboxControlError) as exc:
            self.stdout.write(self.style.WARNING(f"WeCom sandbox not reachable ({exc}); run seed_demo again "
                                                 "once it is up to mirror the organisation"))
            return False
        self.stdout.write(f"WeCom sandbox address book: {mirrored['departments']} departments, "
                          f"{mirrored['members']} members")
        return True

    def _apps(self) -> None:
        # Tags and codes are made in WeCom (the sandbox), so they come after the address book is there.
        for seeder in demo_seeders():
            try:
                self.stdout.write(seeder.seed())
            except DemoSeedError as exc:
                self.stdout.write(self.style.WARNING(str(exc)))
