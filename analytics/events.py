"""The one way facts enter the event log: `record` for one event, `record_many` for bulk loads.

Both are idempotent: an event is identified by its caller's key (e.g. the callback's dedupe
hash, or "delivery:1234:sent"), so a retried callback, job or import never counts twice.
"""

import hashlib
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import Model
from psycopg.types.json import Jsonb

from analytics.models import Event, EventType

BULK_BATCH_SIZE = 50_000

# Columns filled by callers, in COPY order; `id` comes from the table's identity. The key
# travels as text and is hashed by PostgreSQL (md5 in C is far cheaper than in Python).
_COLUMNS = (
    "type",
    "occurred_at",
    "contact_id",
    "group_id",
    "staff_id",
    "channel_id",
    "campaign_id",
    "amount",
    "payload",
    "key",
)
_TABLE = Event._meta.db_table


class EventRow(NamedTuple):
    """One event for `record_many`; ids rather than model instances, so rows stay cheap."""

    type: int
    occurred_at: datetime
    key: str
    contact_id: int | None = None
    group_id: int | None = None
    staff_id: int | None = None
    channel_id: int | None = None
    campaign_id: int | None = None
    amount: int | None = None
    payload: dict | None = None


# Binary COPY types of the staging columns, in _COLUMNS order.
_COPY_TYPES = ["int2", "timestamptz"] + ["int8"] * 6 + ["jsonb", "text"]
# The stored key, computed the same way in SQL as `event_key` does in Python. Fixed forever:
# changing it would make every stored key unrecognisable.
_KEY_SQL = "md5(key)::uuid"


def event_key(key: str) -> uuid.UUID:
    """The stored form of an idempotency key: 16 bytes whatever the key's length."""
    if not key:
        raise ValueError("an event needs a non-empty idempotency key")
    return uuid.UUID(bytes=hashlib.md5(key.encode(), usedforsecurity=False).digest())


def _pk(value: Model | int | None) -> int | None:
    return value.pk if isinstance(value, Model) else value


def record(
    *,
    type: EventType,
    occurred_at: datetime,
    key: str,
    contact: Model | int | None = None,
    group: Model | int | None = None,
    staff: Model | int | None = None,
    channel: Model | int | None = None,
    campaign: Model | int | None = None,
    amount: int | None = None,
    payload: dict | None = None,
) -> tuple[Event, bool]:
    """Write one event; if its key was seen before, return the stored one instead.

    Returns (event, created). Safe under concurrent writers: the unique key decides, and
    the loser of a race gets the winner's row.
    """
    if occurred_at.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware")
    values = (
        int(type),
        occurred_at,
        _pk(contact),
        _pk(group),
        _pk(staff),
        _pk(channel),
        _pk(campaign),
        amount,
        Jsonb(payload) if payload is not None else None,
        event_key(key),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_TABLE} ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
            "ON CONFLICT (key) DO NOTHING RETURNING id",
            values,
        )
        inserted = cursor.fetchone()
    if inserted:
        # The row holds exactly what was just written: no need to read it back.
        event = Event(
            id=inserted[0],
            type=int(type),
            occurred_at=occurred_at,
            contact_id=values[2],
            group_id=values[3],
            staff_id=values[4],
            channel_id=values[5],
            campaign_id=values[6],
            amount=amount,
            payload=payload,
            key=values[-1],
        )
        event._state.adding = False
        event._state.db = connection.alias
        return event, True
    # The key is taken: by a committed row, or by a concurrent writer whose commit the
    # INSERT above waited for. Either way the row is visible now.
    return Event.objects.get(key=values[-1]), False


def _copy_rows(rows: Iterable[EventRow]) -> Iterator[tuple]:
    for row in rows:
        if not row.key:
            raise ValueError(f"event {row!r} has no idempotency key")
        if row.occurred_at.tzinfo is None:
            raise ValueError(f"event {row.key!r}: occurred_at must be timezone-aware")
        yield (
            int(row.type),
            row.occurred_at,
            row.contact_id,
            row.group_id,
            row.staff_id,
            row.channel_id,
            row.campaign_id,
            row.amount,
            row.payload,
            row.key,
        )


def _load_batch(batch: list[tuple]) -> int:
    """COPY one batch into a staging table, then move the unseen keys into the log."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS analytics_event_stage ("
            " type smallint, occurred_at timestamptz, contact_id bigint, group_id bigint,"
            " staff_id bigint, channel_id bigint, campaign_id bigint, amount bigint,"
            " payload jsonb, key text) ON COMMIT DROP"
        )
        # Within a caller's transaction the table outlives one batch.
        cursor.execute("TRUNCATE analytics_event_stage")
        with cursor.cursor.copy(
            f"COPY analytics_event_stage ({', '.join(_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(_COPY_TYPES)
            for values in batch:
                copy.write_row(values)
        # Keys in sorted order: two loaders with overlapping keys then take their locks in
        # the same order and cannot deadlock. A key repeated inside the batch, or already
        # stored, is skipped by ON CONFLICT.
        cursor.execute(
            f"INSERT INTO {_TABLE} ({', '.join(_COLUMNS)}) "
            f"SELECT {', '.join(_COLUMNS[:-1])}, {_KEY_SQL} AS hashed"
            " FROM analytics_event_stage ORDER BY hashed "
            "ON CONFLICT (key) DO NOTHING"
        )
        return cursor.rowcount


def record_many(rows: Iterable[EventRow], *, batch_size: int = BULK_BATCH_SIZE) -> int:
    """Load many events fast (COPY), with the same idempotency as `record`.

    Each batch commits on its own unless the caller holds a transaction, so an interrupted
    load can simply be run again. Returns the number of events actually added.
    """
    added = 0
    values = _copy_rows(rows)
    while batch := list(islice(values, batch_size)):
        added += _load_batch(batch)
    return added


def record_selected(select_sql: str, params: dict | tuple = ()) -> int:
    """Record the events a query yields, without bringing them to Python: for facts that
    already sit in our tables (e.g. deliveries the planner just wrote), by the thousand.

    The query must yield the columns of `EventRow` in COPY order (type, occurred_at,
    contact_id, group_id, staff_id, channel_id, campaign_id, amount, payload, key), the key
    as text. Same idempotency as `record`. Returns the number of events actually added.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_TABLE} ({', '.join(_COLUMNS)}) "
            f"SELECT {', '.join(_COLUMNS[:-1])}, {_KEY_SQL} AS hashed"
            f" FROM ({select_sql}) AS selected ({', '.join(_COLUMNS)}) ORDER BY hashed "
            "ON CONFLICT (key) DO NOTHING",
            params,
        )
        return cursor.rowcount
