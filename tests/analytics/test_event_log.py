"""The event log counts each fact once, however often it is recorded."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from analytics.events import EventRow, record, record_many
from analytics.models import Event, EventType
from tests.factories import ContactFactory, GroupFactory

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


def run_concurrently(*targets):
    """Start the targets together in threads (each with its own DB connection); re-raise."""
    barrier = threading.Barrier(len(targets))
    errors = []

    def runner(target):
        try:
            barrier.wait()
            target()
        except Exception as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=runner, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@pytest.mark.django_db
def test_recording_an_event_twice_with_one_key_leaves_one_row():
    contact = ContactFactory()
    first, created_first = record(
        type=EventType.MESSAGE, occurred_at=T0, key="msg:1", contact=contact, amount=1
    )
    second, created_second = record(
        type=EventType.MESSAGE, occurred_at=T0, key="msg:1", contact=contact, amount=1
    )

    assert (created_first, created_second) == (True, False)
    assert second.pk == first.pk
    assert Event.objects.count() == 1


@pytest.mark.django_db
def test_a_seen_key_returns_the_stored_event_not_the_new_values():
    record(type=EventType.ORDER_PAID, occurred_at=T0, key="order:A1", amount=9900)
    event, created = record(
        type=EventType.ORDER_PAID, occurred_at=T0 + timedelta(hours=1), key="order:A1", amount=1
    )

    assert not created
    assert event.amount == 9900
    assert event.occurred_at == T0


@pytest.mark.django_db
def test_events_keep_their_references_and_payload():
    contact, group = ContactFactory(), GroupFactory()
    event, _ = record(
        type=EventType.GROUP_JOINED,
        occurred_at=T0,
        key="join:1",
        contact=contact,
        group=group.pk,
        payload={"scene": 3},
    )

    stored = Event.objects.select_related("contact", "group").get(pk=event.pk)
    assert stored.contact == contact
    assert stored.group == group
    assert stored.payload == {"scene": 3}


@pytest.mark.django_db
def test_an_event_without_a_timezone_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        record(type=EventType.MESSAGE, occurred_at=datetime(2026, 11, 1), key="naive")
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_bulk_load_skips_keys_already_stored_and_repeated_in_the_batch():
    record(type=EventType.MESSAGE, occurred_at=T0, key="m:0", amount=1)
    rows = [
        EventRow(EventType.MESSAGE, T0 + timedelta(minutes=i), f"m:{i}", amount=1)
        for i in range(10)
    ]
    rows.append(rows[3])  # the same fact twice in one load

    added = record_many(rows, batch_size=4)

    assert added == 9
    assert Event.objects.count() == 10
    assert record_many(rows) == 0
    assert Event.objects.count() == 10


@pytest.mark.django_db
def test_bulk_load_keeps_every_column():
    contact, group = ContactFactory(), GroupFactory()
    record_many(
        [
            EventRow(
                EventType.ORDER_PAID,
                T0,
                "order:X",
                contact_id=contact.pk,
                group_id=group.pk,
                amount=12345,
                payload={"items": ["tea"]},
            )
        ]
    )

    event = Event.objects.get()
    assert (event.type, event.occurred_at, event.contact_id, event.group_id, event.amount) == (
        EventType.ORDER_PAID,
        T0,
        contact.pk,
        group.pk,
        12345,
    )
    assert event.payload == {"items": ["tea"]}


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_writers_with_one_key_leave_one_row():
    results = []

    def write():
        results.append(record(type=EventType.MESSAGE, occurred_at=T0, key="race", amount=1))

    for _ in range(5):  # several rounds make a lost race likely to show
        Event.objects.all().delete()
        results.clear()
        run_concurrently(write, write)
        assert Event.objects.count() == 1
        assert sorted(created for _, created in results) == [False, True]
        assert results[0][0].pk == results[1][0].pk


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_bulk_loaders_with_overlapping_keys_leave_one_row_per_key():
    first = [EventRow(EventType.MESSAGE, T0, f"k:{i}", amount=1) for i in range(0, 3000)]
    second = [EventRow(EventType.MESSAGE, T0, f"k:{i}", amount=1) for i in range(1500, 4500)]
    added = []

    run_concurrently(
        lambda: added.append(record_many(first, batch_size=1000)),
        lambda: added.append(record_many(reversed(second), batch_size=1000)),
    )

    assert Event.objects.count() == 4500
    assert sum(added) == 4500
