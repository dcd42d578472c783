"""Fake APIs for customer groups: listing, details and daily statistics per owner."""

from __future__ import annotations

from typing import Any

from wecom.fake import errors
from wecom.fake.api.common import Request, invalid, page
from wecom.fake.errors import ApiError
from wecom.fake.state import SHANGHAI_UTC_OFFSET, STAFF_ACTIVE, Group, World

ORDER_FIELDS = {1: "new_chat_cnt", 2: "chat_total", 3: "new_member_cnt", 4: "member_total"}


def _status(world: World, group: Group) -> int:
    staff = world.staff.get(group.owner)
    if group.status == 0 and (staff is None or staff.status != STAFF_ACTIVE):
        return 1  # the owner has left and the group awaits a new one
    return group.status


def list_groups(world: World, request: Request) -> dict[str, Any]:
    status_filter = request.integer("status_filter", 0)
    owners = (request.arg("owner_filter") or {}).get("userid_list") or []
    groups = [
        g
        for g in world.groups.values()
        if not g.dismissed
        and (not owners or g.owner in owners)
        and (status_filter == 0 or _status(world, g) == status_filter)
    ]
    chunk, next_cursor = page(request, groups, default_limit=100, max_limit=1000)
    return {
        "group_chat_list": [{"chat_id": g.chat_id, "status": _status(world, g)} for g in chunk],
        "next_cursor": next_cursor,
    }


def get_group(world: World, request: Request) -> dict[str, Any]:
    chat_id = request.required("chat_id")
    group = world.live_group(chat_id)
    if group is None:
        raise ApiError(errors.INVALID_CHAT_ID, f"invalid chat_id: {chat_id}")
    need_name = bool(request.integer("need_name", 0))
    members = []
    for m in group.members:
        member = {
            "userid": m.userid,
            "type": m.type,
            "join_time": m.join_time,
            "join_scene": m.join_scene,
            "group_nickname": m.group_nickname,
        }
        if m.invitor:
            member["invitor"] = {"userid": m.invitor}
        if m.state:
            member["state"] = m.state
        if need_name:
            member["name"] = m.name
        members.append(member)
    return {
        "group_chat": {
            "chat_id": group.chat_id,
            "name": group.name,
            "owner": group.owner,
            "create_time": group.create_time,
            "notice": group.notice,
            "member_list": members,
            "admin_list": [{"userid": u} for u in group.admin_list],
            "member_version": group.member_version,
        }
    }


def _day_start(timestamp: int) -> int:
    """Midnight (China time) of the day the timestamp falls in, as WeCom rounds it."""
    return (timestamp + SHANGHAI_UTC_OFFSET) // 86400 * 86400 - SHANGHAI_UTC_OFFSET


def owner_statistics(world: World, owner: str, start: int, end: int) -> dict[str, int]:
    """Statistics over [start, end) for the groups the owner owns now."""
    groups = [
        g
        for g in world.groups.values()
        if g.owner == owner and not g.dismissed and g.create_time < end
    ]
    chat_ids = {g.chat_id for g in groups}
    speeches = [s for s in world.speeches if s.chat_id in chat_ids and start <= s.at < end]
    members = [m for g in groups for m in g.members if m.join_time < end]
    return {
        "new_chat_cnt": sum(1 for g in groups if g.create_time >= start),
        "chat_total": len(groups),
        "chat_has_msg": len({s.chat_id for s in speeches}),
        "new_member_cnt": sum(1 for m in members if m.join_time >= start),
        "member_total": len(members),
        "member_has_msg": len({(s.chat_id, s.userid) for s in speeches}),
        "msg_total": sum(s.count for s in speeches),
        "migrate_trainee_chat_cnt": 0,
    }


def statistic(world: World, request: Request) -> dict[str, Any]:
    begin = request.integer("day_begin_time")
    if not begin:
        raise invalid("day_begin_time is required")
    end_day = request.integer("day_end_time") or begin
    start, end = _day_start(begin), _day_start(end_day) + 86400
    if end <= start:
        raise invalid("day_end_time before day_begin_time")
    owners = (request.arg("owner_filter") or {}).get("userid_list") or sorted(
        {g.owner for g in world.groups.values() if not g.dismissed}
    )
    items = [{"owner": o, "data": owner_statistics(world, o, start, end)} for o in owners]
    order_field = ORDER_FIELDS.get(request.integer("order_by", 1), "new_chat_cnt")
    items.sort(key=lambda i: i["data"][order_field], reverse=not request.integer("order_asc", 0))
    offset = request.integer("offset", 0)
    limit = request.integer("limit", 500) or 500
    if not 1 <= limit <= 1000 or offset < 0:
        raise invalid("limit must be 1 to 1000")
    chunk = items[offset : offset + limit]
    return {"total": len(items), "next_offset": offset + len(chunk), "items": chunk}


ROUTES = {
    "externalcontact/groupchat/list": list_groups,
    "externalcontact/groupchat/get": get_group,
    "externalcontact/groupchat/statistic": statistic,
}
