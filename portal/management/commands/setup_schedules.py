from django.core.management.base import BaseCommand

from portal.schedules import schedules_setup


class Command(BaseCommand):
    help = "Create or update every beat schedule (idempotent; schedules stay editable in the admin)."

    def handle(self, *args, **options):
        created, updated = schedules_setup()
        self.stdout.write(self.style.SUCCESS(f"schedules: {created} created, {updated} updated"))
