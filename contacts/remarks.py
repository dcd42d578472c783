"""An operator's own changes on customers: remarks (备注), assigning staff, bulk actions."""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import PermissionDenied
from django.db.models import TextChoices
from django.utils import timezone
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from analytics.events import EventRow, record_many
from analytics.models import EventType
from contacts.models import Contact, ContactNote, Follow, Staff, Tag
from contacts.selectors import active_follows, contacts_visible_to
from scrm.roles import can_write
from wecom import gateway
from wecom.errors import WeComError

logger = logging.getLogger(__name__)

NOTE_MAX_LENGTH = 2_000
# Transfers call WeCom within the request, at the shared rate limit of a few dozen calls a
# second (and WeCom takes a limited number of transfers a day): bigger sets must be
# narrowed first. Exports run as a background job and have no such cap.
BULK_MAX_CONTACTS = 500
# Tagging calls WeCom once per (follower, contact): up to this many contacts (about ten
# seconds of calls) are tagged within the request, more by a background job.
BULK_TAG_IN_REQUEST = 200
# A job tags at most this many (about an hour at the rate limit); beyond that, narrow.
BULK_TAG_MAX = 100_000


class RemarkError(ValueError):
    """Input we refuse; `field` names the input at fault."""

    def __init__(self, message: str, *, field: str):
        super().__init__(message)
        self.field = field


def _ensure_may_change(user, contact: Contact) -> None:
    if not can_write(user):
        raise PermissionDenied("Analysts have read-only access.")
    if not contacts_visible_to(user).filter(pk=contact.pk).exists():
        raise PermissionDenied("not your customer")


def _clean_note(kind: str, text: str) -> tuple[str, str]:
    if kind not in ContactNote.Kind.values:
        raise RemarkError(
            _t("Choose one of: %(kinds)s.") % {"kinds": ", ".join(ContactNote.Kind.values)},
            field="kind",
        )
    text = (text or "").strip()
    if not text:
        raise RemarkError(_t("Write the remark."), field="text")
    if len(text) > NOTE_MAX_LENGTH:
        raise RemarkError(
            _t("A remark is at most %(max)d characters.") % {"max": NOTE_MAX_LENGTH},
            field="text",
        )
    return kind, text


def contact_note_add(*, user, contact: Contact, kind: str, text: str) -> ContactNote:
    """A remark on a customer (identity, purchases, inquiries or preferences)."""
    _ensure_may_change(user, contact)
    kind, text = _clean_note(kind, text)
    return ContactNote.objects.create(contact=contact, kind=kind, text=text, author=user)


def contact_note_edit(*, user, note: ContactNote, kind: str, text: str) -> ContactNote:
    """Correct a remark; whoever may change the customer may correct it."""
    _ensure_may_change(user, note.contact)
    note.kind, note.text = _clean_note(kind, text)
    note.save(update_fields=["kind", "text"])
    return note


# --- bulk actions --------------------------------------------------------------------------


class BulkAction(TextChoices):
    TAG = "tag", _("Add tags")
    UNTAG = "untag", _("Remove tags")
    ASSIGN_STAFF = "assign_staff", _("Assign to staff member")
    EXPORT = "export", _("Export")


EXPORT_FORMATS = ("csv", "xlsx")


@dataclass
class BulkResult:
    """What a bulk action did: contacts changed, already so, refused (with WeCom's reason)."""

    action: str
    requested: int = 0
    done: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    # Ids that are no customer of the user's: reported without a name, which would leak.
    not_found: set[int] = field(default_factory=set)
    # Contacts handed to a background job (tagging above BULK_TAG_IN_REQUEST): the job's
    # result tells what became of them.
    queued: list[int] = field(default_factory=list)
    job: object | None = None  # scrm.models.Job of an export or of tagging many contacts

    def failures(self) -> list[tuple[int, str, str]]:
        """(contact id, name, reason) of each failure, for the page and the API."""
        named = [pk for pk in self.failed if pk not in self.not_found]
        names = dict(Contact.objects.filter(pk__in=named).values_list("pk", "name"))
        return [(pk, names.get(pk, ""), reason) for pk, reason in sorted(self.failed.items())]


def _not_found_reason() -> str:
    # The same words for "no such contact" and "not yours": an operator learns nothing.
    return _t("No such customer among yours.")


def contacts_assign_staff(
    *, user, contact_ids: list[int], staff: Staff, now: datetime | None = None
) -> BulkResult:
    """Make `staff` the customers' staff member by an in-service transfer (在职继承).

    WeCom decides who follows whom, so this asks WeCom to move each customer from their
    current staff member to `staff` (customers_transfer, resigned=False); WeCom finishes it
    within 24 hours unless the customer refuses, and the sync then moves the Follow. Each
    accepted request is recorded as CONTACT_TRANSFERRED (payload from/to, status "waiting").
    The current staff member is the user's own when they follow the customer (an operator
    handing over), else whoever added the customer first.
    """
    now = now or timezone.now()
    result = BulkResult(action=BulkAction.ASSIGN_STAFF, requested=len(contact_ids))
    if staff.status != Staff.Status.ACTIVE:
        raise RemarkError(_t("%(name)s has resigned.") % {"name": staff.name}, field="staff")
    own_staff = getattr(user, "staff", None)
    contacts = {
        c.pk: c
        for c in contacts_visible_to(user)
        .filter(pk__in=contact_ids)
        .only("pk", "external_userid", "name")
    }
    follows_by_contact: dict[int, list[Follow]] = defaultdict(list)
    for follow in (
        active_follows()
        .filter(contact_id__in=list(contacts))
        .select_related("staff")
        .order_by("added_at", "pk")
    ):
        follows_by_contact[follow.contact_id].append(follow)

    batches: dict[Staff, list[Contact]] = defaultdict(list)
    for pk in contact_ids:
        contact = contacts.get(pk)
        if contact is None:
            result.failed[pk] = _not_found_reason()
            result.not_found.add(pk)
            continue
        follows = follows_by_contact.get(pk, [])
        if any(f.staff_id == staff.pk for f in follows):
            result.unchanged.append(pk)
            continue
        # A resigned follower's customers go through the leaver transfer (离职继承) instead.
        current = [f for f in follows if f.staff.status == Staff.Status.ACTIVE]
        mine = [f for f in current if own_staff is not None and f.staff_id == own_staff.pk]
        handover = (mine or current or [None])[0]
        if handover is None:
            result.failed[pk] = _t("No active staff member follows this customer.")
            continue
        batches[handover.staff].append(contact)

    events = []
    day = timezone.localdate(now, timezone.get_default_timezone()).isoformat()
    for handover_staff, batch in batches.items():
        by_userid = {c.external_userid: c for c in batch}
        try:
            answers = gateway.customers_transfer(
                handover_userid=handover_staff.userid,
                takeover_userid=staff.userid,
                external_userids=list(by_userid),
                resigned=False,
            )
        except WeComError as exc:
            logger.warning("transfer %s → %s refused: %s", handover_staff, staff, exc)
            for contact in batch:
                result.failed[contact.pk] = _t("WeCom refused: %(error)s") % {"error": exc}
            continue
        answered = {a.external_userid: a for a in answers}
        for external_userid, contact in by_userid.items():
            answer = answered.get(external_userid)
            if answer is None or answer.error_code:
                code = answer.error_code if answer else "?"
                result.failed[contact.pk] = _t("WeCom refused the transfer (errcode %(code)s)") % {
                    "code": code
                }
                continue
            result.done.append(contact.pk)
            events.append(
                EventRow(
                    type=EventType.CONTACT_TRANSFERRED,
                    occurred_at=now,
                    # One request per customer, pair and day: a resubmitted form adds nothing.
                    key=f"transfer:onjob:{external_userid}:{handover_staff.userid}:{staff.userid}:{day}",
                    contact_id=contact.pk,
                    staff_id=staff.pk,
                    payload={
                        "from": handover_staff.userid,
                        "to": staff.userid,
                        "resigned": False,
                        "status": "waiting",
                        "by_user": user.pk,
                    },
                )
            )
    record_many(events)
    return result


def _tags(tag_ids) -> list[Tag]:
    ids = list(dict.fromkeys(tag_ids or []))
    if not ids:
        raise RemarkError(_t("Choose at least one tag."), field="tags")
    tags = list(Tag.objects.filter(pk__in=ids))
    missing = set(ids) - {t.pk for t in tags}
    if missing:
        raise RemarkError(
            _t("No tag with id %(ids)s.") % {"ids": ", ".join(map(str, sorted(missing)))},
            field="tags",
        )
    return tags


def contacts_bulk_act(
    *,
    user,
    action: str,
    contact_ids: list[int],
    tag_ids: list[int] = (),
    staff_id: int | None = None,
    fmt: str = "csv",
) -> BulkResult:
    """Tag, untag, assign staff or export many customers at once.

    Exports, and tagging more than BULK_TAG_IN_REQUEST customers, run as a background job
    (`result.job`); the rest is done before this returns. Only customers the user may see
    are touched; others are reported as not found. Analysts may export and nothing else.
    Raises RemarkError (naming the field) for bad input and PermissionDenied for a role that
    may not act; nothing is changed (and no job queued) in either case.
    """
    if action not in BulkAction.values:
        raise RemarkError(
            _t("Choose one of: %(actions)s.") % {"actions": ", ".join(BulkAction.values)},
            field="action",
        )
    if action != BulkAction.EXPORT and not can_write(user):
        raise PermissionDenied("Analysts have read-only access; they may only export.")
    contact_ids = list(dict.fromkeys(contact_ids))
    if not contact_ids:
        raise RemarkError(_t("No customers selected."), field="ids")
    limit = {
        BulkAction.ASSIGN_STAFF: BULK_MAX_CONTACTS,
        BulkAction.TAG: BULK_TAG_MAX,
        BulkAction.UNTAG: BULK_TAG_MAX,
    }.get(action)
    if limit is not None and len(contact_ids) > limit:
        raise RemarkError(
            _t("%(count)d customers selected; narrow the filter to at most %(max)d.")
            % {"count": len(contact_ids), "max": limit},
            field="ids",
        )
    visible = set(contacts_visible_to(user).filter(pk__in=contact_ids).values_list("pk", flat=True))
    hidden = [pk for pk in contact_ids if pk not in visible]
    allowed = [pk for pk in contact_ids if pk in visible]

    if action in (BulkAction.TAG, BulkAction.UNTAG):
        tags = _tags(tag_ids)
        result = BulkResult(action=action, requested=len(contact_ids))
        # The tagging engineer's service: WeCom first, then ours, per contact.
        from contacts.tags import contacts_tag, contacts_tag_job_start

        remove = action == BulkAction.UNTAG
        if len(allowed) > BULK_TAG_IN_REQUEST:
            # Checks every contact is the user's before queueing, so a refusal queues nothing.
            result.job = contacts_tag_job_start(
                user=user, contact_ids=allowed, tags=tags, remove=remove
            )
            result.queued = allowed
        elif allowed:
            tagged = contacts_tag(allowed, tags, by_user=user, remove=remove)
            result.done = list(tagged.changed)
            result.unchanged = list(tagged.unchanged)
            result.failed.update(tagged.failed)
    elif action == BulkAction.ASSIGN_STAFF:
        staff = Staff.objects.filter(pk=staff_id).first() if staff_id else None
        if staff is None:
            raise RemarkError(_t("Choose a staff member."), field="staff")
        result = contacts_assign_staff(user=user, contact_ids=allowed, staff=staff)
        result.requested = len(contact_ids)
    else:
        if fmt not in EXPORT_FORMATS:
            raise RemarkError(
                _t("Choose one of: %(formats)s.") % {"formats": ", ".join(EXPORT_FORMATS)},
                field="format",
            )
        result = BulkResult(action=action, requested=len(contact_ids))
        if allowed:
            # The import/export engineer's service: a Job the page and API can follow.
            from contacts.exports import contacts_export_start

            try:
                result.job = contacts_export_start(user=user, contact_ids=allowed, fmt=fmt)
            except ValueError as exc:  # the export service's input error, naming its field
                raise RemarkError(str(exc), field=getattr(exc, "field", "format")) from None
            result.done = allowed
    for pk in hidden:
        result.failed[pk] = _not_found_reason()
        result.not_found.add(pk)
    return result
