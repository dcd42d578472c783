"""Fake APIs for the corp's customer tag library."""

from __future__ import annotations

from typing import Any

from wecom.fake import errors
from wecom.fake.api.common import Request, invalid
from wecom.fake.errors import ApiError
from wecom.fake.state import Tag, TagGroup, World

NAME_MAX = 30


def _tag_json(tag: Tag) -> dict[str, Any]:
    return {"id": tag.id, "name": tag.name, "create_time": tag.create_time, "order": tag.order}


def tag_group_json(group: TagGroup, tags: list[Tag] | None = None) -> dict[str, Any]:
    shown = group.tags if tags is None else tags
    return {
        "group_id": group.group_id,
        "group_name": group.group_name,
        "create_time": group.create_time,
        "order": group.order,
        # A larger order comes first, as in WeCom's admin console.
        "tag": [_tag_json(t) for t in sorted(shown, key=lambda t: -t.order)],
    }


def _tag_name(request_tag: Any) -> str:
    if not isinstance(request_tag, dict) or not isinstance(request_tag.get("name"), str):
        raise invalid("tag entries need a name")
    name = request_tag["name"]
    if not name or len(name) > NAME_MAX:
        raise invalid(f"tag name must be 1 to {NAME_MAX} characters")
    return name


def get_corp_tag_list(world: World, request: Request) -> dict[str, Any]:
    group_ids = request.strings("group_id")
    tag_ids = request.strings("tag_id")
    groups = sorted(world.tag_groups.values(), key=lambda g: -g.order)
    result = []
    for group in groups:
        # With both filters WeCom ignores tag_id.
        if group_ids:
            if group.group_id in group_ids:
                result.append(tag_group_json(group))
        elif tag_ids:
            chosen = [t for t in group.tags if t.id in tag_ids]
            if chosen:
                result.append(tag_group_json(group, chosen))
        else:
            result.append(tag_group_json(group))
    return {"tag_group": result}


def add_corp_tag(world: World, request: Request) -> dict[str, Any]:
    new_tags = request.arg("tag") or []
    if not isinstance(new_tags, list) or not new_tags:
        raise invalid("tag is empty")
    names = [_tag_name(t) for t in new_tags]
    group_id = request.arg("group_id")
    group_name = request.text("group_name", max_length=NAME_MAX)
    now = world.now()
    if group_id:
        group = world.tag_groups.get(group_id)
        if group is None:
            raise ApiError(errors.INVALID_TAG_ID, f"invalid group_id: {group_id}")
    else:
        if not group_name:
            raise invalid("group_id or group_name is required")
        # A known group name adds the tags to that group, as WeCom does.
        group = next((g for g in world.tag_groups.values() if g.group_name == group_name), None)
        if group is None:
            group = TagGroup(world.new_id("etgroup"), group_name, request.integer("order"), now)
            world.tag_groups[group.group_id] = group
    existing = {t.name for t in group.tags}
    if len(set(names)) != len(names) or existing & set(names):
        raise ApiError(errors.TAG_NAME_EXISTS, "tag name already exists")
    created = []
    for request_tag, name in zip(new_tags, names, strict=True):
        order = int(request_tag.get("order") or 0)
        tag = Tag(world.new_id("ettag"), name, order, now)
        group.tags.append(tag)
        created.append(tag)
    return {"tag_group": tag_group_json(group, created)}


def edit_corp_tag(world: World, request: Request) -> dict[str, Any]:
    target_id = request.required("id")
    name = request.text("name", max_length=NAME_MAX) if "name" in request.body else None
    order = request.integer("order") if "order" in request.body else None
    group = world.tag_groups.get(target_id)
    if group is not None:
        if name is not None:
            if any(g.group_name == name for g in world.tag_groups.values() if g is not group):
                raise ApiError(errors.TAG_NAME_EXISTS, "tag group name already exists")
            group.group_name = name
        if order is not None:
            group.order = order
        return {}
    found = world.find_tag(target_id)
    if found is None:
        raise ApiError(errors.INVALID_TAG_ID, f"invalid tagid: {target_id}")
    group, tag = found
    if name is not None:
        if any(t.name == name for t in group.tags if t is not tag):
            raise ApiError(errors.TAG_NAME_EXISTS, "tag name already exists")
        tag.name = name
    if order is not None:
        tag.order = order
    return {}


def delete_tags(world: World, tag_ids: list[str], group_ids: list[str]) -> None:
    """Delete tags and groups; an emptied group goes too and customers lose the tags."""
    removed = set(tag_ids)
    for group_id in group_ids:
        group = world.tag_groups.pop(group_id)
        removed.update(t.id for t in group.tags)
    for group in list(world.tag_groups.values()):
        group.tags = [t for t in group.tags if t.id not in removed]
        if not group.tags:
            del world.tag_groups[group.group_id]
    for contact in world.contacts.values():
        for follow in contact.follow_users:
            follow.tags = [t for t in follow.tags if t not in removed]


def del_corp_tag(world: World, request: Request) -> dict[str, Any]:
    tag_ids = request.strings("tag_id")
    group_ids = request.strings("group_id")
    if not tag_ids and not group_ids:
        raise invalid("tag_id and group_id are both empty")
    for tag_id in tag_ids:
        if world.find_tag(tag_id) is None:
            raise ApiError(errors.INVALID_TAG_ID, f"invalid tagid: {tag_id}")
    for group_id in group_ids:
        if group_id not in world.tag_groups:
            raise ApiError(errors.INVALID_TAG_ID, f"invalid group_id: {group_id}")
    delete_tags(world, tag_ids, group_ids)
    return {}


ROUTES = {
    "externalcontact/get_corp_tag_list": get_corp_tag_list,
    "externalcontact/add_corp_tag": add_corp_tag,
    "externalcontact/edit_corp_tag": edit_corp_tag,
    "externalcontact/del_corp_tag": del_corp_tag,
}
