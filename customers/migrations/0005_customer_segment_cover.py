"""Customer.customer_segment_cover: segments counted by an index-only scan; a fresher visibility map.

The covering index (stage, region_id) INCLUDE (member_id, store_id, id, active, tag_ids) replaces
customer_stage (it serves every stage lookup too). It is built CONCURRENTLY: about a minute at 10 M
customers, without blocking the sync and the admin meanwhile — hence a non-atomic migration.

Index-only scans skip the heap only on pages the visibility map marks all-visible; every changed
customer clears its page's bit until VACUUM sets it again. With PostgreSQL's defaults autovacuum waits
for 20 % of the table to change (2 M rows at 10 M customers), by which time nearly every page has lost
its bit and a segment count fetches the heap row by row. Here: vacuum after 1 % of the customers changed
(or were added), and analyze after 0.5 % — ANALYZE refreshes pg_class.relallvisible, so between two
vacuums the planner knows how stale the map is and goes back to the bitmap plan when that is cheaper
(measured in bench/segments.py, variant after_churn_1pct).
"""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models

AUTOVACUUM = """
ALTER TABLE customers_customer SET (autovacuum_vacuum_scale_factor = 0.01,
                                    autovacuum_vacuum_insert_scale_factor = 0.01,
                                    autovacuum_analyze_scale_factor = 0.005)
"""
AUTOVACUUM_RESET = """
ALTER TABLE customers_customer RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_insert_scale_factor,
                                      autovacuum_analyze_scale_factor)
"""


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("customers", "0004_relationship_mobile_hashes"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="customer",
            index=models.Index(fields=["stage", "region"], include=["member", "store", "id", "active", "tag_ids"],
                               name="customer_segment_cover"),
        ),
        RemoveIndexConcurrently(model_name="customer", name="customer_stage"),
        migrations.RunSQL(AUTOVACUUM, AUTOVACUUM_RESET),
    ]
