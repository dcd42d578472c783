"""Fake APIs for mass messages (tasks the staff member confirms) and welcome messages."""

from __future__ import annotations

from typing import Any

from wecom.fake import errors
from wecom.fake.api.common import Request, invalid, page, staff_or_error
from wecom.fake.errors import ApiError
from wecom.fake.state import (
    RECEIPT_NOT_FRIEND,
    RECEIPT_RECEIVE_LIMIT,
    RECEIPT_SENT,
    TASK_SENT,
    TASK_UNSENT,
    MassMessage,
    MassReceipt,
    MassTask,
    WelcomeMessage,
    World,
)

SINGLE_RECEIVERS_MAX = 10_000
GROUP_RECEIVERS_MAX = 2_000
ATTACHMENTS_MAX = 9
ATTACHMENT_TYPES = {"image", "link", "miniprogram", "video", "file"}
LIST_WINDOW_MAX = 31 * 86400
REMINDS_PER_DAY = 3


def _content(request: Request) -> tuple[dict | None, list]:
    text = request.arg("text")
    if text is not None and not (isinstance(text, dict) and isinstance(text.get("content"), str)):
        raise invalid("text must be {content}")
    attachments = request.arg("attachments") or []
    if not isinstance(attachments, list) or len(attachments) > ATTACHMENTS_MAX:
        raise invalid(f"attachments must be a list of at most {ATTACHMENTS_MAX}")
    for attachment in attachments:
        msgtype = attachment.get("msgtype") if isinstance(attachment, dict) else None
        if msgtype not in ATTACHMENT_TYPES or not isinstance(attachment.get(msgtype), dict):
            raise invalid(f"attachment msgtype must be one of {sorted(ATTACHMENT_TYPES)}")
    if not (text and text["content"]) and not attachments:
        raise invalid("text and attachments are both empty")
    return text, attachments


def _message(world: World, request: Request) -> MassMessage:
    message = world.mass_messages.get(request.required("msgid"))
    if message is None:
        raise ApiError(errors.INVALID_MSGID, "invalid msgid")
    return message


def _single_receivers(world: World, sender: str | None, request: Request):
    external_userids = request.strings("external_userid", max_items=SINGLE_RECEIVERS_MAX)
    if not external_userids:
        if not sender:
            raise invalid("sender or external_userid is required")
        # No receivers named: WeCom sends to all of the sender's customers (tag_filter ignored).
        external_userids = [c.external_userid for c, _ in world.follows_of(sender)]
    assigned, failed = [], []
    for external_userid in dict.fromkeys(external_userids):
        contact = world.contacts.get(external_userid)
        follows = sorted(contact.follow_users, key=lambda f: f.createtime) if contact else []
        if sender:
            follows = [f for f in follows if f.userid == sender]
        if follows:
            # Without a sender the customer's earliest follower sends it.
            assigned.append((follows[0].userid, external_userid))
        else:
            failed.append(external_userid)
    return assigned, failed


def _group_receivers(world: World, sender: str, request: Request):
    chat_ids = request.strings("chat_id_list", max_items=GROUP_RECEIVERS_MAX)
    if not chat_ids:
        chat_ids = [
            g.chat_id for g in world.groups.values() if g.owner == sender and not g.dismissed
        ]
    assigned, failed = [], []
    for chat_id in dict.fromkeys(chat_ids):
        group = world.live_group(chat_id)
        if group is not None and group.owner == sender:
            assigned.append((sender, chat_id))
        else:
            failed.append(chat_id)
    return assigned, failed


def add_msg_template(world: World, request: Request) -> dict[str, Any]:
    chat_type = request.arg("chat_type") or "single"
    if chat_type not in ("single", "group"):
        raise invalid("chat_type must be single or group")
    sender = request.text("sender") or None
    if sender:
        staff_or_error(world, sender)
    elif chat_type == "group":
        raise invalid("sender is required for chat_type group")
    text, attachments = _content(request)
    if chat_type == "single":
        assigned, failed = _single_receivers(world, sender, request)
    else:
        assigned, failed = _group_receivers(world, sender, request)
    message = MassMessage(
        msgid=world.new_id("msg"),
        chat_type=chat_type,
        creator=sender or "",
        create_time=world.now(),
        text=text,
        attachments=attachments,
    )
    for userid, target in assigned:
        message.tasks.setdefault(userid, MassTask(userid))
        message.receipts.append(MassReceipt(userid, target))
    world.mass_messages[message.msgid] = message
    return {"fail_list": failed, "msgid": message.msgid}


def confirm_mass_message(world: World, msgid: str, userid: str) -> list[dict[str, Any]]:
    """The sender taps 'send' in the WeCom app: deliver to each receiver under the caps."""
    message = world.mass_messages.get(msgid)
    task = message.tasks.get(userid) if message else None
    if task is None or message.cancelled or task.status != TASK_UNSENT:
        raise ApiError(errors.INVALID_MSGID, f"no unsent task of {userid} for {msgid}")
    now = world.now()
    task.status, task.send_time = TASK_SENT, now
    period = world.cap_period(now)
    for receipt in message.receipts:
        if receipt.sender != userid:
            continue
        if message.chat_type == "single":
            contact = world.contacts.get(receipt.target)
            reachable = contact is not None and contact.follow(userid) is not None
        else:
            reachable = world.live_group(receipt.target) is not None
        key = (receipt.target, period)
        if not reachable:
            receipt.status = RECEIPT_NOT_FRIEND
        elif world.mass_deliveries.get(key, 0) >= world.mass_message_cap:
            receipt.status = RECEIPT_RECEIVE_LIMIT
        else:
            receipt.status, receipt.send_time = RECEIPT_SENT, now
            world.mass_deliveries[key] = world.mass_deliveries.get(key, 0) + 1
    return [_receipt_json(message, r) for r in message.receipts if r.sender == userid]


def _receipt_json(message: MassMessage, receipt: MassReceipt) -> dict[str, Any]:
    target_field = "external_userid" if message.chat_type == "single" else "chat_id"
    data = {target_field: receipt.target, "userid": receipt.sender, "status": receipt.status}
    if receipt.send_time:
        data["send_time"] = receipt.send_time
    return data


def get_groupmsg_list_v2(world: World, request: Request) -> dict[str, Any]:
    chat_type = request.required("chat_type")
    start, end = request.integer("start_time"), request.integer("end_time")
    if not start or not end or end < start or end - start > LIST_WINDOW_MAX:
        raise invalid("start_time/end_time must span at most one month")
    creator = request.text("creator")
    filter_type = request.integer("filter_type", 2)
    messages = [
        m
        for m in world.mass_messages.values()
        if m.chat_type == chat_type
        and start <= m.create_time <= end
        and (not creator or m.creator == creator)
        and (filter_type == 2 or m.create_type == filter_type)
    ]
    chunk, next_cursor = page(request, messages, default_limit=50, max_limit=100)
    group_msg_list = []
    for m in chunk:
        entry = {
            "msgid": m.msgid,
            "creator": m.creator,
            "create_time": m.create_time,
            "create_type": m.create_type,
            "attachments": m.attachments,
        }
        if m.text:
            entry["text"] = m.text
        group_msg_list.append(entry)
    return {"group_msg_list": group_msg_list, "next_cursor": next_cursor}


def get_groupmsg_task(world: World, request: Request) -> dict[str, Any]:
    message = _message(world, request)
    chunk, next_cursor = page(
        request, list(message.tasks.values()), default_limit=500, max_limit=1000
    )
    task_list = []
    for task in chunk:
        entry = {"userid": task.userid, "status": task.status}
        if task.send_time:
            entry["send_time"] = task.send_time
        task_list.append(entry)
    return {"task_list": task_list, "next_cursor": next_cursor}


def get_groupmsg_send_result(world: World, request: Request) -> dict[str, Any]:
    message = _message(world, request)
    userid = request.required("userid")
    receipts = [r for r in message.receipts if r.sender == userid]
    chunk, next_cursor = page(request, receipts, default_limit=500, max_limit=1000)
    return {"send_list": [_receipt_json(message, r) for r in chunk], "next_cursor": next_cursor}


def remind_groupmsg_send(world: World, request: Request) -> dict[str, Any]:
    message = _message(world, request)
    now = world.clock()
    message.reminders = [t for t in message.reminders if t > now - 86400]
    if len(message.reminders) >= REMINDS_PER_DAY:
        # 41063 is a stand-in: WeCom documents the limit, we have not confirmed its code.
        raise ApiError(errors.REMIND_LIMIT_EXCEEDED, "remind limit exceeded")
    message.reminders.append(now)
    return {}


def cancel_groupmsg_send(world: World, request: Request) -> dict[str, Any]:
    _message(world, request).cancelled = True
    return {}


def send_welcome_msg(world: World, request: Request) -> dict[str, Any]:
    code = world.welcome_codes.get(request.required("welcome_code"))
    text, attachments = _content(request)
    if code is None or code.used or world.clock() - code.issued_at > world.welcome_code_ttl:
        # 41051 is confirmed for a reused code; for unknown or expired codes it is a stand-in.
        raise ApiError(errors.WELCOME_CODE_INVALID, "welcome code invalid, used or expired")
    code.used = True
    world.welcome_messages.append(
        WelcomeMessage(
            code.code,
            code.userid,
            code.external_userid,
            text,
            attachments,
            world.now(),
        )
    )
    return {}


ROUTES = {
    "externalcontact/add_msg_template": add_msg_template,
    "externalcontact/get_groupmsg_list_v2": get_groupmsg_list_v2,
    "externalcontact/get_groupmsg_task": get_groupmsg_task,
    "externalcontact/get_groupmsg_send_result": get_groupmsg_send_result,
    "externalcontact/remind_groupmsg_send": remind_groupmsg_send,
    "externalcontact/cancel_groupmsg_send": cancel_groupmsg_send,
    "externalcontact/send_welcome_msg": send_welcome_msg,
}
