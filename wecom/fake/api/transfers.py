"""Fake APIs for handing customers and groups over to another staff member."""

from __future__ import annotations

from typing import Any

from wecom.fake import errors
from wecom.fake.api.common import Request, invalid, page, staff_or_error
from wecom.fake.state import (
    MEMBER_STAFF,
    TRANSFER_DONE,
    TRANSFER_REFUSED,
    TRANSFER_WAITING,
    FollowInfo,
    GroupMember,
    Transfer,
    World,
)

CUSTOMERS_PER_CALL = 100
GROUPS_PER_CALL = 100
ONJOB_TRANSFERS_PER_90_DAYS = 2
ADD_WAY_ASSIGNED = 202  # "assigned by an administrator"


def _transfer_customers(world: World, request: Request, kind: str) -> dict[str, Any]:
    handover = staff_or_error(world, request.required("handover_userid")).userid
    takeover = staff_or_error(world, request.required("takeover_userid")).userid
    if handover == takeover:
        raise invalid("handover_userid equals takeover_userid")
    external_userids = request.strings("external_userid", min_items=1, max_items=CUSTOMERS_PER_CALL)
    now = world.now()
    customer = []
    for external_userid in external_userids:
        contact = world.contacts.get(external_userid)
        recent = [
            t
            for t in world.transfers
            if t.kind == "onjob"
            and t.external_userid == external_userid
            and t.requested_at > now - 90 * 86400
        ]
        if contact is None or contact.follow(handover) is None:
            errcode = errors.NOT_EXTERNAL_CONTACT
        elif kind == "onjob" and len(recent) >= ONJOB_TRANSFERS_PER_90_DAYS:
            errcode = errors.TRANSFER_LIMIT_EXCEEDED  # stand-in code
        else:
            errcode = 0
            world.transfers.append(Transfer(kind, handover, takeover, external_userid, now))
        customer.append({"external_userid": external_userid, "errcode": errcode})
    return {"customer": customer}


def _transfer_result(world: World, request: Request, kind: str) -> dict[str, Any]:
    handover = request.required("handover_userid")
    takeover = request.required("takeover_userid")
    transfers = [
        t
        for t in world.transfers
        if t.kind == kind and t.handover_userid == handover and t.takeover_userid == takeover
    ]
    chunk, next_cursor = page(request, transfers, default_limit=100, max_limit=100)
    return {
        "customer": [
            {
                "external_userid": t.external_userid,
                "status": t.status,
                "takeover_time": t.takeover_time,
            }
            for t in chunk
        ],
        "next_cursor": next_cursor,
    }


def transfer_customer(world: World, request: Request) -> dict[str, Any]:
    return _transfer_customers(world, request, "onjob")


def transfer_result(world: World, request: Request) -> dict[str, Any]:
    return _transfer_result(world, request, "onjob")


def resigned_transfer_customer(world: World, request: Request) -> dict[str, Any]:
    return _transfer_customers(world, request, "resigned")


def resigned_transfer_result(world: World, request: Request) -> dict[str, Any]:
    return _transfer_result(world, request, "resigned")


def complete_transfers(world: World, refuse: tuple[str, ...] = ()) -> list[Transfer]:
    """What WeCom does 24 h later: move each waiting customer to the takeover staff member."""
    now = world.now()
    finished = []
    for transfer in world.transfers:
        if transfer.status != TRANSFER_WAITING:
            continue
        finished.append(transfer)
        if transfer.external_userid in refuse:
            transfer.status = TRANSFER_REFUSED
            continue
        transfer.status, transfer.takeover_time = TRANSFER_DONE, now
        contact = world.contacts.get(transfer.external_userid)
        old = contact.follow(transfer.handover_userid) if contact else None
        if old is None:
            continue
        contact.follow_users.remove(old)
        if contact.follow(transfer.takeover_userid) is None:
            contact.follow_users.append(
                FollowInfo(
                    transfer.takeover_userid,
                    old.remark,
                    old.description,
                    now,
                    list(old.tags),
                    old.state,
                    ADD_WAY_ASSIGNED,
                )
            )
    return finished


def transfer_groups(world: World, request: Request) -> dict[str, Any]:
    chat_ids = request.strings("chat_id_list", min_items=1, max_items=GROUPS_PER_CALL)
    new_owner = staff_or_error(world, request.required("new_owner"))
    failed = []
    for chat_id in chat_ids:
        group = world.live_group(chat_id)
        if group is None:
            failed.append(
                {"chat_id": chat_id, "errcode": errors.INVALID_CHAT_ID, "errmsg": "invalid chat_id"}
            )
            continue
        # Takes effect at once (unlike customers); API changes send no callback.
        group.owner = new_owner.userid
        group.status = 0
        if group.member(new_owner.userid) is None:
            group.members.append(
                GroupMember(
                    new_owner.userid,
                    MEMBER_STAFF,
                    world.now(),
                    1,
                    None,
                    new_owner.name,
                )
            )
    return {"failed_chat_list": failed}


ROUTES = {
    "externalcontact/transfer_customer": transfer_customer,
    "externalcontact/transfer_result": transfer_result,
    "externalcontact/resigned/transfer_customer": resigned_transfer_customer,
    "externalcontact/resigned/transfer_result": resigned_transfer_result,
    "externalcontact/groupchat/transfer": transfer_groups,
    "externalcontact/groupchat/onjob_transfer": transfer_groups,
}
