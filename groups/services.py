"""Writes on groups: members joining and leaving, with the history kept and events recorded."""

from datetime import datetime

from django.db import IntegrityError, transaction

from analytics.events import record
from analytics.models import EventType
from contacts.models import ChannelCode, Contact
from groups.models import Group, GroupMembership


def membership_join(
    *,
    group: Group,
    contact: Contact,
    joined_at: datetime,
    join_scene: int | None = None,
    invitor_userid: str = "",
    channel: ChannelCode | None = None,
    role: str = GroupMembership.Role.MEMBER,
    key: str | None = None,
) -> tuple[GroupMembership, bool]:
    """Open a stay for a contact who joined; a contact already in the group keeps their stay.

    Returns (membership, created). `key` identifies the fact (e.g. the callback's dedupe key)
    so a replay records no second event.
    """
    try:
        with transaction.atomic():
            stay = GroupMembership.objects.create(
                group=group,
                contact=contact,
                role=role,
                joined_at=joined_at,
                join_scene=join_scene,
                invitor_userid=invitor_userid,
                channel=channel,
            )
            record(
                type=EventType.GROUP_JOINED,
                occurred_at=joined_at,
                key=key or f"group-joined:{group.pk}:{contact.pk}:{joined_at.isoformat()}",
                contact=contact,
                group=group,
                channel=channel,
                payload={"scene": join_scene} if join_scene is not None else None,
            )
    except IntegrityError:
        # Already in the group (one open stay per person, enforced by the database).
        stay = GroupMembership.objects.get(group=group, contact=contact, left_at__isnull=True)
        return stay, False
    return stay, True


def membership_leave(
    *,
    group: Group,
    contact: Contact,
    left_at: datetime,
    quit_scene: int | None = None,
    key: str | None = None,
) -> GroupMembership | None:
    """Close the contact's open stay; the row stays as history. None if they were not in."""
    with transaction.atomic():
        stay = (
            GroupMembership.objects.select_for_update()
            .filter(group=group, contact=contact, left_at__isnull=True)
            .first()
        )
        if stay is None:
            return None
        # A leave reported with a clock before the join still closes the stay, at the join.
        stay.left_at = max(left_at, stay.joined_at)
        stay.quit_scene = quit_scene
        stay.save(update_fields=["left_at", "quit_scene"])
        record(
            type=EventType.GROUP_LEFT,
            occurred_at=stay.left_at,
            key=key or f"group-left:{group.pk}:{contact.pk}:{left_at.isoformat()}",
            contact=contact,
            group=group,
            payload={"scene": quit_scene} if quit_scene is not None else None,
        )
    return stay
