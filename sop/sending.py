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
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from contacts.models import Follow, Staff
from sop.content import as_wecom, render
from sop.models import Delivery, MassMessage, Plan, SkipReason
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
    created = []
    for senders in _sender_chunks(now):
        with transaction.atomic():
            due = list(
                Delivery.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(status=Delivery.Status.PLANNED, due_at__lte=now)
                .filter(Q(sender__in=[s for s in senders if s]) | _no_sender(senders))
                .select_related("plan", "step__content", "sender", "group", "contact__tier")
            )
            if due:
                created += _batch(due, now=now)
    return created


def _sender_chunks(now: datetime) -> list[list[int | None]]:
    """Senders with due deliveries, packed into chunks of about DISPATCH_CHUNK deliveries.

    A sender's due deliveries are always batched together, so each staff member gets as
    few WeCom tasks to confirm as their content allows."""
    due = (
        Delivery.objects.filter(status=Delivery.Status.PLANNED, due_at__lte=now)
        .values_list("sender_id")
        .annotate(n=Count("id"))
        .order_by("sender_id")
    )
    chunks, chunk, size = [], [], 0
    for sender_id, count in due:
        if chunk and size + count > DISPATCH_CHUNK:
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append(sender_id)
        size += count
    if chunk:
        chunks.append(chunk)
    return chunks


def _no_sender(senders: list[int | None]) -> Q:
    return Q(sender__isnull=True) if None in senders else Q(pk__in=[])


def _batch(due: list[Delivery], *, now: datetime) -> list[int]:
    following = _active_follows([d for d in due if d.contact_id])
    skips: dict[int, str] = {}
    batches: dict[tuple, list[Delivery]] = defaultdict(list)
    for d in due:
        reason = _why_not(d, following)
        if reason:
            skips[d.pk] = reason
            continue
        content = d.step.content
        target = d.group or d.contact
        text = render(
            content.text,
            name=target.name,
            tier=d.contact.tier.name if d.contact_id and d.contact.tier_id else "",
            coupon=d.step.coupon_code,
        )
        chat_type = MassMessage.ChatType.GROUP if d.group_id else MassMessage.ChatType.SINGLE
        batches[(d.sender_id, chat_type, content.pk, text)].append(d)

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
                    attachments=part[0].step.content.attachments,
                    queued_at=now,
                )
            )
            assignment.append(part)
    MassMessage.objects.bulk_create(messages)
    pairs = [(d.pk, m.pk) for m, part in zip(messages, assignment, strict=True) for d in part]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Delivery._meta.db_table} d SET status = 'queued', message_id = v.message,"
            " updated_at = %s FROM (SELECT unnest(%s::bigint[]) AS id,"
            " unnest(%s::bigint[]) AS message) v WHERE d.id = v.id",
            [now, [p[0] for p in pairs], [p[1] for p in pairs]],
        )
        if skips:
            _finish_deliveries(cursor, skips, status=Delivery.Status.SKIPPED, now=now)
    return [m.pk for m in messages]


def _active_follows(deliveries: list[Delivery]) -> set[tuple[int, int]]:
    pairs = Follow.objects.filter(
        contact_id__in={d.contact_id for d in deliveries},
        deleted_by_staff_at__isnull=True,
        deleted_by_contact_at__isnull=True,
    ).values_list("contact_id", "staff_id")
    return set(pairs)


def _why_not(d: Delivery, following: set[tuple[int, int]]) -> str:
    if d.plan.status != Plan.Status.ACTIVE:
        return SkipReason.PLAN_PAUSED
    if d.sender is None or d.sender.status != Staff.Status.ACTIVE:
        return SkipReason.NO_SENDER
    if d.group_id:
        return SkipReason.GROUP_GONE if d.group.dismissed_at else ""
    if d.contact.opted_out:
        return SkipReason.OPTED_OUT
    if (d.contact_id, d.sender_id) not in following:
        return SkipReason.BLOCKED
    return ""


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
