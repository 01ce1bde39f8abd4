from datetime import date

from django.core.management.base import BaseCommand, CommandError

from customers.dashboard.selectors import DashboardError
from customers.dashboard.services import acquisition_stats_backfill


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"not a date (YYYY-MM-DD): {value!r}") from exc


class Command(BaseCommand):
    help = "Build (or rebuild) the add-fan dashboard's daily table for a range of days. Safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="date_from", required=True, help="first day, YYYY-MM-DD")
        parser.add_argument("--to", dest="date_to", required=True, help="last day, YYYY-MM-DD (inclusive)")

    def handle(self, *args, **opts):
        date_from, date_to = _date(opts["date_from"]), _date(opts["date_to"])
        try:
            chunks = acquisition_stats_backfill(date_from=date_from, date_to=date_to)
        except DashboardError as exc:
            raise CommandError(str(exc)) from exc
        for first, rows in chunks:
            self.stdout.write(f"{first.isoformat()}…: {rows} rows written")
        days = (date_to - date_from).days + 1
        self.stdout.write(self.style.SUCCESS(f"built {days} day(s) {date_from}…{date_to}: "
                                             f"{sum(rows for _f, rows in chunks)} rows written"))
