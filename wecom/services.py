"""Writes of the WeCom boundary: storing callbacks once and applying them through handlers."""

import hashlib
import logging

from django.db import connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from wecom.events import CallbackMessage, handler_for, kind_of
from wecom.models import Callback

logger = logging.getLogger(__name__)


def callback_store(*, xml: str, fields: dict) -> tuple[int, bool]:
    """Keep a verified callback once; WeCom's retries of the same message find the first.

    Returns (callback id, whether it still waits to be applied). One statement on the hot
    path: the webhook must answer within WeCom's 5 s even under a burst.
    """
    key = hashlib.sha256(xml.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Callback._meta.db_table}"
            " (dedupe_key, kind, message, received_at, status, attempts, error)"
            " VALUES (%s, %s, %s, now(), %s, 0, '')"
            " ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
            [key, kind_of(fields), Jsonb(fields), Callback.Status.PENDING],
        )
        inserted = cursor.fetchone()
    if inserted:
        return inserted[0], True
    pk, status = Callback.objects.values_list("pk", "status").get(dedupe_key=key)
    return pk, status == Callback.Status.PENDING


def callback_apply(callback_id: int) -> str:
    """Apply one stored callback through its handler, once. Returns the resulting status.

    The handler runs inside the transaction that marks the callback applied, under a row
    lock: a second worker waits, then finds it done. A failing handler changes nothing.
    """
    with transaction.atomic():
        callback = Callback.objects.select_for_update().filter(pk=callback_id).first()
        if callback is None or callback.status != Callback.Status.PENDING:
            return callback.status if callback else "missing"
        handler = handler_for(callback.kind)
        if handler is None:
            callback.status = Callback.Status.IGNORED
        else:
            try:
                with transaction.atomic():
                    handler(
                        CallbackMessage(
                            kind=callback.kind, fields=callback.message, key=callback.dedupe_key
                        )
                    )
            except Exception as exc:
                logger.exception("callback %s (%s) failed", callback.pk, callback.kind)
                callback.attempts += 1
                callback.error = f"{type(exc).__name__}: {exc}"
                callback.save(update_fields=["attempts", "error"])
                raise
            callback.status = Callback.Status.APPLIED
        callback.applied_at = timezone.now()
        callback.attempts += 1
        callback.error = ""
        callback.save(update_fields=["status", "applied_at", "attempts", "error"])
        return callback.status


def callback_give_up(callback_id: int, *, error: str) -> None:
    Callback.objects.filter(pk=callback_id, status=Callback.Status.PENDING).update(
        status=Callback.Status.FAILED, error=error
    )


def pending_callback_ids(*, older_than_seconds: int = 60, limit: int = 1000) -> list[int]:
    """Callbacks stored but not applied: the broker was down, or a worker died mid-way."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    return list(
        Callback.objects.filter(status=Callback.Status.PENDING, received_at__lt=cutoff)
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
