"""The product's one door to WeCom: small functions in our own terms, raising our own errors.

Everything else calls these; only wecom/ knows wechatpy, URLs and errcodes. Calls go through
the shared limiter (wecom.ratelimit) and the Redis-cached token (wecom.client).
"""

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time
from functools import cache
from itertools import islice
from zoneinfo import ZoneInfo

import redis
from django.conf import settings

from wecom.client import WeComClient
from wecom.ratelimit import Limit, WeComLimiter
from wecom.types import (
    ChannelCodeResult,
    ContactInfo,
    Content,
    CorpTag,
    CorpTagGroup,
    CreatedMassMessage,
    FailedGroupTransfer,
    FollowInfo,
    GroupDayStatistics,
    GroupInfo,
    GroupMember,
    MassMessageTask,
    SendResult,
    StaffConfirmation,
    StaffInfo,
    TransferResult,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
# WeCom's own caps per call.
MAX_SINGLE_RECEIVERS = 10_000
MAX_GROUP_RECEIVERS = 2_000
MAX_TRANSFER_CUSTOMERS = 100
MAX_TRANSFER_GROUPS = 100
MAX_BATCH_USERS = 100


@cache
def client() -> WeComClient:
    """This process's client (token and limits are shared through Redis, not here)."""
    connection = redis.Redis.from_url(settings.REDIS_URL)
    limit = Limit(per_second=settings.WECOM_RATE_PER_SECOND, concurrency=settings.WECOM_CONCURRENCY)
    return WeComClient(
        corp_id=settings.WECOM_CORP_ID,
        secret=settings.WECOM_SECRET,
        api_base=settings.WECOM_API_BASE,
        redis_client=connection,
        limiter=WeComLimiter(connection, default=limit),
    )


def _post(api: str, data: dict) -> dict:
    return client().post(api, data=data)


def _get(api: str, **params) -> dict:
    return client().get(api, params=params)


def _when(timestamp: int | str | None) -> datetime | None:
    return datetime.fromtimestamp(int(timestamp), UTC) if timestamp else None


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive chunks of at most `size` (itertools.batched arrives with Python 3.12)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _paged(api: str, data: dict, key: str) -> Iterator[dict]:
    """Follow WeCom's cursor through every page of a list."""
    cursor = ""
    while True:
        result = _post(api, {**data, "cursor": cursor})
        yield from result.get(key, [])
        cursor = result.get("next_cursor", "")
        if not cursor:
            return


# --- staff and contacts ------------------------------------------------------------------


def staff_list() -> list[StaffInfo]:
    """Staff with customer-contact permission, with their names."""
    userids = _get("externalcontact/get_follow_user_list").get("follow_user", [])
    staff = []
    for userid in userids:
        user = _get("user/get", userid=userid)
        staff.append(
            StaffInfo(userid=userid, name=user.get("name", userid), active=user.get("status") == 1)
        )
    return staff


def contacts_by_staff(userids: Iterable[str], *, page_size: int = 100) -> Iterator[ContactInfo]:
    """Every contact of these staff members with that follow relation (one row per pair)."""
    for chunk in batched(userids, MAX_BATCH_USERS):
        rows = _paged(
            "externalcontact/batch/get_by_user",
            {"userid_list": list(chunk), "limit": min(page_size, 100)},
            "external_contact_list",
        )
        for row in rows:
            follow = row["follow_info"]
            yield _contact_info(row["external_contact"], follow, tag_ids=follow.get("tag_id", []))


def contact_get(external_userid: str) -> list[ContactInfo]:
    """One contact as each of the staff members following them sees them."""
    result = _get("externalcontact/get", external_userid=external_userid)
    contact = result["external_contact"]
    return [
        _contact_info(contact, follow, tag_ids=[t["tag_id"] for t in follow.get("tags", [])])
        for follow in result.get("follow_user", [])
    ]


def _contact_info(contact: dict, follow: dict, *, tag_ids) -> ContactInfo:
    return ContactInfo(
        external_userid=contact["external_userid"],
        name=contact.get("name", ""),
        gender=int(contact.get("gender", 0)),
        avatar=contact.get("avatar", ""),
        unionid=contact.get("unionid", ""),
        follow=FollowInfo(
            userid=follow["userid"],
            remark=follow.get("remark", ""),
            description=follow.get("description", ""),
            added_at=_when(follow.get("createtime")),
            tag_ids=tuple(tag_ids),
            state=follow.get("state", ""),
            add_way=int(follow.get("add_way", 0)),
        ),
    )


def contact_set_remark(*, userid: str, external_userid: str, remark: str, description: str = ""):
    _post(
        "externalcontact/remark",
        {
            "userid": userid,
            "external_userid": external_userid,
            "remark": remark,
            "description": description,
        },
    )


# --- corp tags ---------------------------------------------------------------------------


def _tag_group(raw: dict) -> CorpTagGroup:
    return CorpTagGroup(
        id=raw["group_id"],
        name=raw["group_name"],
        order=int(raw.get("order", 0)),
        tags=tuple(
            CorpTag(id=t["id"], name=t["name"], order=int(t.get("order", 0)))
            for t in raw.get("tag", [])
        ),
    )


def corp_tags() -> list[CorpTagGroup]:
    return [_tag_group(g) for g in _post("externalcontact/get_corp_tag_list", {})["tag_group"]]


def corp_tag_add(*, group_name: str, tag_names: list[str], group_id: str = "") -> CorpTagGroup:
    """Add tags to a group (by id), or create the group (by name) with them."""
    data = {"tag": [{"name": name} for name in tag_names]}
    data.update({"group_id": group_id} if group_id else {"group_name": group_name})
    return _tag_group(_post("externalcontact/add_corp_tag", data)["tag_group"])


def corp_tag_rename(*, id: str, name: str) -> None:
    _post("externalcontact/edit_corp_tag", {"id": id, "name": name})


def corp_tag_delete(*, tag_ids: list[str] = (), group_ids: list[str] = ()) -> None:
    _post("externalcontact/del_corp_tag", {"tag_id": list(tag_ids), "group_id": list(group_ids)})


def contact_mark_tags(
    *, userid: str, external_userid: str, add: list[str] = (), remove: list[str] = ()
) -> None:
    """Tag or untag a contact as seen by one staff member (WeCom tags the follow relation)."""
    _post(
        "externalcontact/mark_tag",
        {
            "userid": userid,
            "external_userid": external_userid,
            "add_tag": list(add),
            "remove_tag": list(remove),
        },
    )


# --- channel codes and group join codes --------------------------------------------------


def contact_way_create(
    *, state: str, userids: list[str], skip_verify: bool = True, remark: str = ""
) -> ChannelCodeResult:
    """A QR code that adds one (type 1) or any of several (type 2) staff members."""
    result = _post(
        "externalcontact/add_contact_way",
        {
            "type": 1 if len(userids) == 1 else 2,
            "scene": 2,
            "state": state,
            "user": userids,
            "skip_verify": skip_verify,
            "remark": remark,
        },
    )
    return ChannelCodeResult(config_id=result["config_id"], qr_url=result.get("qr_code", ""))


def contact_way_update(*, config_id: str, userids: list[str], skip_verify: bool = True) -> None:
    _post(
        "externalcontact/update_contact_way",
        {"config_id": config_id, "user": userids, "skip_verify": skip_verify},
    )


def contact_way_delete(*, config_id: str) -> None:
    _post("externalcontact/del_contact_way", {"config_id": config_id})


def join_way_create(*, state: str, chat_ids: list[str], auto_create_room: bool = True):
    """A group QR code (群活码) over up to 5 groups; WeCom fills them in turn."""
    result = _post(
        "externalcontact/groupchat/add_join_way",
        {
            "scene": 2,
            "chat_id_list": chat_ids,
            "state": state,
            "auto_create_room": 1 if auto_create_room else 0,
        },
    )
    config_id = result["config_id"]
    way = _post("externalcontact/groupchat/get_join_way", {"config_id": config_id})["join_way"]
    return ChannelCodeResult(config_id=config_id, qr_url=way.get("qr_code", ""))


def join_way_update(*, config_id: str, state: str, chat_ids: list[str]) -> None:
    _post(
        "externalcontact/groupchat/update_join_way",
        {"config_id": config_id, "scene": 2, "chat_id_list": chat_ids, "state": state},
    )


def join_way_delete(*, config_id: str) -> None:
    _post("externalcontact/groupchat/del_join_way", {"config_id": config_id})


# --- messages ----------------------------------------------------------------------------


def mass_message_send(
    *,
    sender: str,
    content: Content,
    external_userids: list[str] = (),
    chat_ids: list[str] = (),
) -> MassMessageTask:
    """Create a mass-message task for one staff member to confirm in WeCom.

    Nothing reaches anyone until they confirm; follow up with `mass_message_confirmations`
    and `mass_message_results`. Give customers or groups, not both.
    """
    if bool(external_userids) == bool(chat_ids):
        raise ValueError("send to customers or to groups: exactly one of the two")
    if len(external_userids) > MAX_SINGLE_RECEIVERS or len(chat_ids) > MAX_GROUP_RECEIVERS:
        raise ValueError("too many receivers for one task; split by sender and batch")
    data = {"sender": sender, "allow_select": False, **content.as_wecom()}
    if chat_ids:
        data.update(chat_type="group", chat_id_list=list(chat_ids))
    else:
        data.update(chat_type="single", external_userid=list(external_userids))
    result = _post("externalcontact/add_msg_template", data)
    return MassMessageTask(msgid=result["msgid"], failed=tuple(result.get("fail_list", [])))


def mass_messages_created(
    *, sender: str, chat_type: str, start: datetime, end: datetime
) -> list[CreatedMassMessage]:
    """Mass messages `sender` created between start and end (WeCom allows ≤ 1 month).

    How a sender who crashed mid-call finds out whether WeCom took the task after all.
    """
    data = {
        "chat_type": chat_type,
        "start_time": int(start.timestamp()),
        "end_time": int(end.timestamp()),
        "creator": sender,
        "filter_type": 2,
        "limit": 100,
    }
    found = []
    for row in _paged("externalcontact/get_groupmsg_list_v2", data, "group_msg_list"):
        text = row.get("text") or ""
        if isinstance(text, dict):
            text = text.get("content", "")
        found.append(
            CreatedMassMessage(
                msgid=row["msgid"],
                creator=row.get("creator", ""),
                created_at=_when(row.get("create_time")),
                text=text,
                attachments=tuple(row.get("attachments") or ()),
            )
        )
    return found


def mass_message_confirmations(msgid: str) -> list[StaffConfirmation]:
    tasks = _paged(
        "externalcontact/get_groupmsg_task", {"msgid": msgid, "limit": 1000}, "task_list"
    )
    return [
        StaffConfirmation(
            userid=t["userid"], sent=t.get("status") == 2, sent_at=_when(t.get("send_time"))
        )
        for t in tasks
    ]


def mass_message_results(msgid: str, userid: str) -> list[SendResult]:
    rows = _paged(
        "externalcontact/get_groupmsg_send_result",
        {"msgid": msgid, "userid": userid, "limit": 1000},
        "send_list",
    )
    return [
        SendResult(
            userid=r.get("userid", userid),
            external_userid=r.get("external_userid", ""),
            chat_id=r.get("chat_id", ""),
            status=int(r.get("status", 0)),
            sent_at=_when(r.get("send_time")),
        )
        for r in rows
    ]


def mass_message_remind(msgid: str) -> None:
    """Remind the staff member to confirm (WeCom allows 3 reminders per message per 24 h)."""
    _post("externalcontact/remind_groupmsg_send", {"msgid": msgid})


def mass_message_cancel(msgid: str) -> None:
    _post("externalcontact/cancel_groupmsg_send", {"msgid": msgid})


def welcome_message_send(*, welcome_code: str, content: Content) -> None:
    """Greet a new contact; only within 20 s of the add event, only once (41051 after)."""
    _post("externalcontact/send_welcome_msg", {"welcome_code": welcome_code, **content.as_wecom()})


# --- groups ------------------------------------------------------------------------------


def group_ids(*, owners: list[str] = ()) -> Iterator[str]:
    data: dict = {"status_filter": 0, "limit": 1000}
    if owners:
        data["owner_filter"] = {"userid_list": list(owners)}
    for row in _paged("externalcontact/groupchat/list", data, "group_chat_list"):
        yield row["chat_id"]


def group_get(chat_id: str) -> GroupInfo:
    raw = _post("externalcontact/groupchat/get", {"chat_id": chat_id, "need_name": 1})["group_chat"]
    return GroupInfo(
        chat_id=raw["chat_id"],
        name=raw.get("name", ""),
        owner=raw["owner"],
        notice=raw.get("notice", ""),
        created_at=_when(raw.get("create_time")),
        admins=tuple(a["userid"] for a in raw.get("admin_list", [])),
        members=tuple(
            GroupMember(
                userid=m["userid"],
                is_external=int(m.get("type", 1)) == 2,
                joined_at=_when(m.get("join_time")),
                join_scene=m.get("join_scene"),
                invitor_userid=(m.get("invitor") or {}).get("userid", ""),
                name=m.get("name", ""),
            )
            for m in raw.get("member_list", [])
        ),
    )


def group_statistics(*, day: date, owners: list[str]) -> list[GroupDayStatistics]:
    """One Shanghai calendar day of group activity per owner (WeCom keeps no per-message data)."""
    start = int(datetime.combine(day, time.min, SHANGHAI).timestamp())
    items, offset = [], 0
    while True:
        result = _post(
            "externalcontact/groupchat/statistic",
            {
                "day_begin_time": start,
                "day_end_time": start,
                "owner_filter": {"userid_list": owners},
                "offset": offset,
                "limit": 1000,
            },
        )
        items.extend(result.get("items", []))
        offset = result.get("next_offset", 0)
        if not offset or offset >= result.get("total", 0):
            break
    return [
        GroupDayStatistics(
            owner=i["owner"],
            new_chats=i["data"].get("new_chat_cnt", 0),
            chats=i["data"].get("chat_total", 0),
            chats_with_messages=i["data"].get("chat_has_msg", 0),
            new_members=i["data"].get("new_member_cnt", 0),
            members=i["data"].get("member_total", 0),
            members_who_spoke=i["data"].get("member_has_msg", 0),
            messages=i["data"].get("msg_total", 0),
        )
        for i in items
    ]


# --- leaver transfer (离职继承) and handover ----------------------------------------------


def customers_transfer(
    *, handover_userid: str, takeover_userid: str, external_userids: list[str], resigned: bool
) -> list[TransferResult]:
    """Move customers to a successor, 100 per call; WeCom completes it after 24 h."""
    api = (
        "externalcontact/resigned/transfer_customer"
        if resigned
        else ("externalcontact/transfer_customer")
    )
    results = []
    for chunk in batched(external_userids, MAX_TRANSFER_CUSTOMERS):
        answer = _post(
            api,
            {
                "handover_userid": handover_userid,
                "takeover_userid": takeover_userid,
                "external_userid": list(chunk),
            },
        )
        results.extend(
            TransferResult(
                external_userid=c["external_userid"], status=2, error_code=int(c.get("errcode", 0))
            )
            for c in answer.get("customer", [])
        )
    return results


def customers_transfer_result(
    *, handover_userid: str, takeover_userid: str, resigned: bool
) -> list[TransferResult]:
    api = (
        "externalcontact/resigned/transfer_result"
        if resigned
        else ("externalcontact/transfer_result")
    )
    rows = _paged(
        api, {"handover_userid": handover_userid, "takeover_userid": takeover_userid}, "customer"
    )
    return [
        TransferResult(
            external_userid=r["external_userid"],
            status=int(r.get("status", 2)),
            taken_over_at=_when(r.get("takeover_time")),
        )
        for r in rows
    ]


def groups_transfer(*, chat_ids: list[str], new_owner: str) -> list[FailedGroupTransfer]:
    failed = []
    for chunk in batched(chat_ids, MAX_TRANSFER_GROUPS):
        answer = _post(
            "externalcontact/groupchat/transfer",
            {"chat_id_list": list(chunk), "new_owner": new_owner},
        )
        failed.extend(
            FailedGroupTransfer(
                chat_id=f["chat_id"],
                error_code=int(f.get("errcode", 0)),
                message=f.get("errmsg", ""),
            )
            for f in answer.get("failed_chat_list", [])
        )
    return failed
