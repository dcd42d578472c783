"""Content library pieces as messages: checking attachments and filling in variables."""

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from wecom.types import Attachment, Content

# What each attachment kind needs, in WeCom's terms (add_msg_template).
ATTACHMENT_FIELDS = {
    "image": ("media_id", "pic_url"),  # one of the two
    "link": ("title", "url"),
    "miniprogram": ("title", "media_id", "appid", "page"),
}
ALLOWED_FIELDS = {"kind", "media_id", "pic_url", "title", "url", "description", "appid", "page"}
MAX_ATTACHMENTS = 9  # WeCom's limit per mass message
VARIABLES = ("name", "tier", "coupon")
_VARIABLE = re.compile(r"\{(\w+)\}")


def validate(text: str, attachments: list) -> None:
    """Raise ValidationError naming the field if WeCom could not send this content."""
    unknown = sorted(set(_VARIABLE.findall(text or "")) - set(VARIABLES))
    if unknown:
        raise ValidationError(
            {
                "text": _("Unknown variable %(names)s; use {name}, {tier} or {coupon}.")
                % {"names": ", ".join(f"{{{n}}}" for n in unknown)}
            }
        )
    if not isinstance(attachments, list):
        raise ValidationError({"attachments": _("Attachments must be a list.")})
    if len(attachments) > MAX_ATTACHMENTS:
        raise ValidationError(
            {"attachments": _("At most %(max)d attachments.") % {"max": MAX_ATTACHMENTS}}
        )
    for number, item in enumerate(attachments, 1):
        kind = item.get("kind") if isinstance(item, dict) else None
        if kind not in ATTACHMENT_FIELDS:
            raise ValidationError(
                {
                    "attachments": _("Attachment %(n)d: kind must be image, link or miniprogram.")
                    % {"n": number}
                }
            )
        extra = sorted(set(item) - ALLOWED_FIELDS)
        if extra:
            raise ValidationError(
                {
                    "attachments": _("Attachment %(n)d: unknown field %(fields)s.")
                    % {"n": number, "fields": ", ".join(extra)}
                }
            )
        needed = ATTACHMENT_FIELDS[kind]
        filled = [f for f in needed if str(item.get(f) or "").strip()]
        missing = not filled if kind == "image" else len(filled) < len(needed)
        if missing:
            raise ValidationError(
                {
                    "attachments": _("Attachment %(n)d (%(kind)s) needs %(fields)s.")
                    % {
                        "n": number,
                        "kind": kind,
                        "fields": (" / " if kind == "image" else ", ").join(needed),
                    }
                }
            )
    if not (text or "").strip() and not attachments:
        raise ValidationError({"text": _("Give a text or at least one attachment.")})


def has_variables(text: str) -> bool:
    return bool(_VARIABLE.search(text or ""))


def render(text: str, *, name: str = "", tier: str = "", coupon: str = "") -> str:
    values = {"name": name, "tier": tier, "coupon": coupon}
    return _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), text or "")


def as_wecom(text: str, attachments: list) -> Content:
    return Content(
        text=text,
        attachments=tuple(
            Attachment(**{k: v for k, v in item.items() if k in ALLOWED_FIELDS})
            for item in attachments
        ),
    )
