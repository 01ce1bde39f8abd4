"""Recording material use on the hot path, and the batched flush behind it.

    python -m bench material_usage --scale 100000   # events (small: 20,000)

Measures, in one run: events recorded per second through ``material_use_record`` (a Redis push; one
process, one thread, like one page worker) and the per-call p95, then the flush that writes them
(``material_uses_flush``: one INSERT … ON CONFLICT and one rollup upsert per 20,000-event batch) in rows/s;
checks every event was written once and the rollup adds up. Baseline, same run: one ORM insert per event
(what a page would do without the queue). The goal: ≥ 2,000 events/s recorded, and the flush keeping up.
"""

from __future__ import annotations

import random
import time
import uuid

from bench.harness import p95, result_line, tables_truncate, timed

USE_TABLES = ("materials_materialusedaily", "materials_materialuse")
GOAL = 2000.0  # events/s
STORES = 200
MATERIALS = 50


def _world() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(material, version) pairs and (store, staff) pairs to draw events from."""
    from bench.org import ORG_TABLES, _size
    from materials.models import Material, MaterialVersion
    from stores.demo import org_build
    from stores.models import Staff

    if Staff.objects.count() < _size(STORES).staff:
        tables_truncate(*ORG_TABLES)
        org_build(size=_size(STORES))
    staff = list(Staff.objects.exclude(store=None).values_list("store_id", "pk")[:2000])
    materials = list(Material.objects.filter(title__startswith="压测素材").exclude(current_version=None)
                     .values_list("pk", "current_version_id"))
    for i in range(len(materials), MATERIALS):
        material = Material.objects.create(kind="script", title=f"压测素材{i}", audience_all=True)
        version = MaterialVersion.objects.create(material=material, number=1, text=f"压测话术 {i}")
        Material.objects.filter(pk=material.pk).update(current_version=version, status="published")
        materials.append((material.pk, version.pk))
    return materials, staff


def bench_material_usage(*, scale: int) -> str:
    from django.utils import timezone

    from materials.models import MaterialUse, MaterialUseDaily, UseAction
    from materials.usage.services import QUEUE_KEY, _redis, material_use_record, material_uses_flush

    materials, staff = _world()
    actions = list(UseAction.values)
    rng = random.Random(20261203)
    events = [(*materials[rng.randrange(len(materials))], *staff[rng.randrange(len(staff))],
               actions[rng.randrange(len(actions))]) for _ in range(scale)]
    tables_truncate(*USE_TABLES)
    client = _redis()
    client.delete(QUEUE_KEY)

    latencies: list[float] = []
    with timed() as recording:
        for material_id, version_id, store_id, staff_id, action in events:
            started = time.perf_counter()
            material_use_record(material_id=material_id, version_id=version_id, store_id=store_id,
                                staff_id=staff_id, user_id=None, action=action)
            latencies.append(time.perf_counter() - started)
    record_rate = scale / recording.seconds
    assert client.llen(QUEUE_KEY) == scale, "not every event reached the queue"

    with timed() as flushing:
        written = material_uses_flush(max_seconds=3600)
    flush_rate = written / flushing.seconds
    assert written == scale and MaterialUse.objects.count() == scale, f"flush wrote {written} of {scale}"
    assert sum(MaterialUseDaily.objects.values_list("count", flat=True)) == scale, "the rollup does not add up"
    with timed() as replay:  # nothing left: a second flush is a no-op
        assert material_uses_flush() == 0

    baseline_count = min(scale, 5000)
    tables_truncate(*USE_TABLES)
    with timed() as naive:
        for material_id, version_id, store_id, staff_id, action in events[:baseline_count]:
            MaterialUse.objects.create(event_id=uuid.uuid4(), material_id=material_id, version_id=version_id,
                                       store_id=store_id, staff_id=staff_id, action=action, at=timezone.now())
    naive_rate = baseline_count / naive.seconds
    tables_truncate(*USE_TABLES)

    verdict = "met" if record_rate >= GOAL and flush_rate >= GOAL else "NOT met"
    lines = [
        f"events={scale} record={record_rate:,.0f}/s (p95 {p95(latencies) * 1e6:.0f} µs per call) "
        f"flush={flush_rate:,.0f} rows/s ({flushing.seconds:.2f} s, batches of 20,000) "
        f"empty_flush={replay.seconds:.3f}s",
        f"baseline: one ORM insert per event = {naive_rate:,.0f}/s "
        f"(mean {naive.seconds / baseline_count * 1e6:.0f} µs per event, {baseline_count} events)",
        f"end-to-end record+flush = {scale / (recording.seconds + flushing.seconds):,.0f} events/s; "
        f"goal ≥ {GOAL:,.0f}/s recorded and flushed: {verdict}",
        result_line(bench="material_usage", value=record_rate, unit="events/s", baseline=naive_rate,
                    higher_is_better=True),
    ]
    return "\n".join(lines)
