"""Sending planned deliveries through WeCom exactly once, and following them up.

Due deliveries are batched into mass messages (one WeCom task per sender and content, up
to WeCom's receiver cap). The database, not the broker, is the source of truth: a message
is queued on the broker as a hint, and `requeue_stuck` puts it back if the broker lost it.
A message is sent under a PostgreSQL advisory lock; it is marked `sending` before the call
and gets its msgid right after, and a message found `sending` (its worker died mid-call)
first asks WeCom whether the task exists before sending again. A message with a msgid is
never sent again.
"""

import logging
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F
from django.utils import timezone

from contacts.models import Contact, Follow, MemberTier, Staff
from groups.models import Group
from sop.content import as_wecom, has_variables, render
from sop.models import Delivery, MassMessage, Plan, SkipReason, Step
from sop.planner import record_delivery_events
from wecom import gateway
from wecom.errors import WeComError, WeComUnavailable

logger = logging.getLogger(__name__)

DISPATCH_CHUNK = 5_000
SEND_LOCK = 0x5E_4D  # advisory lock namespace for mass messages
REQUEUE_AFTER = timedelta(minutes=5)
REMINDS_PER_DAY = 3  # WeCom allows 3 reminders per mass message per 24 h
RECEIPT_OUTCOME = {  # get_groupmsg_send_result status → what became of the delivery
    1: (Delivery.Status.DELIVERED, ""),
    2: (Delivery.Status.FAILED, SkipReason.NOT_FRIEND),
    3: (Delivery.Status.FAILED, SkipReason.RECEIVER_LIMIT),
}


# --- due deliveries into mass messages --------------------------------------------------


def dispatch_due(now: datetime | None = None) -> list[int]:
    """Batch every due delivery into mass messages; returns the new messages' ids.

    Checks again what may have changed since planning (plan paused, customer opted out or
    gone, group dismissed, sender resigned) and records why a delivery is dropped.
    """
    now = now or timezone.now()
    chunks, step_ids = _sender_chunks(now)
    steps = _steps(step_ids)
    created = []
    for senders in chunks:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                _DUE_SQL,
                {
                    "now": now,
                    "senders": [s for s in senders if s],
                    "no_sender": None in senders,
                    "plain": [pk for pk, step in steps.items() if not step.variable],
                },
            )
            due = cursor.fetchall()
            if due:
                missing = {row[4] for row in due} - steps.keys()
                if missing:  # planned since the chunks were counted
                    steps.update(_steps(missing))
                created += _batch(cursor, due, steps, now=now)
    return created


def _sender_chunks(now: datetime) -> tuple[list[list[int | None]], set[int]]:
    """Senders with due deliveries, packed into chunks of about DISPATCH_CHUNK deliveries,
    and the steps those deliveries belong to.

    A sender's due deliveries are always batched together, so each staff member gets as
    few WeCom tasks to confirm as their content allows."""
    due = (
        Delivery.objects.filter(status=Delivery.Status.PLANNED, due_at__lte=now)
        .values_list("sender_id", "step_id")
        .annotate(n=Count("id"))
        .order_by("sender_id")
    )
    per_sender: dict[int | None, int] = {}
    step_ids = set()
    for sender_id, step_id, count in due:
        per_sender[sender_id] = per_sender.get(sender_id, 0) + count
        step_ids.add(step_id)
    chunks, chunk, size = [], [], 0
    for sender_id, count in per_sender.items():
        if chunk and size + count > DISPATCH_CHUNK:
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append(sender_id)
        size += count
    if chunk:
        chunks.append(chunk)
    return chunks, step_ids


@dataclass(frozen=True)
class _StepContent:
    """What a message needs from a delivery's step: its content, and the coupon for it."""

    content_id: int
    text: str
    attachments: list
    coupon: str
    variable: bool  # the text has variables: render it for each receiver


def _steps(step_ids) -> dict[int, _StepContent]:
    rows = Step.objects.filter(pk__in=step_ids).values_list(
        "pk", "content_id", "content__text", "content__attachments", "coupon_code"
    )
    return {
        pk: _StepContent(content_id, text, attachments, coupon, has_variables(text))
        for pk, content_id, text, attachments, coupon in rows
    }


# Due deliveries of some senders, locked (another dispatcher skips them), each with the
# reason it may no longer go out ('' when it may), in the order _why_not used to check:
# plan not live, no active sender, group dismissed, customer opted out, sender no longer
# following the customer. Receiver names and tiers only for content with variables.
# The lookups are LATERAL … LIMIT 1 so each is an index probe per delivery: a chunk is a
# few thousand rows, and hash joins would read every group, customer and follow each time.
_DUE_SQL = f"""
    SELECT d.id, d.sender_id, d.group_id, d.contact_id, d.step_id,
        CASE
            WHEN p.status IS DISTINCT FROM '{Plan.Status.ACTIVE}' THEN '{SkipReason.PLAN_PAUSED}'
            WHEN st.status IS DISTINCT FROM '{Staff.Status.ACTIVE}' THEN '{SkipReason.NO_SENDER}'
            WHEN d.group_id IS NOT NULL THEN
                CASE WHEN g.dismissed_at IS NOT NULL THEN '{SkipReason.GROUP_GONE}' ELSE '' END
            WHEN c.opted_out THEN '{SkipReason.OPTED_OUT}'
            WHEN f.following IS NULL THEN '{SkipReason.BLOCKED}'
            ELSE ''
        END,
        CASE WHEN d.step_id <> ALL(%(plain)s) THEN
            CASE WHEN d.group_id IS NOT NULL THEN g.name ELSE c.name END
        END,
        CASE WHEN d.step_id <> ALL(%(plain)s) THEN c.tier END
    FROM {Delivery._meta.db_table} d
    LEFT JOIN {Plan._meta.db_table} p ON p.id = d.plan_id
    LEFT JOIN {Staff._meta.db_table} st ON st.id = d.sender_id
    LEFT JOIN LATERAL (
        SELECT g.name, g.dismissed_at FROM {Group._meta.db_table} g WHERE g.id = d.group_id
        LIMIT 1
    ) g ON TRUE
    LEFT JOIN LATERAL (
        SELECT c.name, c.opted_out, t.name AS tier FROM {Contact._meta.db_table} c
        LEFT JOIN {MemberTier._meta.db_table} t ON t.id = c.tier_id
        WHERE c.id = d.contact_id
        LIMIT 1
    ) c ON TRUE
    LEFT JOIN LATERAL (
        SELECT TRUE AS following FROM {Follow._meta.db_table} f
        WHERE f.contact_id = d.contact_id AND f.staff_id = d.sender_id
          AND f.deleted_by_staff_at IS NULL AND f.deleted_by_contact_at IS NULL
        LIMIT 1
    ) f ON TRUE
    WHERE d.status = 'planned' AND d.due_at <= %(now)s
      AND (d.sender_id = ANY(%(senders)s) OR (%(no_sender)s AND d.sender_id IS NULL))
    ORDER BY d.id
    FOR UPDATE OF d SKIP LOCKED
"""


def _batch(cursor, due: list[tuple], steps: dict[int, _StepContent], *, now: datetime) -> list[int]:
    skips: dict[int, str] = {}
    batches: dict[tuple, list[int]] = defaultdict(list)
    for pk, sender_id, group_id, _contact_id, step_id, reason, name, tier in due:
        if reason:
            skips[pk] = reason
            continue
        step = steps[step_id]
        text = step.text or ""
        if step.variable:
            text = render(step.text, name=name or "", tier=tier or "", coupon=step.coupon)
        chat_type = MassMessage.ChatType.GROUP if group_id else MassMessage.ChatType.SINGLE
        batches[(sender_id, chat_type, step.content_id, text)].append(pk)

    attachments = {step.content_id: step.attachments for step in steps.values()}
    messages, assignment = [], []
    for (sender_id, chat_type, content_id, text), deliveries in batches.items():
        size = (
            gateway.MAX_GROUP_RECEIVERS
            if chat_type == MassMessage.ChatType.GROUP
            else gateway.MAX_SINGLE_RECEIVERS
        )
        for part in gateway.batched(deliveries, size):
            messages.append(
                MassMessage(
                    sender_id=sender_id,
                    chat_type=chat_type,
                    content_id=content_id,
                    text=text,
                    attachments=attachments[content_id],
                    queued_at=now,
                )
            )
            assignment.append(part)
    MassMessage.objects.bulk_create(messages)
    ids = [pk for part in assignment for pk in part]
    message_ids = [m.pk for m, part in zip(messages, assignment, strict=True) for _ in part]
    cursor.execute(
        f"UPDATE {Delivery._meta.db_table} d SET status = 'queued', message_id = v.message,"
        " updated_at = %s FROM (SELECT unnest(%s::bigint[]) AS id,"
        " unnest(%s::bigint[]) AS message) v WHERE d.id = v.id"
        # Said again as an array: PostgreSQL then finds the rows by their ids rather than
        # merge-joining along the whole ledger's primary key.
        " AND d.id = ANY(%s::bigint[])",
        [now, ids, message_ids, ids],
    )
    if skips:
        _finish_deliveries(cursor, skips, status=Delivery.Status.SKIPPED, now=now)
    return [m.pk for m in messages]


def _finish_deliveries(cursor, outcome: dict[int, str], *, status: str, now: datetime) -> None:
    """Set deliveries to `status` with a reason each, and log it."""
    ids = list(outcome)
    cursor.execute(
        f"UPDATE {Delivery._meta.db_table} d SET status = %s, reason = v.reason, updated_at = %s"
        " FROM (SELECT unnest(%s::bigint[]) AS id, unnest(%s::text[]) AS reason) v"
        " WHERE d.id = v.id",
        [status, now, ids, [outcome[i] for i in ids]],
    )
    record_delivery_events("SELECT unnest(%s::bigint[])", [ids])


# --- sending one mass message -----------------------------------------------------------


@contextmanager
def _send_lock(message_id: int):
    """Held while one worker sends a message; released by PostgreSQL if the worker dies."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [SEND_LOCK, message_id])
        locked = cursor.fetchone()[0]
        try:
            yield locked
        finally:
            if locked:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [SEND_LOCK, message_id])


def message_send(message_id: int) -> str:
    """Create the WeCom task for one mass message, once. Returns what happened.

    Raises a transient WeComError for the caller (the Celery task) to retry with backoff;
    a permanent refusal is recorded on the message and its deliveries.
    """
    with _send_lock(message_id) as locked:
        if not locked:
            return "busy"  # another worker is sending it right now
        message = MassMessage.objects.select_related("sender").get(pk=message_id)
        if message.msgid or message.status not in (
            MassMessage.Status.QUEUED,
            MassMessage.Status.SENDING,
        ):
            return "done"
        receivers = _receivers(message)
        if message.status == MassMessage.Status.SENDING:
            found = _created_before(message)
            if found:
                _mark_sent(message, found, failed=(), receivers=receivers)
                return "recovered"
        if not receivers:
            MassMessage.objects.filter(pk=message.pk).update(status=MassMessage.Status.FINISHED)
            return "empty"
        now = timezone.now()
        MassMessage.objects.filter(pk=message.pk).update(
            status=MassMessage.Status.SENDING, send_started_at=now, attempts=F("attempts") + 1
        )
        try:
            task = gateway.mass_message_send(
                sender=message.sender.userid,
                content=as_wecom(message.text, message.attachments),
                **{
                    "chat_ids" if message.chat_type == "group" else "external_userids": list(
                        receivers
                    )
                },
            )
        except WeComError as exc:
            if exc.transient:
                if not isinstance(exc, WeComUnavailable):
                    # WeCom answered "not now": nothing was created.
                    MassMessage.objects.filter(pk=message.pk).update(
                        status=MassMessage.Status.QUEUED, error=str(exc)
                    )
                # Unavailable may mean the call went through unanswered: stay `sending`,
                # so the retry asks WeCom first.
                raise
            _mark_failed(message, str(exc), receivers=receivers)
            return "failed"
        _mark_sent(message, task.msgid, failed=task.failed, receivers=receivers)
        return "sent"


def _receivers(message: MassMessage) -> dict[str, int]:
    """WeCom id of each receiver → its delivery id."""
    rows = message.deliveries.filter(status=Delivery.Status.QUEUED).values_list(
        "pk", "group__chat_id", "contact__external_userid"
    )
    return {chat_id or external_userid: pk for pk, chat_id, external_userid in rows}


def _created_before(message: MassMessage) -> str | None:
    """The msgid of a task WeCom created for this message on an earlier, unanswered call."""
    started = message.send_started_at or message.created_at
    candidates = gateway.mass_messages_created(
        sender=message.sender.userid,
        chat_type=message.chat_type,
        start=started - timedelta(minutes=5),
        end=timezone.now() + timedelta(minutes=5),
    )
    taken = set(
        MassMessage.objects.filter(msgid__in=[c.msgid for c in candidates]).values_list(
            "msgid", flat=True
        )
    )
    for candidate in candidates:
        if (
            candidate.msgid not in taken
            and candidate.text == message.text
            and len(candidate.attachments) == len(message.attachments)
        ):
            logger.info("message %s was created before a crash: %s", message.pk, candidate.msgid)
            return candidate.msgid
    return None


def _mark_sent(message, msgid: str, *, failed, receivers: dict[str, int]) -> None:
    now = timezone.now()
    refused = {receivers[r]: SkipReason.WECOM_REFUSED for r in failed if r in receivers}
    with transaction.atomic(), connection.cursor() as cursor:
        MassMessage.objects.filter(pk=message.pk).update(
            status=MassMessage.Status.SENT, msgid=msgid, sent_at=now, error=""
        )
        sent = [pk for pk in receivers.values() if pk not in refused]
        _finish_deliveries(cursor, dict.fromkeys(sent, ""), status=Delivery.Status.SENT, now=now)
        if refused:
            _finish_deliveries(cursor, refused, status=Delivery.Status.FAILED, now=now)


def _mark_failed(message, error: str, *, receivers: dict[str, int]) -> None:
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        MassMessage.objects.filter(pk=message.pk).update(
            status=MassMessage.Status.FAILED, error=error[:1000]
        )
        _finish_deliveries(
            cursor,
            dict.fromkeys(receivers.values(), SkipReason.WECOM_REFUSED),
            status=Delivery.Status.FAILED,
            now=now,
        )


def requeue_stuck(now: datetime | None = None) -> list[int]:
    """Messages queued or mid-send for a while with no msgid: the broker lost them (a
    Redis flush) or their worker died. Returns the ids to queue again."""
    now = now or timezone.now()
    with transaction.atomic():
        stuck = list(
            MassMessage.objects.select_for_update(skip_locked=True)
            .filter(
                status__in=[MassMessage.Status.QUEUED, MassMessage.Status.SENDING],
                msgid__isnull=True,
                queued_at__lt=now - REQUEUE_AFTER,
            )
            .values_list("pk", flat=True)
        )
        MassMessage.objects.filter(pk__in=stuck).update(queued_at=now)
    return stuck


# --- following up: confirmations, results, reminders ------------------------------------


def messages_to_follow_up(now: datetime | None = None) -> list[int]:
    now = now or timezone.now()
    return list(
        MassMessage.objects.filter(
            status__in=[MassMessage.Status.SENT, MassMessage.Status.CONFIRMED],
        ).values_list("pk", flat=True)
    )


def message_follow_up(message_id: int, now: datetime | None = None) -> str:
    """Ask WeCom whether the sender confirmed and who received it; remind or give up."""
    now = now or timezone.now()
    message = MassMessage.objects.select_related("sender").get(pk=message_id)
    if message.status not in (MassMessage.Status.SENT, MassMessage.Status.CONFIRMED):
        return message.status
    confirmed = any(
        c.userid == message.sender.userid and c.sent
        for c in gateway.mass_message_confirmations(message.msgid)
    )
    if not confirmed:
        return _unconfirmed(message, now=now)
    results = gateway.mass_message_results(message.msgid, message.sender.userid)
    by_receiver = {
        chat_id or external_userid: pk
        for pk, chat_id, external_userid in message.deliveries.filter(
            status__in=[Delivery.Status.SENT, Delivery.Status.CONFIRMED]
        ).values_list("pk", "group__chat_id", "contact__external_userid")
    }
    outcomes: dict[str, dict[int, str]] = defaultdict(dict)
    for result in results:
        pk = by_receiver.get(result.chat_id or result.external_userid)
        if pk is not None and result.status in RECEIPT_OUTCOME:
            status, reason = RECEIPT_OUTCOME[result.status]
            outcomes[status][pk] = reason
    with transaction.atomic(), connection.cursor() as cursor:
        if message.status == MassMessage.Status.SENT:
            MassMessage.objects.filter(pk=message.pk).update(
                status=MassMessage.Status.CONFIRMED, confirmed_at=now
            )
            unconfirmed = list(
                message.deliveries.filter(status=Delivery.Status.SENT).values_list("pk", flat=True)
            )
            if unconfirmed:
                _finish_deliveries(
                    cursor,
                    dict.fromkeys(unconfirmed, ""),
                    status=Delivery.Status.CONFIRMED,
                    now=now,
                )
        for status, outcome in outcomes.items():
            _finish_deliveries(cursor, outcome, status=status, now=now)
        pending = message.deliveries.filter(
            status__in=[Delivery.Status.SENT, Delivery.Status.CONFIRMED]
        ).exists()
        MassMessage.objects.filter(pk=message.pk).update(
            polled_at=now,
            **({} if pending else {"status": MassMessage.Status.FINISHED}),
        )
    return "confirmed" if pending else "finished"


def _unconfirmed(message: MassMessage, *, now: datetime) -> str:
    age = now - (message.sent_at or message.created_at)
    if age > timedelta(hours=settings.SOP_CONFIRM_WITHIN_HOURS):
        waiting = list(
            message.deliveries.filter(status=Delivery.Status.SENT).values_list("pk", flat=True)
        )
        with transaction.atomic(), connection.cursor() as cursor:
            MassMessage.objects.filter(pk=message.pk).update(
                status=MassMessage.Status.FINISHED, polled_at=now
            )
            _finish_deliveries(
                cursor,
                dict.fromkeys(waiting, SkipReason.NOT_CONFIRMED),
                status=Delivery.Status.FAILED,
                now=now,
            )
        return "expired"
    remind_after = timedelta(minutes=settings.SOP_REMIND_AFTER_MINUTES)
    recent = [t for t in message.reminded_at if t > now - timedelta(hours=24)]
    last = max(message.reminded_at, default=message.sent_at or message.created_at)
    if len(recent) < REMINDS_PER_DAY and now - last >= remind_after:
        try:
            gateway.mass_message_remind(message.msgid)
        except WeComError as exc:
            logger.warning("reminder for %s refused: %s", message.msgid, exc)
        else:
            MassMessage.objects.filter(pk=message.pk).update(
                reminded_at=[*message.reminded_at, now], polled_at=now
            )
            return "reminded"
    MassMessage.objects.filter(pk=message.pk).update(polled_at=now)
    return "waiting"
