"""Callback messages in our terms, and the registry through which higher apps apply them.

wecom/ sits below contacts/ and groups/, so it cannot call them: they register a handler per
event kind in their AppConfig.ready(), and the worker dispatches through here.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import xmltodict


@dataclass(frozen=True)
class CallbackMessage:
    """One decrypted callback. `fields` holds WeCom's XML fields as strings."""

    kind: str  # "<Event>/<ChangeType>", e.g. "change_external_contact/add_external_contact"
    fields: dict
    key: str  # the callback's dedupe key: handlers derive event keys from it

    @property
    def occurred_at(self) -> datetime:
        return datetime.fromtimestamp(int(self.fields.get("CreateTime") or 0), UTC)

    def get(self, name: str, default: str = "") -> str:
        value = self.fields.get(name)
        return default if value is None else str(value)

    def items(self, name: str) -> list[str]:
        """A list field such as MemChangeList: xmltodict gives one <Item> as a string."""
        value = self.fields.get(name) or {}
        items = value.get("Item", []) if isinstance(value, dict) else []
        return [items] if isinstance(items, str) else list(items)


def parse(xml: str) -> dict:
    """The inner XML's fields; raises ValueError when it is not a WeCom event message."""
    try:
        fields = xmltodict.parse(xml).get("xml")
    except Exception as exc:  # noqa: BLE001 - expat raises several types
        raise ValueError(f"not XML: {exc}") from None
    if not isinstance(fields, dict) or fields.get("MsgType") != "event" or not fields.get("Event"):
        raise ValueError("not a WeCom event message")
    return fields


def kind_of(fields: dict) -> str:
    """e.g. change_external_contact/add_external_contact, change_external_chat/update/add_member."""
    parts = [fields["Event"], fields.get("ChangeType"), fields.get("UpdateDetail")]
    return "/".join(part for part in parts if part)


Handler = Callable[[CallbackMessage], None]
_handlers: dict[str, Handler] = {}


def handles(*kinds: str) -> Callable[[Handler], Handler]:
    """Register a function as the handler of these event kinds."""

    def register(handler: Handler) -> Handler:
        for kind in kinds:
            if kind in _handlers and _handlers[kind] is not handler:
                raise RuntimeError(f"{kind} already has a handler: {_handlers[kind]}")
            _handlers[kind] = handler
        return handler

    return register


def handler_for(kind: str) -> Handler | None:
    return _handlers.get(kind)
