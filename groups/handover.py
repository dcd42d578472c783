"""Leaver transfer (离职继承): a resigned staff member's customers and groups go to successors.

WeCom takes the customers over after about 24 hours (a customer may refuse) and hands the
groups over at once. A Handover row keeps WeCom's answer per customer and per group; a poll
(groups.tasks.poll_handover) moves each follow relation once WeCom reports it done.
"""

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from analytics.events import record
from analytics.models import EventType
from contacts.models import Follow, Staff
from groups.models import Group, Handover
from groups.services import group_owner_transfer
from wecom import gateway
from wecom.errors import WeComError

# Per-customer and per-group states kept in Handover.customers / Handover.groups.
WAITING, DONE, REFUSED, FAILED = "waiting", "done", "refused", "failed"
ADD_WAY_ASSIGNED = 202  # WeCom's add_way for "assigned by an administrator"

# WeCom's transfer_result status codes and what they mean for the customer. Reasons are
# stored untranslated (English msgids) and translated when shown.
TRANSFER_DONE, TRANSFER_WAITING = 1, 2
TRANSFER_OUTCOMES = {
    3: (REFUSED, gettext_noop("The customer refused the transfer.")),
    4: (FAILED, gettext_noop("The successor has reached WeCom's customer limit.")),
    5: (FAILED, gettext_noop("WeCom has no record of this transfer.")),
}
NO_ANSWER = gettext_noop("WeCom did not answer.")


def staff_resign(*, staff: Staff, resigned_at: datetime, by=None) -> bool:
    """Mark a staff member resigned (once), with the STAFF_RESIGNED event."""
    with transaction.atomic():
        staff = Staff.objects.select_for_update().get(pk=staff.pk)
        if staff.status == Staff.Status.RESIGNED:
            return False
        staff.status = Staff.Status.RESIGNED
        staff.resigned_at = resigned_at
        staff.save(update_fields=["status", "resigned_at"])
        record(
            type=EventType.STAFF_RESIGNED,
            occurred_at=resigned_at,
            key=f"staff-resigned:{staff.userid}:{resigned_at.timestamp():.0f}",
            staff=staff,
            payload={"by": by.get_username()} if by is not None else None,
        )
    return True


def _check(*, leaver: Staff, successors: dict[str, Staff | None]) -> None:
    """Successors by form field; the leaver must have no handover still waiting."""
    errors = {}
    for field, successor in successors.items():
        if successor is None:
            continue
        if successor.pk == leaver.pk:
            errors[field] = _("The successor must be someone other than the leaver.")
        elif successor.status != Staff.Status.ACTIVE:
            errors[field] = _("The successor has resigned too; choose an active staff member.")
    if Handover.objects.filter(handover_staff=leaver, status=Handover.Status.PENDING).exists():
        errors["handover_staff"] = _(
            "A handover of this staff member is still waiting for WeCom; let it finish first."
        )
    if errors:
        raise ValidationError(errors)


def _customers_transfer(
    *, leaver: Staff, successor: Staff, follows: list[Follow]
) -> tuple[dict, bool]:
    """Ask WeCom, 100 at a time; returns (entry per customer, whether WeCom took any call)."""
    entries, reached = {}, False
    chunks = list(gateway.batched(follows, gateway.MAX_TRANSFER_CUSTOMERS))
    for number, chunk in enumerate(chunks):
        names = {f.contact.external_userid: f.contact.name for f in chunk}
        try:
            results = gateway.customers_transfer(
                handover_userid=leaver.userid,
                takeover_userid=successor.userid,
                external_userids=list(names),
                resigned=True,
            )
        except WeComError as exc:
            if not reached:
                raise
            # WeCom took earlier calls: what it took stays asked; the rest is marked failed.
            for rest in chunks[number:]:
                for follow in rest:
                    entries[follow.contact.external_userid] = _customer_entry(
                        follow, FAILED, reason=str(exc)
                    )
            break
        reached = True
        answered = {r.external_userid: r for r in results}
        for follow in chunk:
            answer = answered.get(follow.contact.external_userid)
            if answer is None:
                entry = _customer_entry(follow, FAILED, reason=NO_ANSWER)
            elif answer.error_code:
                entry = _customer_entry(follow, FAILED, errcode=answer.error_code)
            else:
                entry = _customer_entry(follow, WAITING)
            entries[follow.contact.external_userid] = entry
    return entries, reached


def _customer_entry(follow: Follow, status: str, *, reason: str = "", errcode: int = 0) -> dict:
    return {
        "contact_id": follow.contact_id,
        "name": follow.contact.name,
        "status": status,
        "errcode": errcode,
        "reason": reason,
        "taken_over_at": None,
    }


def _groups_transfer(*, successor: Staff, groups: list[Group]) -> tuple[dict, bool]:
    entries, reached = {}, False
    chunks = list(gateway.batched(groups, gateway.MAX_TRANSFER_GROUPS))
    for number, chunk in enumerate(chunks):
        try:
            failed = gateway.groups_transfer(
                chat_ids=[g.chat_id for g in chunk], new_owner=successor.userid
            )
        except WeComError as exc:
            if not reached:
                raise
            for rest in chunks[number:]:
                for group in rest:
                    entries[group.chat_id] = _group_entry(group, FAILED, reason=str(exc))
            break
        reached = True
        refused = {f.chat_id: f for f in failed}
        for group in chunk:
            answer = refused.get(group.chat_id)
            if answer is None:
                entries[group.chat_id] = _group_entry(group, DONE)
            else:
                entries[group.chat_id] = _group_entry(
                    group, FAILED, reason=answer.message, errcode=answer.error_code
                )
    return entries, reached


def _group_entry(group: Group, status: str, *, reason: str = "", errcode: int = 0) -> dict:
    return {
        "group_id": group.pk,
        "name": group.name,
        "status": status,
        "errcode": errcode,
        "reason": reason,
    }


def handover_status(handover: Handover) -> str:
    """Waiting while any customer waits; then done, failed (nothing moved) or partly done."""
    states = [e["status"] for e in handover.customers.values()]
    states += [e["status"] for e in handover.groups.values()]
    if WAITING in states:
        return Handover.Status.PENDING
    if all(state == DONE for state in states):
        return Handover.Status.DONE
    if DONE not in states:
        return Handover.Status.FAILED
    return Handover.Status.PARTLY


def _status_save(handover: Handover, *, now: datetime, fields: list[str]) -> None:
    handover.status = handover_status(handover)
    if handover.status != Handover.Status.PENDING and handover.finished_at is None:
        handover.finished_at = now
    handover.save(update_fields=[*fields, "status", "finished_at"])


def handover_start(
    *,
    leaver: Staff,
    successor: Staff,
    group_successor: Staff | None = None,
    by=None,
    now: datetime | None = None,
) -> Handover:
    """Mark the leaver resigned and ask WeCom to pass their customers and groups on.

    Customers go to `successor`, groups to `group_successor` (or `successor`). Groups change
    owner here at once for those WeCom accepted; customers wait for WeCom (see handover_poll).
    If WeCom refuses the very first call, a ValidationError says why and nothing is saved;
    once it has taken a call, what followed is kept, failures included.
    """
    now = now or timezone.now()
    _check(
        leaver=leaver,
        successors={"takeover_staff": successor, "group_takeover_staff": group_successor},
    )
    group_successor = group_successor or successor
    with transaction.atomic():
        # One handover per leaver at a time: a second manager waits here, then sees the first.
        leaver = Staff.objects.select_for_update().get(pk=leaver.pk)
        _check(leaver=leaver, successors={})
        follows = list(
            Follow.objects.filter(
                staff=leaver, deleted_by_staff_at__isnull=True, deleted_by_contact_at__isnull=True
            )
            .select_related("contact")
            .order_by("pk")
        )
        groups = list(
            Group.objects.filter(owner=leaver, dismissed_at__isnull=True)
            .select_related("owner")
            .order_by("pk")
        )
        customers, reached = {}, False
        try:
            if follows:
                customers, reached = _customers_transfer(
                    leaver=leaver, successor=successor, follows=follows
                )
            group_entries = {}
            if groups:
                try:
                    group_entries, _groups_reached = _groups_transfer(
                        successor=group_successor, groups=groups
                    )
                except WeComError as exc:
                    if not reached:
                        raise
                    group_entries = {
                        g.chat_id: _group_entry(g, FAILED, reason=str(exc)) for g in groups
                    }
        except WeComError as exc:
            raise ValidationError(
                _("WeCom refused the handover: %(error)s. Nothing was changed.") % {"error": exc}
            ) from None

        staff_resign(staff=leaver, resigned_at=now, by=by)
        handover = Handover.objects.create(
            handover_staff=leaver,
            takeover_staff=successor,
            group_takeover_staff=group_successor if group_successor != successor else None,
            resigned=True,
            customers=customers,
            groups=group_entries,
            created_by=by,
            checked_at=now,
        )
        for group in groups:
            if group_entries[group.chat_id]["status"] == DONE:
                group_owner_transfer(
                    group=group,
                    successor=group_successor,
                    occurred_at=now,
                    key=f"handover:{handover.pk}:group:{group.chat_id}",
                    via="handover",
                )
        _status_save(handover, now=now, fields=[])
    return handover


def follow_transfer(
    *, follow: Follow, successor: Staff, taken_over_at: datetime, key: str, handover_id: int
) -> Follow:
    """WeCom finished moving a customer: the successor follows them as the leaver did.

    The successor's relation gets the leaver's remark, description and channel; the leaver's
    is ended (deleted by staff) rather than removed, so the history stays.
    """
    with transaction.atomic():
        follow = Follow.objects.select_for_update().select_related("staff").get(pk=follow.pk)
        kept = {
            "remark": follow.remark,
            "description": follow.description,
            "added_at": taken_over_at,
            "add_way": ADD_WAY_ASSIGNED,
            "state": follow.state,
            "channel_id": follow.channel_id,
        }
        taken, created = Follow.objects.get_or_create(
            contact_id=follow.contact_id, staff=successor, defaults=kept
        )
        if not created and not taken.is_active:
            for name, value in kept.items():
                setattr(taken, name, value)
            taken.deleted_by_staff_at = taken.deleted_by_contact_at = None
            taken.save()
        if follow.deleted_by_staff_at is None:
            follow.deleted_by_staff_at = taken_over_at
            follow.save(update_fields=["deleted_by_staff_at"])
        record(
            type=EventType.CONTACT_TRANSFERRED,
            occurred_at=taken_over_at,
            key=key,
            contact=follow.contact_id,
            staff=successor,
            payload={
                "from": follow.staff.userid,
                "to": successor.userid,
                "handover": handover_id,
            },
        )
    return taken


def handover_poll(*, handover: Handover, now: datetime | None = None) -> Handover:
    """Ask WeCom how the waiting customers' transfers went and apply what finished.

    Safe to run any number of times: a customer already done is not moved again.
    """
    now = now or timezone.now()
    if not any(e["status"] == WAITING for e in handover.customers.values()):
        with transaction.atomic():
            handover = Handover.objects.select_for_update().get(pk=handover.pk)
            _status_save(handover, now=now, fields=[])
        return handover
    leaver, successor = handover.handover_staff, handover.takeover_staff
    results = gateway.customers_transfer_result(
        handover_userid=leaver.userid, takeover_userid=successor.userid, resigned=handover.resigned
    )
    # WeCom lists every transfer between the two; the last one per customer is the newest.
    latest = {r.external_userid: r for r in results}
    with transaction.atomic():
        handover = Handover.objects.select_for_update().get(pk=handover.pk)
        follows = {
            f.contact.external_userid: f
            for f in Follow.objects.filter(
                staff=leaver, contact__external_userid__in=list(handover.customers)
            ).select_related("contact")
        }
        for external_userid, entry in handover.customers.items():
            result = latest.get(external_userid)
            if entry["status"] != WAITING or result is None:
                continue
            if result.status == TRANSFER_DONE:
                taken_over_at = result.taken_over_at or now
                follow = follows.get(external_userid)
                if follow is not None:
                    follow_transfer(
                        follow=follow,
                        successor=successor,
                        taken_over_at=taken_over_at,
                        key=f"handover:{handover.pk}:customer:{external_userid}",
                        handover_id=handover.pk,
                    )
                entry.update(status=DONE, taken_over_at=taken_over_at.isoformat())
            elif result.status in TRANSFER_OUTCOMES:
                status, reason = TRANSFER_OUTCOMES[result.status]
                entry.update(status=status, reason=reason)
        handover.checked_at = now
        _status_save(handover, now=now, fields=["customers", "checked_at"])
    return handover
