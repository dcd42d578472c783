"""Fake APIs for staff, customers and their follow relations (remarks, tags)."""

from __future__ import annotations

from typing import Any

from wecom.fake import errors
from wecom.fake.api.common import Request, invalid, page, staff_or_error
from wecom.fake.errors import ApiError
from wecom.fake.state import STAFF_ACTIVE, Contact, FollowInfo, World

REMARK_MAX = 20
DESCRIPTION_MAX = 150


def contact_json(contact: Contact) -> dict[str, Any]:
    return {
        "external_userid": contact.external_userid,
        "name": contact.name,
        "type": contact.type,
        "avatar": contact.avatar,
        "gender": contact.gender,
        "unionid": contact.unionid,
    }


def _follow_common(follow: FollowInfo) -> dict[str, Any]:
    data = {
        "userid": follow.userid,
        "remark": follow.remark,
        "description": follow.description,
        "createtime": follow.createtime,
        "remark_mobiles": [],
        "add_way": follow.add_way,
        "oper_userid": follow.userid,
    }
    if follow.state:  # WeCom leaves state out when the customer came without one
        data["state"] = follow.state
    return data


def follow_relation(world: World, userid: str, external_userid: str) -> tuple[Contact, FollowInfo]:
    contact = world.contacts.get(external_userid)
    follow = contact.follow(userid) if contact else None
    if contact is None or follow is None:
        raise ApiError(errors.NOT_EXTERNAL_CONTACT, "not external contact")
    return contact, follow


def get_follow_user_list(world: World, request: Request) -> dict[str, Any]:
    return {"follow_user": [s.userid for s in world.staff.values() if s.status == STAFF_ACTIVE]}


def get_user(world: World, request: Request) -> dict[str, Any]:
    staff = staff_or_error(world, request.required("userid"))
    return {
        "userid": staff.userid,
        "name": staff.name,
        "status": staff.status,
        "department": [1],
        "main_department": 1,
    }


def list_contacts(world: World, request: Request) -> dict[str, Any]:
    staff = staff_or_error(world, request.required("userid"))
    external_userids = [c.external_userid for c, _ in world.follows_of(staff.userid)]
    if not external_userids:
        # WeCom answers a staff member without customers with an error, not an empty list.
        raise ApiError(errors.NOT_EXTERNAL_CONTACT, "not external contact")
    return {"external_userid": external_userids}


def get_contact(world: World, request: Request) -> dict[str, Any]:
    contact = world.contacts.get(request.required("external_userid"))
    if contact is None or not contact.follow_users:
        raise ApiError(errors.NOT_EXTERNAL_CONTACT, "not external contact")
    follow_user = []
    for follow in contact.follow_users:
        tags = []
        for tag_id in follow.tags:
            found = world.find_tag(tag_id)
            if found:
                group, tag = found
                tags.append(
                    {
                        "group_name": group.group_name,
                        "tag_name": tag.name,
                        "tag_id": tag.id,
                        "type": 1,
                    }
                )
        follow_user.append({**_follow_common(follow), "tags": tags})
    return {"external_contact": contact_json(contact), "follow_user": follow_user}


def batch_get_by_user(world: World, request: Request) -> dict[str, Any]:
    userids = request.strings("userid_list", min_items=1, max_items=100)
    pairs = [pair for userid in userids for pair in world.follows_of(userid)]
    chunk, next_cursor = page(request, pairs, default_limit=50, max_limit=100)
    return {
        "external_contact_list": [
            {
                "external_contact": contact_json(contact),
                "follow_info": {**_follow_common(follow), "tag_id": list(follow.tags)},
            }
            for contact, follow in chunk
        ],
        "next_cursor": next_cursor,
    }


def remark(world: World, request: Request) -> dict[str, Any]:
    _, follow = follow_relation(
        world, request.required("userid"), request.required("external_userid")
    )
    # Only the fields sent change, as in WeCom; check both before changing either.
    changes = {}
    if "remark" in request.body:
        changes["remark"] = request.text("remark", max_length=REMARK_MAX)
    if "description" in request.body:
        changes["description"] = request.text("description", max_length=DESCRIPTION_MAX)
    for name, value in changes.items():
        setattr(follow, name, value)
    return {}


def mark_tag(world: World, request: Request) -> dict[str, Any]:
    _, follow = follow_relation(
        world, request.required("userid"), request.required("external_userid")
    )
    add = request.strings("add_tag")
    remove = request.strings("remove_tag")
    if not add and not remove:
        raise invalid("add_tag and remove_tag are both empty")
    for tag_id in add + remove:
        if world.find_tag(tag_id) is None:
            raise ApiError(errors.INVALID_TAG_ID, f"invalid tagid: {tag_id}")
    for tag_id in add:
        if tag_id not in follow.tags:
            follow.tags.append(tag_id)
    follow.tags = [t for t in follow.tags if t not in remove]
    return {}


ROUTES = {
    "externalcontact/get_follow_user_list": get_follow_user_list,
    "user/get": get_user,
    "externalcontact/list": list_contacts,
    "externalcontact/get": get_contact,
    "externalcontact/batch/get_by_user": batch_get_by_user,
    "externalcontact/remark": remark,
    "externalcontact/mark_tag": mark_tag,
}
