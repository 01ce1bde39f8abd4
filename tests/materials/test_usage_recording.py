"""Recording material use: a Redis push on the page, written once per event by the batched flush."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.db import DatabaseError, ProgrammingError, connection, connections, transaction
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from materials.models import MaterialUse, MaterialUseDaily
from materials.usage import services
from materials.usage.services import QUEUE_KEY, material_use_record, material_uses_flush
from portal.locks import TextLock
from tests.materials.helpers import script_published
from tests.materials.usage_helpers import use

pytestmark = pytest.mark.django_db


@pytest.fixture
def poster(org, hq_operator):
    return script_published(by=hq_operator, title="开业话术", everyone=True)


def daily_counts() -> dict:
    return {(r.day, r.material_id, r.store_id, r.action): r.count for r in MaterialUseDaily.objects.all()}


def test_recording_writes_nothing_to_the_database_until_the_flush(poster, org, queue):
    use(poster, store=org.store_a, staff=org.guide_a, action="download")

    assert queue.llen(QUEUE_KEY) == 1
    assert not MaterialUse.objects.exists()


def test_a_flush_stores_each_event_once_with_its_version_store_and_staff(poster, org, queue, staff_of_a):
    use(poster, store=org.store_a, staff=org.guide_a, user=staff_of_a, action="download")
    use(poster, store=org.store_a, staff=org.guide_a, action="send")

    assert material_uses_flush() == 2

    rows = list(MaterialUse.objects.order_by("action").values_list(
        "material_id", "version_id", "store_id", "staff_id", "user_id", "action"))
    assert rows == [(poster.pk, poster.current_version_id, org.store_a.pk, org.guide_a.pk, staff_of_a.pk, "download"),
                    (poster.pk, poster.current_version_id, org.store_a.pk, org.guide_a.pk, None, "send")]
    assert queue.llen(QUEUE_KEY) == 0


def test_the_daily_rollup_counts_per_day_material_store_and_action(poster, org, queue):
    for _ in range(3):
        use(poster, store=org.store_a, action="view")
    use(poster, store=org.store_b, action="view")
    use(poster, action="copy")  # HQ, no store

    material_uses_flush()

    today = timezone.localdate()
    assert daily_counts() == {(today, poster.pk, org.store_a.pk, "view"): 3,
                              (today, poster.pk, org.store_b.pk, "view"): 1, (today, poster.pk, None, "copy"): 1}


def test_flushing_twice_gives_the_same_counts(poster, org, queue):
    use(poster, store=org.store_a)
    material_uses_flush()
    before = daily_counts()

    assert material_uses_flush() == 0
    assert daily_counts() == before and MaterialUse.objects.count() == 1


def test_a_flush_that_crashed_before_trimming_counts_nothing_twice_when_run_again(poster, org, queue):
    use(poster, store=org.store_a)
    use(poster, store=org.store_a)
    with mock.patch.object(type(queue), "ltrim", side_effect=ConnectionError("crash")):
        with pytest.raises(ConnectionError):
            material_uses_flush()
    assert queue.llen(QUEUE_KEY) == 2 and MaterialUse.objects.count() == 2

    assert material_uses_flush() == 0

    assert queue.llen(QUEUE_KEY) == 0
    assert list(daily_counts().values()) == [2]


def test_a_failed_database_write_keeps_the_events_queued(poster, org, queue):
    use(poster, store=org.store_a)
    use(poster, store=org.store_b)
    with mock.patch.object(services, "WRITE_SQL", "SELECT no_such_function()"):
        with pytest.raises(DatabaseError):
            with transaction.atomic():
                material_uses_flush()

    assert queue.llen(QUEUE_KEY) == 2 and not MaterialUse.objects.exists()
    assert material_uses_flush() == 2


def test_with_redis_down_the_use_is_written_directly(poster, org, queue):
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        use(poster, store=org.store_a, staff=org.guide_a, action="share")

    assert list(MaterialUse.objects.values_list("store_id", "action")) == [(org.store_a.pk, "share")]
    assert list(daily_counts().values()) == [1]
    assert queue.llen(QUEUE_KEY) == 0


@pytest.mark.parametrize("record", [
    b"not json", b"[]", b'{"a": 1}', b'["zz", 1, 1, null, null, null, "view", 1.0]',
    b'["%s", "1", 1, null, null, null, "view", 1.0]' % uuid.uuid4().hex.encode(),
    b'["%s", 1, 1, null, null, null, "like", 1.0]' % uuid.uuid4().hex.encode(),
    b'["%s", 1, 1, 99999999999, null, null, "view", 1.0]' % uuid.uuid4().hex.encode(),
    b'["%s", 1, 1, null, null, null, "view", "yesterday"]' % uuid.uuid4().hex.encode(),
])
def test_a_malformed_record_is_dropped_without_blocking_the_rest(record, poster, org, queue, caplog):
    use(poster, store=org.store_a)
    queue.rpush(QUEUE_KEY, record)
    use(poster, store=org.store_b)

    assert material_uses_flush() == 2

    assert queue.llen(QUEUE_KEY) == 0
    assert "dropped_malformed=1" in caplog.text


def test_an_event_for_a_material_that_does_not_exist_is_dropped_and_counted(poster, org, queue, caplog):
    material_use_record(material_id=poster.pk + 1000, version_id=poster.current_version_id, store_id=None,
                        staff_id=None, user_id=None, action="view")
    material_use_record(material_id=poster.pk, version_id=poster.current_version_id, store_id=org.store_c.pk + 1000,
                        staff_id=None, user_id=None, action="view")
    use(poster, store=org.store_a)

    assert material_uses_flush() == 1

    assert queue.llen(QUEUE_KEY) == 0
    assert "dropped_unknown=2" in caplog.text


def test_an_unknown_action_is_refused_when_recording(poster):
    with pytest.raises(ValueError):
        material_use_record(material_id=poster.pk, version_id=poster.current_version_id, store_id=None,
                            staff_id=None, user_id=None, action="like")


def test_a_second_flush_while_one_runs_does_nothing(poster, org, queue):
    use(poster, store=org.store_a)
    other = connections.create_connection("default")  # the flush already running, on another connection
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [TextLock.MATERIAL_USES_FLUSH.value])

            assert material_uses_flush() == 0

            assert queue.llen(QUEUE_KEY) == 1 and not MaterialUse.objects.exists()
    finally:
        other.close()


def test_a_large_queue_is_drained_in_batches(poster, org, queue):
    for _ in range(25):
        use(poster, store=org.store_a)

    assert material_uses_flush(batch=10) == 25
    assert queue.llen(QUEUE_KEY) == 0 and list(daily_counts().values()) == [25]


def test_use_events_are_never_changed_or_deleted(poster, org, queue):
    use(poster, store=org.store_a)
    material_uses_flush()
    row = MaterialUse.objects.get()

    with pytest.raises(ProgrammingError), transaction.atomic():
        MaterialUse.objects.filter(pk=row.pk).update(action="send")
    with pytest.raises(ProgrammingError), transaction.atomic():
        MaterialUse.objects.filter(pk=row.pk).delete()


def test_an_event_keeps_the_time_it_happened_not_the_time_of_the_flush(poster, org, queue):
    yesterday = timezone.now() - timedelta(days=1)
    event = services.UseEvent(event_id=uuid.uuid4().hex, material_id=poster.pk, version_id=poster.current_version_id,
                              store_id=org.store_a.pk, staff_id=None, user_id=None, action="view",
                              at=yesterday.timestamp())
    queue.rpush(QUEUE_KEY, event.record())

    material_uses_flush()

    assert abs((MaterialUse.objects.get().at - yesterday).total_seconds()) < 0.01
    assert list(daily_counts()) == [(timezone.localdate(yesterday), poster.pk, org.store_a.pk, "view")]


# -- the rollup equals a count over the events -----------------------------------------------------------
EVENTS = st.lists(st.tuples(st.integers(0, 1), st.sampled_from([None, 0, 1, 2]),
                            st.sampled_from(sorted(services.ACTIONS)), st.integers(0, 4 * 24 * 3600), st.booleans()),
                  max_size=40)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=EVENTS)
def test_the_rollup_equals_a_count_over_the_events(events, org, hq_operator, queue):
    materials = [script_published(by=hq_operator, title=f"素材{i}", everyone=True) for i in range(2)]
    stores = [org.store_a, org.store_b, org.store_c]
    start = timezone.now() - timedelta(days=4)
    records = []
    for material_index, store_index, action, offset, replayed in events:
        material = materials[material_index]
        event = services.UseEvent(event_id=uuid.uuid4().hex, material_id=material.pk,
                                  version_id=material.current_version_id,
                                  store_id=None if store_index is None else stores[store_index].pk,
                                  staff_id=None, user_id=None, action=action, at=start.timestamp() + offset)
        records.append(event.record())
        if replayed:  # the same record twice, as after a crash between write and trim
            records.append(event.record())
    if records:
        queue.rpush(QUEUE_KEY, *records)
    material_uses_flush(batch=7)
    material_uses_flush()

    ids = [m.pk for m in materials]  # fresh materials each example: only their rows are compared
    with connection.cursor() as cursor:
        cursor.execute("""SELECT (at AT TIME ZONE 'Asia/Shanghai')::date, material_id, store_id, action, count(*)
                          FROM materials_materialuse WHERE material_id = ANY(%s) GROUP BY 1, 2, 3, 4""", [ids])
        expected = {(d, m, s, a): n for d, m, s, a, n in cursor.fetchall()}
    assert {k: n for k, n in daily_counts().items() if k[1] in ids} == expected
    assert MaterialUse.objects.filter(material_id__in=ids).count() == len({json.loads(r)[0] for r in records})
