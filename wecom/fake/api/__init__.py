"""The fake's WeCom APIs: one route table mapping each path under /cgi-bin/ to a handler."""

from wecom.fake.api import channels, contacts, groups, messages, tags, transfers
from wecom.fake.api.common import Handler, Request

ROUTES: dict[str, Handler] = {
    **contacts.ROUTES,
    **tags.ROUTES,
    **channels.ROUTES,
    **messages.ROUTES,
    **transfers.ROUTES,
    **groups.ROUTES,
}

__all__ = ["ROUTES", "Handler", "Request"]
