"""What every fake API handler shares: the request, argument checks and cursor paging."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from wecom.fake import errors
from wecom.fake.errors import ApiError
from wecom.fake.state import World

T = TypeVar("T")


@dataclass
class Request:
    query: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)

    def arg(self, name: str, default: Any = None) -> Any:
        """GET APIs take arguments in the query string, POST APIs in the JSON body."""
        if name in self.body:
            return self.body[name]
        return self.query.get(name, default)

    def required(self, name: str) -> Any:
        value = self.arg(name)
        if value in (None, "", []):
            raise invalid(f"missing {name}")
        return value

    def text(self, name: str, *, max_length: int | None = None, default: str = "") -> str:
        value = self.arg(name, default)
        if value is None:
            value = default
        if not isinstance(value, str):
            raise invalid(f"{name} must be a string")
        if max_length is not None and len(value) > max_length:
            raise invalid(f"{name} longer than {max_length} characters")
        return value

    def integer(self, name: str, default: int = 0) -> int:
        value = self.arg(name, default)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise invalid(f"{name} must be an integer") from None

    def strings(self, name: str, *, max_items: int | None = None, min_items: int = 0) -> list[str]:
        value = self.arg(name) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise invalid(f"{name} must be a list of strings")
        if len(value) < min_items or (max_items is not None and len(value) > max_items):
            raise invalid(f"{name} must hold {min_items} to {max_items} items")
        return value


Handler = Callable[[World, Request], dict[str, Any]]


def invalid(message: str) -> ApiError:
    return ApiError(errors.INVALID_PARAMETER, f"invalid parameter: {message}")


def staff_or_error(world: World, userid: str):
    staff = world.staff.get(userid)
    if staff is None:
        raise ApiError(errors.USER_NOT_FOUND, f"userid not found: {userid}")
    return staff


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"fake:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        prefix, offset = base64.urlsafe_b64decode(padded).decode().split(":")
        if prefix != "fake":
            raise ValueError(prefix)
        return int(offset)
    except (ValueError, UnicodeDecodeError):
        raise invalid("cursor") from None


def page(
    request: Request, items: Sequence[T], *, default_limit: int, max_limit: int
) -> tuple[Sequence[T], str]:
    """Slice items by the request's opaque cursor and limit; '' as next cursor means the end."""
    limit = request.integer("limit", default_limit) or default_limit
    if not 1 <= limit <= max_limit:
        raise invalid(f"limit must be 1 to {max_limit}")
    cursor = request.arg("cursor") or ""
    start = _decode_cursor(cursor) if cursor else 0
    end = start + limit
    return items[start:end], _encode_cursor(end) if end < len(items) else ""
