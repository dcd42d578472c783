"""Writes on groups: members joining and leaving, with the history kept and events recorded."""

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

from analytics.events import record
from analytics.models import EventType
from contacts.models import ChannelCode, Contact, Staff
from contacts.services import staff_ensure
from groups.models import AutoReply, Group, GroupMembership
from wecom.types import GroupInfo

# How group_upsert treats WeCom's member list (see there).
MEMBERS_RECONCILE, MEMBERS_BEFORE, MEMBERS_IGNORE = "reconcile", "before", "ignore"


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
        if stay is None or left_at < stay.joined_at:
            # Not in the group, or a late leave from before the current stay began (callbacks
            # applied out of order): it does not end this stay.
            return None
        stay.left_at = left_at
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


def member_resolve(userid: str) -> Staff | Contact:
    """A group member's WeCom id as one of our staff, or else as a contact (made on sight)."""
    staff = Staff.objects.filter(userid=userid).first()
    if staff is not None:
        return staff
    contact, _ = Contact.objects.get_or_create(external_userid=userid)
    return contact


def staff_membership_join(*, group: Group, staff: Staff, joined_at: datetime, role: str) -> None:
    stay, created = GroupMembership.objects.get_or_create(
        group=group,
        staff=staff,
        left_at__isnull=True,
        defaults={"joined_at": joined_at, "role": role},
    )
    if not created and stay.role != role:
        stay.role = role
        stay.save(update_fields=["role"])


def staff_membership_leave(*, group: Group, staff: Staff, left_at: datetime) -> None:
    stays = GroupMembership.objects.filter(
        group=group, staff=staff, left_at__isnull=True, joined_at__lte=left_at
    )
    stays.update(left_at=left_at)


@transaction.atomic
def group_upsert(
    info: GroupInfo,
    *,
    key: str,
    occurred_at: datetime,
    members: str = MEMBERS_RECONCILE,
) -> tuple[Group, list[str]]:
    """Make our group match WeCom's view; returns (group, what changed).

    `members` says how far to trust WeCom's member list, which is a snapshot of *now* while
    the callback being applied may be older:
    - MEMBERS_RECONCILE (a sync): members WeCom lists but we lack join at WeCom's join time,
      open stays WeCom no longer lists leave at `occurred_at`;
    - MEMBERS_BEFORE (the create callback): only members who joined by `occurred_at` join;
      later joins and leaves arrive as their own callbacks;
    - MEMBERS_IGNORE (owner, name, notice changes): members are left alone.
    Nothing changes, and nothing is recorded, when both sides agree.
    """
    owner = staff_ensure(info.owner)
    group = Group.objects.select_for_update().filter(chat_id=info.chat_id).first()
    changes = []
    if group is None:
        group = Group.objects.create(
            chat_id=info.chat_id,
            name=info.name,
            owner=owner,
            notice=info.notice,
            wecom_created_at=info.created_at,
        )
        changes.append("created")
        record(
            type=EventType.GROUP_CREATED,
            occurred_at=info.created_at or occurred_at,
            key=f"group-created:{info.chat_id}",
            group=group,
            staff=owner,
        )
    else:
        if group.owner_id != owner.pk:
            record(
                type=EventType.GROUP_OWNER_CHANGED,
                occurred_at=occurred_at,
                key=f"{key}:owner",
                group=group,
                staff=owner,
                payload={"from": group.owner.userid, "to": owner.userid},
            )
            group.owner = owner
            changes.append("owner")
        if (group.name, group.notice) != (info.name, info.notice):
            record(
                type=EventType.GROUP_UPDATED,
                occurred_at=occurred_at,
                key=f"{key}:details",
                group=group,
                payload={"name": info.name, "notice_changed": group.notice != info.notice},
            )
            group.name, group.notice = info.name, info.notice
            changes.append("details")
        if changes:
            group.save(update_fields=["owner", "name", "notice"])
    admins = [staff_ensure(userid) for userid in info.admins]
    if set(group.admins.values_list("pk", flat=True)) != {a.pk for a in admins}:
        group.admins.set(admins)
        changes.append("admins")

    if members == MEMBERS_IGNORE:
        return group, changes
    listed = {
        m.userid: m
        for m in info.members
        if members == MEMBERS_RECONCILE or (m.joined_at or occurred_at) <= occurred_at
    }
    open_stays = GroupMembership.objects.filter(group=group, left_at__isnull=True).select_related(
        "contact", "staff"
    )
    present = {}
    for stay in open_stays:
        userid = stay.contact.external_userid if stay.contact_id else stay.staff.userid
        present[userid] = stay
    for userid, member in listed.items():
        if userid in present:
            continue
        who = member_resolve(userid) if member.is_external else staff_ensure(userid)
        joined_at = member.joined_at or occurred_at
        if isinstance(who, Staff):
            role = (
                GroupMembership.Role.OWNER
                if userid == info.owner
                else GroupMembership.Role.ADMIN
                if userid in info.admins
                else GroupMembership.Role.MEMBER
            )
            staff_membership_join(group=group, staff=who, joined_at=joined_at, role=role)
        else:
            membership_join(
                group=group,
                contact=who,
                joined_at=joined_at,
                join_scene=member.join_scene,
                invitor_userid=member.invitor_userid,
                key=f"group-joined:{info.chat_id}:{userid}:{joined_at.timestamp():.0f}",
            )
        changes.append(f"joined:{userid}")
    for userid, stay in present.items():
        if userid in listed or members != MEMBERS_RECONCILE:
            continue
        if stay.staff_id:
            staff_membership_leave(group=group, staff=stay.staff, left_at=occurred_at)
        else:
            membership_leave(
                group=group, contact=stay.contact, left_at=occurred_at, key=f"{key}:left:{userid}"
            )
        changes.append(f"left:{userid}")
    return group, changes


@transaction.atomic
def group_dismiss(*, chat_id: str, occurred_at: datetime, key: str) -> Group | None:
    """The group was dismissed: every open stay ends with it; the history stays."""
    group = Group.objects.select_for_update().filter(chat_id=chat_id).first()
    if group is None or group.dismissed_at is not None:
        return group
    group.dismissed_at = occurred_at
    group.save(update_fields=["dismissed_at"])
    for stay in GroupMembership.objects.filter(group=group, left_at__isnull=True):
        if stay.contact_id:
            membership_leave(
                group=group,
                contact=stay.contact,
                left_at=occurred_at,
                key=f"{key}:left:{stay.contact_id}",
            )
        else:
            staff_membership_leave(group=group, staff=stay.staff, left_at=occurred_at)
    record(type=EventType.GROUP_DISMISSED, occurred_at=occurred_at, key=key, group=group)
    return group


def members_changed(
    *,
    chat_id: str,
    userids: list[str],
    joined: bool,
    scene: int | None,
    occurred_at: datetime,
    key: str,
) -> Group | None:
    """Members joined or left (the add_member / del_member callbacks)."""
    group = Group.objects.filter(chat_id=chat_id).first()
    if group is None:
        return None  # unknown group: the create callback or a sync brings it with its members
    for userid in userids:
        who = member_resolve(userid)
        if isinstance(who, Staff):
            if joined:
                staff_membership_join(
                    group=group, staff=who, joined_at=occurred_at, role=GroupMembership.Role.MEMBER
                )
            else:
                staff_membership_leave(group=group, staff=who, left_at=occurred_at)
        elif joined:
            membership_join(
                group=group,
                contact=who,
                joined_at=occurred_at,
                join_scene=scene,
                key=f"{key}:{userid}",
            )
        else:
            membership_leave(
                group=group,
                contact=who,
                left_at=occurred_at,
                quit_scene=scene,
                key=f"{key}:{userid}",
            )
    return group


# --- what operators edit on the group page --------------------------------------------------

MAX_ADMINS = 3  # WeCom allows a group owner three admins
# Fields an operator keeps for a group in the dashboard. Rules, notice and welcome message
# live only here: WeCom's API cannot set a group notice.
GROUP_SETTINGS = (
    "type",
    "model",
    "stage",
    "labels",
    "rules",
    "notice",
    "welcome_message",
    "member_cap",
)
SETTABLE_ROLES = (
    GroupMembership.Role.ADMIN,
    GroupMembership.Role.KOC,
    GroupMembership.Role.MEMBER,
)


def group_settings_update(*, group: Group, **values) -> list[str]:
    """Change the group's type, model, stage, labels, rules, notice, welcome message or cap.

    Returns the names of the fields that changed.
    """
    unknown = set(values) - set(GROUP_SETTINGS)
    if unknown:
        raise ValueError(f"not a group setting: {', '.join(sorted(unknown))}")
    changed = [name for name, value in values.items() if getattr(group, name) != value]
    for name in changed:
        setattr(group, name, values[name])
    if changed:
        # Only the fields being changed: choices and lengths, named per field.
        group.clean_fields(exclude=[f.name for f in Group._meta.fields if f.name not in changed])
        group.save(update_fields=changed)
    return changed


@transaction.atomic
def membership_role_set(*, stay: GroupMembership, role: str) -> GroupMembership:
    """Make a member an admin, a KOC (气氛组) or a plain member of their group.

    At most three admins per group; the owner keeps their role (WeCom changes owners through
    a transfer). A staff member made admin joins the group's admins, which decides which
    operators see the group.
    """
    if role not in SETTABLE_ROLES:
        raise ValidationError({"role": _("Choose admin, KOC or member.")})
    # Serialise role changes in one group, so two promotions cannot both take the last seat.
    group = Group.objects.select_for_update().get(pk=stay.group_id)
    stay = GroupMembership.objects.select_for_update().get(pk=stay.pk)
    if stay.left_at is not None:
        raise ValidationError({"role": _("This person has left the group.")})
    if stay.role == GroupMembership.Role.OWNER:
        raise ValidationError({"role": _("The owner's role cannot be changed here.")})
    if role == stay.role:
        return stay
    if role == GroupMembership.Role.ADMIN:
        admins = group.memberships.filter(
            left_at__isnull=True, role=GroupMembership.Role.ADMIN
        ).count()
        if admins >= MAX_ADMINS:
            raise ValidationError(
                {"role": _("A group has at most %(max)d admins.") % {"max": MAX_ADMINS}}
            )
    was_admin = stay.role == GroupMembership.Role.ADMIN
    stay.role = role
    stay.save(update_fields=["role"])
    if stay.staff_id and role == GroupMembership.Role.ADMIN:
        group.admins.add(stay.staff_id)
    elif stay.staff_id and was_admin:
        group.admins.remove(stay.staff_id)
    return stay


def _auto_reply_fields(*, group: Group, keyword: str, reply: str, exclude: int | None) -> dict:
    keyword, reply = keyword.strip(), reply.strip()
    errors = {}
    if not keyword:
        errors["keyword"] = _("Enter a keyword.")
    elif (
        AutoReply.objects.filter(group=group, keyword__iexact=keyword).exclude(pk=exclude).exists()
    ):
        errors["keyword"] = _("This group already has an auto-reply for this keyword.")
    if not reply:
        errors["reply"] = _("Enter the reply.")
    if errors:
        raise ValidationError(errors)
    return {"keyword": keyword, "reply": reply}


def auto_reply_create(
    *, group: Group, keyword: str, reply: str, is_active: bool = True
) -> AutoReply:
    """A keyword auto-reply (关键词自动回复); a keyword is used once per group."""
    fields = _auto_reply_fields(group=group, keyword=keyword, reply=reply, exclude=None)
    try:
        with transaction.atomic():
            return AutoReply.objects.create(group=group, is_active=is_active, **fields)
    except IntegrityError:  # a concurrent create took the keyword first
        raise ValidationError(
            {"keyword": _("This group already has an auto-reply for this keyword.")}
        ) from None


def auto_reply_update(
    *, auto_reply: AutoReply, keyword: str, reply: str, is_active: bool = True
) -> AutoReply:
    fields = _auto_reply_fields(
        group=auto_reply.group, keyword=keyword, reply=reply, exclude=auto_reply.pk
    )
    for name, value in {**fields, "is_active": is_active}.items():
        setattr(auto_reply, name, value)
    try:
        with transaction.atomic():
            auto_reply.save(update_fields=["keyword", "reply", "is_active"])
    except IntegrityError:
        raise ValidationError(
            {"keyword": _("This group already has an auto-reply for this keyword.")}
        ) from None
    return auto_reply


def auto_reply_delete(*, auto_reply: AutoReply) -> None:
    auto_reply.delete()


def group_owner_transfer(
    *, group: Group, successor: Staff, occurred_at: datetime, key: str, via: str = ""
) -> bool:
    """WeCom accepted a new owner for the group: ours follows at once, with the event."""
    with transaction.atomic():
        group = Group.objects.select_for_update().select_related("owner").get(pk=group.pk)
        if group.owner_id == successor.pk:
            return False
        previous = group.owner
        group.owner = successor
        group.save(update_fields=["owner"])
        # The old owner stays in the group's history; only the roles move.
        GroupMembership.objects.filter(
            group=group, staff=previous, left_at__isnull=True, role=GroupMembership.Role.OWNER
        ).update(role=GroupMembership.Role.MEMBER)
        staff_membership_join(
            group=group, staff=successor, joined_at=occurred_at, role=GroupMembership.Role.OWNER
        )
        record(
            type=EventType.GROUP_OWNER_CHANGED,
            occurred_at=occurred_at,
            key=key,
            group=group,
            staff=successor,
            payload={"from": previous.userid, "to": successor.userid, "via": via or "dashboard"},
        )
    return True
