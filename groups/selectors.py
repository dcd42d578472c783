"""Reads on groups and the people in them."""

from django.db.models import Prefetch

from contacts.models import Contact, Follow, Staff, TagGroup
from groups.models import Group, GroupMembership


def wecom_world() -> dict:
    """Our staff, contacts, WeCom tags and open groups in the shape the fake WeCom loads.

    The offline demo starts the fake WeCom with this, so a sync or a callback there agrees
    with the demo data instead of contradicting it.
    """
    tag_ids = {}
    tag_groups = []
    for group in TagGroup.objects.filter(wecom_group_id__isnull=False).prefetch_related("tags"):
        tags = [t for t in group.tags.all() if t.wecom_tag_id]
        tag_ids.update({t.pk: t.wecom_tag_id for t in tags})
        tag_groups.append(
            {
                "group_id": group.wecom_group_id,
                "group_name": group.name,
                "order": group.order,
                "tags": [{"id": t.wecom_tag_id, "name": t.name, "order": t.order} for t in tags],
            }
        )
    active_follows = Follow.objects.filter(
        deleted_by_staff_at__isnull=True, deleted_by_contact_at__isnull=True
    ).select_related("staff")
    contacts = (
        Contact.objects.filter(follows__in=active_follows)
        .distinct()
        .prefetch_related(
            Prefetch("follows", queryset=active_follows, to_attr="active_follows"), "contact_tags"
        )
    )
    memberships = GroupMembership.objects.filter(left_at__isnull=True).select_related(
        "contact", "staff"
    )
    groups = (
        Group.objects.filter(dismissed_at__isnull=True)
        .select_related("owner")
        .prefetch_related(
            "admins", Prefetch("memberships", queryset=memberships, to_attr="open_stays")
        )
    )
    return {
        "staff": [
            {"userid": s.userid, "name": s.name, "status": 1}
            for s in Staff.objects.filter(status=Staff.Status.ACTIVE)
        ],
        "contacts": [
            {
                "external_userid": c.external_userid,
                "name": c.name,
                "gender": c.gender,
                "avatar": c.avatar,
                "unionid": c.unionid,
                "follow_users": [
                    {
                        "userid": f.staff.userid,
                        "remark": f.remark,
                        "description": f.description,
                        "createtime": int(f.added_at.timestamp()),
                        "tags": [
                            tag_ids[ct.tag_id]
                            for ct in c.contact_tags.all()
                            if ct.tag_id in tag_ids
                        ],
                        "state": f.state,
                        "add_way": f.add_way,
                    }
                    for f in c.active_follows
                ],
            }
            for c in contacts
        ],
        "tag_groups": tag_groups,
        "groups": [
            {
                "chat_id": g.chat_id,
                "name": g.name,
                "owner": g.owner.userid,
                "notice": g.notice,
                "create_time": int(g.wecom_created_at.timestamp()) if g.wecom_created_at else 0,
                "admin_list": [a.userid for a in g.admins.all()],
                "members": [
                    {
                        "userid": m.contact.external_userid if m.contact_id else m.staff.userid,
                        "type": 2 if m.contact_id else 1,
                        "join_time": int(m.joined_at.timestamp()),
                        "join_scene": m.join_scene if m.join_scene is not None else 0,
                        "name": (m.contact or m.staff).name,
                    }
                    for m in g.open_stays
                ],
            }
            for g in groups
        ],
    }
