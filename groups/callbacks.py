"""How WeCom's customer-group callbacks change our groups (registered with wecom.events)."""

from groups import services
from wecom import gateway
from wecom.events import CallbackMessage, handles


def _scene(message: CallbackMessage, field: str) -> int | None:
    value = message.get(field)
    return int(value) if value.isdigit() else None


@handles("change_external_chat/create")
def group_created(message: CallbackMessage) -> None:
    # The callback carries only the chat id. WeCom's member list is of now: take the members
    # who were there at creation; later joins and leaves come as their own callbacks.
    info = gateway.group_get(message.get("ChatId"))
    services.group_upsert(
        info, key=message.key, occurred_at=message.occurred_at, members=services.MEMBERS_BEFORE
    )


@handles(
    "change_external_chat/update/change_owner",
    "change_external_chat/update/change_name",
    "change_external_chat/update/change_notice",
)
def group_details_changed(message: CallbackMessage) -> None:
    info = gateway.group_get(message.get("ChatId"))
    services.group_upsert(
        info, key=message.key, occurred_at=message.occurred_at, members=services.MEMBERS_IGNORE
    )


@handles("change_external_chat/dismiss")
def group_dismissed(message: CallbackMessage) -> None:
    services.group_dismiss(
        chat_id=message.get("ChatId"), occurred_at=message.occurred_at, key=message.key
    )


@handles("change_external_chat/update/add_member", "change_external_chat/update/del_member")
def members_changed(message: CallbackMessage) -> None:
    joined = message.get("UpdateDetail") == "add_member"
    services.members_changed(
        chat_id=message.get("ChatId"),
        userids=message.items("MemChangeList"),
        joined=joined,
        scene=_scene(message, "JoinScene" if joined else "QuitScene"),
        occurred_at=message.occurred_at,
        key=message.key,
    )
