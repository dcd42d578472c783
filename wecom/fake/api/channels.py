"""Fake APIs for channel codes: 'contact me' ways and customer-group join ways."""

from __future__ import annotations

from typing import Any

from wecom.fake import errors
from wecom.fake.api.common import Request, invalid, staff_or_error
from wecom.fake.errors import ApiError
from wecom.fake.state import World

STATE_MAX = 30
REMARK_MAX = 30
JOIN_WAY_CHATS_MAX = 5
QR_CODE_URL = "https://wework.qpic.cn/fake-wecom/qr/{config_id}"

# Settings the app may pass and get back unchanged, with WeCom's defaults.
CONTACT_WAY_FIELDS = {
    "type": None,
    "scene": None,
    "style": None,
    "remark": "",
    "skip_verify": True,
    "state": "",
    "user": [],
    "party": [],
    "is_temp": False,
    "expires_in": None,
    "chat_expires_in": None,
    "unionid": None,
    "conclusions": None,
}
JOIN_WAY_FIELDS = {
    "scene": None,
    "remark": "",
    "auto_create_room": 1,
    "room_base_name": None,
    "room_base_id": None,
    "chat_id_list": [],
    "state": "",
    "mark_source": None,
}


def _settings(request: Request, fields: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    settings = dict(current)
    for name, default in fields.items():
        if name in request.body:
            settings[name] = request.body[name]
        elif name not in settings:
            settings[name] = default
    for name, max_length in (("state", STATE_MAX), ("remark", REMARK_MAX)):
        value = settings[name] or ""
        if not isinstance(value, str) or len(value) > max_length:
            raise invalid(f"{name} must be a string of at most {max_length} characters")
    return {k: v for k, v in settings.items() if v is not None}


def _check_contact_way(world: World, way: dict[str, Any]) -> None:
    if way.get("type") not in (1, 2) or way.get("scene") not in (1, 2):
        raise invalid("type and scene must be 1 or 2")
    users = way.get("user") or []
    if way["type"] == 1 and len(users) + len(way.get("party") or []) != 1:
        raise invalid("a single-person contact way takes exactly one user")
    for userid in users:
        staff_or_error(world, userid)


def _check_join_way(world: World, way: dict[str, Any]) -> None:
    if way.get("scene") not in (1, 2):
        raise invalid("scene must be 1 or 2")
    chat_ids = way.get("chat_id_list") or []
    if not 1 <= len(chat_ids) <= JOIN_WAY_CHATS_MAX:
        raise invalid(f"chat_id_list must hold 1 to {JOIN_WAY_CHATS_MAX} groups")
    for chat_id in chat_ids:
        if world.live_group(chat_id) is None:
            raise ApiError(errors.INVALID_CHAT_ID, f"invalid chat_id: {chat_id}")


def _way(ways: dict[str, dict[str, Any]], request: Request) -> dict[str, Any]:
    way = ways.get(request.required("config_id"))
    if way is None:
        raise ApiError(errors.INVALID_CONFIG_ID, "invalid config_id")
    return way


def add_contact_way(world: World, request: Request) -> dict[str, Any]:
    way = _settings(request, CONTACT_WAY_FIELDS, {})
    _check_contact_way(world, way)
    way["config_id"] = world.new_id("cw")
    if way["scene"] == 2:
        way["qr_code"] = QR_CODE_URL.format(config_id=way["config_id"])
    world.contact_ways[way["config_id"]] = way
    answer = {"config_id": way["config_id"]}
    if "qr_code" in way:
        answer["qr_code"] = way["qr_code"]
    return answer


def get_contact_way(world: World, request: Request) -> dict[str, Any]:
    return {"contact_way": dict(_way(world.contact_ways, request))}


def update_contact_way(world: World, request: Request) -> dict[str, Any]:
    way = _way(world.contact_ways, request)
    # type and scene are fixed when the way is created.
    updatable = {k: v for k, v in CONTACT_WAY_FIELDS.items() if k not in ("type", "scene")}
    updated = _settings(request, updatable, way)
    _check_contact_way(world, updated)
    way.update(updated)
    return {}


def del_contact_way(world: World, request: Request) -> dict[str, Any]:
    _way(world.contact_ways, request)
    del world.contact_ways[request.required("config_id")]
    return {}


def add_join_way(world: World, request: Request) -> dict[str, Any]:
    way = _settings(request, JOIN_WAY_FIELDS, {})
    _check_join_way(world, way)
    way["config_id"] = world.new_id("jw")
    if way["scene"] == 2:
        way["qr_code"] = QR_CODE_URL.format(config_id=way["config_id"])
    world.join_ways[way["config_id"]] = way
    return {"config_id": way["config_id"]}


def get_join_way(world: World, request: Request) -> dict[str, Any]:
    return {"join_way": dict(_way(world.join_ways, request))}


def update_join_way(world: World, request: Request) -> dict[str, Any]:
    way = _way(world.join_ways, request)
    updated = _settings(request, JOIN_WAY_FIELDS, way)
    _check_join_way(world, updated)
    way.update(updated)
    return {}


def del_join_way(world: World, request: Request) -> dict[str, Any]:
    _way(world.join_ways, request)
    del world.join_ways[request.required("config_id")]
    return {}


def way_by_state(ways: dict[str, dict[str, Any]], state: str) -> dict[str, Any] | None:
    return next((w for w in ways.values() if w.get("state") == state), None)


ROUTES = {
    "externalcontact/add_contact_way": add_contact_way,
    "externalcontact/get_contact_way": get_contact_way,
    "externalcontact/update_contact_way": update_contact_way,
    "externalcontact/del_contact_way": del_contact_way,
    "externalcontact/groupchat/add_join_way": add_join_way,
    "externalcontact/groupchat/get_join_way": get_join_way,
    "externalcontact/groupchat/update_join_way": update_join_way,
    "externalcontact/groupchat/del_join_way": del_join_way,
}
