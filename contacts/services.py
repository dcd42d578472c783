"""Writes on staff, contacts, follow relations and tags, each recording its events."""

from collections.abc import Iterable
from datetime import datetime

from django.db import transaction

from analytics.events import record
from analytics.models import EventType
from contacts.models import (
    ChannelCode,
    Contact,
    ContactTag,
    Follow,
    Staff,
    Tag,
    TagGroup,
    TagSource,
)
from wecom.types import ContactInfo, CorpTagGroup, StaffInfo


def staff_ensure(userid: str, *, name: str = "") -> Staff:
    """The staff member with this WeCom userid, created on first sight."""
    staff, _ = Staff.objects.get_or_create(userid=userid, defaults={"name": name or userid})
    return staff


def staff_sync(infos: Iterable[StaffInfo]) -> int:
    """Bring staff names and status in line with WeCom; returns how many rows changed."""
    changed = 0
    for info in infos:
        staff, created = Staff.objects.get_or_create(
            userid=info.userid, defaults={"name": info.name}
        )
        if not created and staff.name != info.name:
            staff.name = info.name
            staff.save(update_fields=["name"])
            changed += 1
        changed += created
    return changed


def tags_sync_from_wecom(groups: Iterable[CorpTagGroup]) -> int:
    """Mirror WeCom's corp tags: create, rename and remove ours to match. Returns changes."""
    changed = 0
    seen_groups, seen_tags = set(), set()
    for group_info in groups:
        seen_groups.add(group_info.id)
        group = (
            TagGroup.objects.filter(wecom_group_id=group_info.id).first()
            or TagGroup.objects.filter(name=group_info.name, wecom_group_id__isnull=True).first()
        )
        wanted = {
            "name": group_info.name,
            "order": group_info.order,
            "wecom_group_id": group_info.id,
        }
        if group is None:
            group = TagGroup.objects.create(source=TagSource.WECOM, **wanted)
            changed += 1
        elif any(getattr(group, name) != value for name, value in wanted.items()):
            TagGroup.objects.filter(pk=group.pk).update(**wanted)
            changed += 1
        for tag_info in group_info.tags:
            seen_tags.add(tag_info.id)
            tag = (
                Tag.objects.filter(wecom_tag_id=tag_info.id).first()
                or Tag.objects.filter(
                    group=group, name=tag_info.name, wecom_tag_id__isnull=True
                ).first()
            )
            if tag is None:
                Tag.objects.create(
                    group=group,
                    name=tag_info.name,
                    order=tag_info.order,
                    wecom_tag_id=tag_info.id,
                    source=TagSource.WECOM,
                )
                changed += 1
            elif (tag.group_id, tag.name, tag.order, tag.wecom_tag_id) != (
                group.pk,
                tag_info.name,
                tag_info.order,
                tag_info.id,
            ):
                tag.group, tag.name, tag.order = group, tag_info.name, tag_info.order
                tag.wecom_tag_id = tag_info.id
                tag.save()
                changed += 1
    # Tags that WeCom no longer has are gone there: remove ours (contacts lose them too).
    stale_tags = Tag.objects.filter(wecom_tag_id__isnull=False).exclude(wecom_tag_id__in=seen_tags)
    changed += stale_tags.delete()[1].get("contacts.Tag", 0)
    stale_groups = TagGroup.objects.filter(wecom_group_id__isnull=False).exclude(
        wecom_group_id__in=seen_groups
    )
    changed += stale_groups.delete()[1].get("contacts.TagGroup", 0)
    return changed


def contact_tags_set_from_wecom(
    contact: Contact, wecom_tag_ids: Iterable[str], *, occurred_at: datetime, key: str
) -> int:
    """Make the contact's WeCom-sourced tags exactly these; returns how many changed."""
    wanted = {t.pk: t.name for t in Tag.objects.filter(wecom_tag_id__in=set(wecom_tag_ids))}
    current = dict(
        ContactTag.objects.filter(contact=contact, tag__wecom_tag_id__isnull=False).values_list(
            "tag_id", "source"
        )
    )
    added = [pk for pk in wanted if pk not in current]
    # Only tags WeCom put there are removed: a manual or rule tag stays ours.
    removed = [
        pk for pk, source in current.items() if pk not in wanted and source == TagSource.WECOM
    ]
    ContactTag.objects.bulk_create(
        [ContactTag(contact=contact, tag_id=pk, source=TagSource.WECOM) for pk in added],
        ignore_conflicts=True,
    )
    ContactTag.objects.filter(contact=contact, tag_id__in=removed).delete()
    names = dict(Tag.objects.filter(pk__in=removed).values_list("pk", "name")) | wanted
    for pk, event_type in [(pk, EventType.TAG_ADDED) for pk in added] + [
        (pk, EventType.TAG_REMOVED) for pk in removed
    ]:
        record(
            type=event_type,
            occurred_at=occurred_at,
            key=f"{key}:tag:{event_type}:{pk}",
            contact=contact,
            payload={"tag_id": pk, "tag": names[pk], "source": TagSource.WECOM},
        )
    return len(added) + len(removed)


def contact_upsert(info: ContactInfo) -> tuple[Contact, bool]:
    """The contact's profile as WeCom has it; unchanged rows are not written."""
    contact, created = Contact.objects.get_or_create(
        external_userid=info.external_userid,
        defaults={
            "name": info.name,
            "gender": info.gender,
            "avatar": info.avatar,
            "unionid": info.unionid,
            "first_added_at": info.follow.added_at,
        },
    )
    if not created:
        profile = {
            "name": info.name,
            "gender": info.gender,
            "avatar": info.avatar,
            "unionid": info.unionid,
        }
        changed = [name for name, value in profile.items() if getattr(contact, name) != value]
        if info.follow.added_at and (
            contact.first_added_at is None or info.follow.added_at < contact.first_added_at
        ):
            contact.first_added_at = info.follow.added_at
            changed.append("first_added_at")
        if changed:
            for name in changed:
                if name in profile:
                    setattr(contact, name, profile[name])
            contact.save(update_fields=[*changed, "updated_at"])
    return contact, created


def follow_sync(info: ContactInfo, *, staff: Staff) -> tuple[Follow, bool]:
    """Create or update the follow relation seen in a sync; a new one is a CONTACT_ADDED."""
    contact, _ = contact_upsert(info)
    channel = (
        ChannelCode.objects.filter(state=info.follow.state).first() if info.follow.state else None
    )
    values = {
        "remark": info.follow.remark,
        "description": info.follow.description,
        "added_at": info.follow.added_at,
        "add_way": info.follow.add_way,
        "state": info.follow.state,
        "channel": channel,
        "deleted_by_staff_at": None,
        "deleted_by_contact_at": None,
    }
    follow = Follow.objects.filter(contact=contact, staff=staff).first()
    created = follow is None or not follow.is_active
    if follow is None:
        follow = Follow.objects.create(contact=contact, staff=staff, **values)
    else:
        changed = [name for name, value in values.items() if getattr(follow, name) != value]
        if changed:
            for name in changed:
                setattr(follow, name, values[name])
            follow.save(update_fields=changed)
    if created:
        if contact.source_channel_id is None and channel is not None:
            contact.source_channel = channel
            contact.save(update_fields=["source_channel", "updated_at"])
        record(
            type=EventType.CONTACT_ADDED,
            occurred_at=info.follow.added_at,
            # The same relation seen again by a later sync is the same fact.
            key=f"added:{contact.external_userid}:{staff.userid}:{info.follow.added_at.timestamp():.0f}",
            contact=contact,
            staff=staff,
            channel=channel,
            payload={"state": info.follow.state, "via": "sync"},
        )
    return follow, created


@transaction.atomic
def contact_added(
    *, userid: str, external_userid: str, state: str, occurred_at: datetime, key: str
) -> Follow:
    """A customer added a staff member (the callback). The profile is fetched separately."""
    staff = staff_ensure(userid)
    contact, _ = Contact.objects.get_or_create(
        external_userid=external_userid, defaults={"first_added_at": occurred_at}
    )
    channel = ChannelCode.objects.filter(state=state).first() if state else None
    follow, created = Follow.objects.get_or_create(
        contact=contact,
        staff=staff,
        defaults={"added_at": occurred_at, "state": state, "channel": channel},
    )
    if not created and not follow.is_active:  # re-added after a delete: the relation is back
        follow.added_at, follow.state, follow.channel = occurred_at, state, channel
        follow.deleted_by_staff_at = follow.deleted_by_contact_at = None
        follow.save()
    if contact.source_channel_id is None and channel is not None:
        contact.source_channel = channel
        contact.save(update_fields=["source_channel", "updated_at"])
    if channel is not None:
        ContactTag.objects.bulk_create(
            [
                ContactTag(contact=contact, tag=tag, source=TagSource.RULE)
                for tag in channel.tags.all()
            ],
            ignore_conflicts=True,
        )
    record(
        type=EventType.CONTACT_ADDED,
        occurred_at=occurred_at,
        key=f"added:{external_userid}:{userid}:{occurred_at.timestamp():.0f}",
        contact=contact,
        staff=staff,
        channel=channel,
        payload={"state": state, "via": "callback", "callback": key},
    )
    return follow


@transaction.atomic
def follow_ended(
    *,
    userid: str,
    external_userid: str,
    occurred_at: datetime,
    by_contact: bool,
    key: str,
    reason: str = "",
) -> Follow | None:
    """The staff member deleted the customer, or (by_contact) the customer deleted them (拉黑)."""
    follow = (
        Follow.objects.select_for_update()
        .filter(staff__userid=userid, contact__external_userid=external_userid)
        .first()
    )
    if follow is None:
        return None
    field = "deleted_by_contact_at" if by_contact else "deleted_by_staff_at"
    if getattr(follow, field) is None:
        setattr(follow, field, occurred_at)
        follow.save(update_fields=[field])
    record(
        type=EventType.CONTACT_BLOCKED if by_contact else EventType.CONTACT_DELETED,
        occurred_at=occurred_at,
        key=key,
        contact=follow.contact_id,
        staff=follow.staff_id,
        payload={"reason": reason} if reason else None,
    )
    return follow
