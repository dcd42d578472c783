"""Tag groups, tags and tagging, kept in step with WeCom's corp tags (企业客户标签).

WeCom first, then our tables: if WeCom refuses, its error (wecom.errors.WeComError) reaches
the caller and nothing changes here. WeCom sends no callback for changes made through its
API, so the TAG_ADDED / TAG_REMOVED events are recorded here. Mirroring WeCom's own
changes into ours is contacts.services.tags_sync_from_wecom.
"""

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext as _t

from analytics.events import EventRow, record_many
from analytics.models import EventType
from contacts.models import Contact, ContactTag, Follow, Staff, Tag, TagGroup, TagSource
from contacts.selectors import contacts_visible_to
from scrm.jobs import Progress, job_create, job_queue
from scrm.models import Job
from wecom import gateway
from wecom.errors import WeComError

logger = logging.getLogger(__name__)

NAME_MAX = 30  # WeCom's limit for tag and tag group names


class TagError(ValueError):
    """A tag change we refuse before asking WeCom; `field` names the input at fault."""

    def __init__(self, message: str, *, field: str = "name"):
        super().__init__(message)
        self.field = field


def _clean_name(name: str, *, field: str = "name") -> str:
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX:
        raise TagError(f"a name of 1 to {NAME_MAX} characters is required", field=field)
    return name


def _events(kind: EventType, pairs: Iterable[tuple[int, Tag]], *, key: str, **extra) -> int:
    """TAG_ADDED / TAG_REMOVED rows for (contact id, tag) pairs, one key per pair."""
    now = timezone.now()
    return record_many(
        EventRow(
            type=kind,
            occurred_at=now,
            key=f"{key}:{contact_id}:{tag.pk}",
            contact_id=contact_id,
            payload={"tag_id": tag.pk, "tag": tag.name, **extra},
        )
        for contact_id, tag in pairs
    )


# --- tag groups and tags -----------------------------------------------------------------


def tag_group_create(*, name: str, tag_names: Iterable[str] = (), order: int = 0) -> TagGroup:
    """A tag group, created in WeCom with its tags. WeCom holds no empty group, so a group
    without tags stays ours alone until its first tag is added (tag_create)."""
    name = _clean_name(name)
    tag_names = [_clean_name(t, field="tags") for t in tag_names]
    if len(set(tag_names)) != len(tag_names):
        raise TagError("the same tag name is given twice", field="tags")
    if TagGroup.objects.filter(name=name).exists():
        raise TagError(f"a tag group named {name} exists already")
    wecom_group = gateway.corp_tag_add(group_name=name, tag_names=tag_names) if tag_names else None
    with transaction.atomic():
        group = TagGroup.objects.create(
            name=name,
            order=order,
            source=TagSource.MANUAL,
            wecom_group_id=wecom_group.id if wecom_group else None,
        )
        wecom_ids = {t.name: t.id for t in wecom_group.tags} if wecom_group else {}
        Tag.objects.bulk_create(
            Tag(group=group, name=t, order=i, wecom_tag_id=wecom_ids.get(t))
            for i, t in enumerate(tag_names)
        )
    return group


def tag_group_rename(group: TagGroup, *, name: str) -> TagGroup:
    name = _clean_name(name)
    if name == group.name:
        return group
    if TagGroup.objects.filter(name=name).exclude(pk=group.pk).exists():
        raise TagError(f"a tag group named {name} exists already")
    if group.wecom_group_id:
        gateway.corp_tag_rename(id=group.wecom_group_id, name=name)
    group.name = name
    group.save(update_fields=["name"])
    return group


def _tagged_pairs(tags: QuerySet[Tag]) -> list[tuple[int, Tag]]:
    by_id = {tag.pk: tag for tag in tags}
    rows = ContactTag.objects.filter(tag_id__in=by_id).values_list("contact_id", "tag_id")
    return [(contact_id, by_id[tag_id]) for contact_id, tag_id in rows]


def tag_group_delete(group: TagGroup) -> None:
    """Delete the group and its tags here and in WeCom; contacts lose those tags."""
    tags = group.tags.all()
    wecom_tags = [t.wecom_tag_id for t in tags if t.wecom_tag_id]
    if group.wecom_group_id:
        gateway.corp_tag_delete(group_ids=[group.wecom_group_id])
    elif wecom_tags:
        gateway.corp_tag_delete(tag_ids=wecom_tags)
    with transaction.atomic():
        _events(EventType.TAG_REMOVED, _tagged_pairs(tags), key=f"tag-group-deleted:{group.pk}")
        group.delete()


def tag_create(*, group: TagGroup, name: str, order: int = 0) -> Tag:
    """A tag in the group, created in WeCom too (the group's first tag creates it there)."""
    name = _clean_name(name)
    if Tag.objects.filter(group=group, name=name).exists():
        raise TagError(f"{group.name} has a tag named {name} already")
    wecom_group = gateway.corp_tag_add(
        group_name=group.name, tag_names=[name], group_id=group.wecom_group_id or ""
    )
    wecom_tag = next((t for t in wecom_group.tags if t.name == name), None)
    with transaction.atomic():
        if group.wecom_group_id != wecom_group.id:
            group.wecom_group_id = wecom_group.id
            group.save(update_fields=["wecom_group_id"])
        return Tag.objects.create(
            group=group,
            name=name,
            order=order,
            source=TagSource.MANUAL,
            wecom_tag_id=wecom_tag.id if wecom_tag else None,
        )


def tag_rename(tag: Tag, *, name: str) -> Tag:
    name = _clean_name(name)
    if name == tag.name:
        return tag
    if Tag.objects.filter(group_id=tag.group_id, name=name).exclude(pk=tag.pk).exists():
        raise TagError(f"{tag.group.name} has a tag named {name} already")
    if tag.wecom_tag_id:
        gateway.corp_tag_rename(id=tag.wecom_tag_id, name=name)
    tag.name = name
    tag.save(update_fields=["name"])
    return tag


def tag_delete(tag: Tag) -> None:
    """Delete the tag here and in WeCom; contacts lose it, a rule giving it goes with it."""
    if tag.wecom_tag_id:
        gateway.corp_tag_delete(tag_ids=[tag.wecom_tag_id])
    with transaction.atomic():
        _events(
            EventType.TAG_REMOVED,
            _tagged_pairs(Tag.objects.filter(pk=tag.pk)),
            key=f"tag-deleted:{tag.pk}",
        )
        group = tag.group
        tag.delete()
        # WeCom drops a group with its last tag; ours stays, to be recreated there later.
        if group.wecom_group_id and not group.tags.exclude(wecom_tag_id=None).exists():
            group.wecom_group_id = None
            group.save(update_fields=["wecom_group_id"])


# --- tagging contacts --------------------------------------------------------------------


def contacts_taggable_by(user) -> QuerySet[Contact]:
    """Contacts the user may tag: those they may see (every one for a manager, their own
    customers for an operator), none for a read-only analyst."""
    if user is None or not user.is_authenticated or user.is_read_only:
        return Contact.objects.none()
    return contacts_visible_to(user)


def _ensure_may_tag(user, contact_ids: set[int]) -> None:
    allowed = set(
        contacts_taggable_by(user).filter(pk__in=contact_ids).values_list("pk", flat=True)
    )
    if missing := contact_ids - allowed:
        raise PermissionDenied(
            f"you may not tag contact(s) {', '.join(map(str, sorted(missing)))}: not your customers"
        )


def _follower_userids(contact: Contact) -> list[str]:
    """WeCom tags hang on each follow relation: every active staff member following them."""
    return list(
        Follow.objects.filter(
            contact=contact,
            deleted_by_staff_at__isnull=True,
            deleted_by_contact_at__isnull=True,
            staff__status=Staff.Status.ACTIVE,
        )
        .order_by("staff__userid")
        .values_list("staff__userid", flat=True)
    )


def _mark_in_wecom(contact: Contact, *, add: list[str], remove: list[str], undo: dict) -> None:
    """Mark for every follower; if one call fails, undo the ones made, then raise."""
    done = []
    try:
        for userid in _follower_userids(contact):
            gateway.contact_mark_tags(
                userid=userid, external_userid=contact.external_userid, add=add, remove=remove
            )
            done.append(userid)
    except WeComError:
        for userid in done:
            try:
                gateway.contact_mark_tags(
                    userid=userid, external_userid=contact.external_userid, **undo
                )
            except WeComError:
                logger.exception("could not undo tag marks of %s for %s", contact, userid)
        raise


def tag_push_to_wecom(tag_id: int, contact_ids: Iterable[int]) -> dict[int, str]:
    """Make WeCom agree with us about one tag for these contacts, for every staff member
    following them: marked if they carry the tag here now, unmarked if not. Reads our state
    when it runs, so a late or repeated push never undoes a newer change. Returns the
    contacts WeCom refused, with why. (Rule tags change here first; this follows them.)"""
    tag = Tag.objects.filter(pk=tag_id).exclude(wecom_tag_id="").first()
    if tag is None:
        return {}
    carrying = set(
        ContactTag.objects.filter(tag=tag, contact_id__in=contact_ids).values_list(
            "contact_id", flat=True
        )
    )
    refused = {}
    for contact in Contact.objects.filter(pk__in=contact_ids).order_by("pk"):
        change = (
            {"add": [tag.wecom_tag_id]}
            if contact.pk in carrying
            else {"remove": [tag.wecom_tag_id]}
        )
        try:
            for userid in _follower_userids(contact):
                gateway.contact_mark_tags(
                    userid=userid, external_userid=contact.external_userid, **change
                )
        except WeComError as exc:
            if exc.transient:
                raise
            refused[contact.pk] = str(exc)
    return refused


def _tag_list(tags: Iterable[Tag]) -> list[Tag]:
    tags = list({tag.pk: tag for tag in tags}.values())
    if not tags:
        raise TagError("choose at least one tag", field="tags")
    return tags


def _contact_tag_add(contact: Contact, tags: list[Tag], *, by_user, at: datetime) -> list[Tag]:
    current = dict(
        ContactTag.objects.filter(contact=contact, tag__in=tags).values_list("tag_id", "source")
    )
    new = [tag for tag in tags if tag.pk not in current]
    wecom_ids = [tag.wecom_tag_id for tag in tags if tag.wecom_tag_id]
    if wecom_ids:
        _mark_in_wecom(
            contact,
            add=wecom_ids,
            remove=[],
            undo={"remove": [t.wecom_tag_id for t in new if t.wecom_tag_id]},
        )
    with transaction.atomic():
        ContactTag.objects.bulk_create(
            [ContactTag(contact=contact, tag=tag, source=TagSource.MANUAL) for tag in new],
            ignore_conflicts=True,
        )
        # Given by hand now: a rule no longer takes it back.
        ContactTag.objects.filter(
            contact=contact, tag__in=[t for t in tags if t.pk in current], source=TagSource.RULE
        ).update(source=TagSource.MANUAL)
        _events(
            EventType.TAG_ADDED,
            [(contact.pk, tag) for tag in new],
            key=f"tag-added:{at.isoformat()}:{uuid.uuid4()}",
            source=TagSource.MANUAL,
            by_user=getattr(by_user, "pk", None),
        )
    return new


def _contact_tag_remove(contact: Contact, tags: list[Tag], *, by_user, at: datetime) -> list[Tag]:
    current = set(
        ContactTag.objects.filter(contact=contact, tag__in=tags).values_list("tag_id", flat=True)
    )
    gone = [tag for tag in tags if tag.pk in current]
    wecom_ids = [tag.wecom_tag_id for tag in tags if tag.wecom_tag_id]
    if wecom_ids:
        _mark_in_wecom(
            contact,
            add=[],
            remove=wecom_ids,
            undo={"add": [t.wecom_tag_id for t in gone if t.wecom_tag_id]},
        )
    with transaction.atomic():
        ContactTag.objects.filter(contact=contact, tag__in=gone).delete()
        _events(
            EventType.TAG_REMOVED,
            [(contact.pk, tag) for tag in gone],
            key=f"tag-removed:{at.isoformat()}:{uuid.uuid4()}",
            source=TagSource.MANUAL,
            by_user=getattr(by_user, "pk", None),
        )
    return gone


def contact_tag_add(contact: Contact, tags: Iterable[Tag], *, by_user) -> list[Tag]:
    """Tag a contact by hand, in WeCom for every staff member following them first; returns
    the tags newly given. Raises PermissionDenied outside the user's customers, WeComError
    (with nothing changed) if WeCom refuses."""
    tags = _tag_list(tags)
    _ensure_may_tag(by_user, {contact.pk})
    return _contact_tag_add(contact, tags, by_user=by_user, at=timezone.now())


def contact_tag_remove(contact: Contact, tags: Iterable[Tag], *, by_user) -> list[Tag]:
    """Untag a contact, in WeCom first; returns the tags taken off."""
    tags = _tag_list(tags)
    _ensure_may_tag(by_user, {contact.pk})
    return _contact_tag_remove(contact, tags, by_user=by_user, at=timezone.now())


@dataclass
class BulkTagResult:
    changed: list[int] = field(default_factory=list)  # contacts that gained / lost a tag
    unchanged: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)  # contact id → WeCom's refusal


def contacts_tag(
    contact_ids: Iterable[int], tags: Iterable[Tag], *, by_user, remove: bool = False
) -> BulkTagResult:
    """Tag (or with remove=True untag) many contacts: one WeCom call per (staff, contact).

    Every contact must be the user's to tag (else PermissionDenied, nothing done). Each
    contact is done on its own: one refused by WeCom is reported in `failed` and left as it
    was, and the rest go ahead.
    """
    tags = _tag_list(tags)
    ids = set(contact_ids)
    _ensure_may_tag(by_user, ids)
    result = BulkTagResult()
    apply = _contact_tag_remove if remove else _contact_tag_add
    at = timezone.now()
    for contact in Contact.objects.filter(pk__in=ids).order_by("pk").iterator(chunk_size=500):
        try:
            done = apply(contact, tags, by_user=by_user, at=at)
        except WeComError as exc:
            result.failed[contact.pk] = str(exc)
            continue
        (result.changed if done else result.unchanged).append(contact.pk)
    return result


def contacts_untag(contact_ids: Iterable[int], tags: Iterable[Tag], *, by_user) -> BulkTagResult:
    return contacts_tag(contact_ids, tags, by_user=by_user, remove=True)


# --- tagging many contacts as a background job -------------------------------------------

# Contacts per chunk: each costs a WeCom call per follower at the shared rate limit (about
# 30 a second), so a chunk takes a second or two and the progress bar moves steadily.
TAG_JOB_CHUNK = 50
# The job keeps this many failures with their reasons (the counts are always complete).
TAG_JOB_FAILURES_KEPT = 200


def contacts_tag_job_start(
    *, user, contact_ids: Iterable[int], tags: Iterable[Tag], remove: bool = False
) -> Job:
    """Queue tagging (or with remove=True untagging) many contacts as a Job.

    The permission check happens here, before anything is queued: a contact that is not
    the user's raises PermissionDenied and no job is created.
    """
    tags = _tag_list(tags)
    ids = sorted(set(contact_ids))
    _ensure_may_tag(user, set(ids))
    job = job_create(
        kind="contacts_untag" if remove else "contacts_tag",
        user=user,
        params={
            "contact_ids": ids,
            "tag_ids": [tag.pk for tag in tags],
            "language": translation.get_language(),
        },
        total=len(ids),
    )
    from contacts.io_tasks import contacts_tag_run

    job_queue(job, contacts_tag_run)
    return job


def _job_state(job: Job) -> dict:
    """The job's counts so far; a resumed job carries on from them."""
    saved = job.result or {}
    return {
        "phase": "running",  # shown as "Working" on the job pages
        "requested": len(job.params["contact_ids"]),
        "done": saved.get("done", 0),
        "unchanged": saved.get("unchanged", 0),
        "failed": saved.get("failed", 0),
        "failures": list(saved.get("failures", [])),
        # The last contact id handled (ids go in ascending order): a nested value, so the
        # job page's counts (its integer values) leave it out.
        "resume": {"after": saved.get("resume", {}).get("after", 0)},
    }


def _note_failure(state: dict, contact_id: int, reason: str) -> None:
    state["failed"] += 1
    if len(state["failures"]) < TAG_JOB_FAILURES_KEPT:
        state["failures"].append([contact_id, reason])


def contacts_tag_job(job: Job, *, progress: Progress, stop_at: float | None = None) -> dict | None:
    """Run a contacts_tag / contacts_untag job's work, from where it stopped last.

    Contacts are done in ascending id order, chunk by chunk, and the last id done is saved
    with the counts after each chunk, so a job run again (a second delivery, a crash, the
    next slice) skips what is done. A contact done again after a crash mid-chunk changes
    nothing (no row, no event; WeCom is asked to mark a tag it has, which it ignores) and is
    counted as unchanged. Returns the result when every contact is done, None when
    `stop_at` (time.monotonic()) came first with work left.
    """
    user = job.created_by
    remove = job.kind == "contacts_untag"
    tags = list(Tag.objects.filter(pk__in=job.params["tag_ids"]))
    if not tags:
        raise TagError(_t("The tags were deleted before the job ran."), field="tags")
    state = _job_state(job)
    everyone = job.params["contact_ids"]
    after = state["resume"]["after"]
    todo = [pk for pk in everyone if pk > after]
    handled = len(everyone) - len(todo)
    progress(handled, len(everyone), phase="running")
    for start in range(0, len(todo), TAG_JOB_CHUNK):
        # At least one chunk a run, so every run moves the job on.
        if start and stop_at is not None and time.monotonic() > stop_at:
            return None
        chunk = todo[start : start + TAG_JOB_CHUNK]
        # Checked again per chunk: a customer handed to someone else since the job was
        # queued is no longer this user's to tag.
        mine = set(contacts_taggable_by(user).filter(pk__in=chunk).values_list("pk", flat=True))
        allowed = [pk for pk in chunk if pk in mine]
        outcome = contacts_tag(allowed, tags, by_user=user, remove=remove)
        state["done"] += len(outcome.changed)
        state["unchanged"] += len(outcome.unchanged)
        seen = {*outcome.changed, *outcome.unchanged}
        for pk in chunk:
            if pk in outcome.failed:
                _note_failure(state, pk, outcome.failed[pk])
            elif pk not in seen:  # gone, or no longer the user's
                _note_failure(state, pk, _t("No such customer among yours."))
        state["resume"]["after"] = chunk[-1]
        handled += len(chunk)
        Job.objects.filter(pk=job.pk).update(result=state)
        progress(handled, len(everyone), phase="running")
    return state
