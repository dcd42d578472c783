"""Channel codes (渠道活码) and group join codes (群活码): made, changed and retired in WeCom."""

import logging
import secrets
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from contacts.models import ChannelCode, Staff, Tag
from groups.models import Group
from wecom import gateway
from wecom.errors import WeComError

logger = logging.getLogger(__name__)

STATE_MAX_LENGTH = 30  # WeCom's cap on `state`
MAX_GROUPS_PER_CODE = 5  # WeCom fills up to five groups from one group code
STATE_PREFIX = {ChannelCode.Kind.STAFF: "cs-", ChannelCode.Kind.GROUP: "cg-"}
# The form field WeCom's refusal belongs to: whom the code adds, or which groups it fills.
WECOM_FIELD = {ChannelCode.Kind.STAFF: "staff", ChannelCode.Kind.GROUP: "groups"}


def channel_state_new(*, kind: str) -> str:
    """A fresh `state` for a code: short, unique, and telling staff codes from group codes."""
    while True:
        state = STATE_PREFIX[kind] + secrets.token_urlsafe(9)  # 3 + 12 characters
        if not ChannelCode.objects.filter(state=state).exists():
            return state


def _wecom_error(exc: WeComError, field: str | None = None) -> ValidationError:
    message = _("WeCom refused the code: %(error)s. Nothing was saved.") % {"error": exc}
    return ValidationError({field: message} if field else message)


def _check(*, kind: str, name: str, staff: list[Staff], groups: list[Group]) -> None:
    errors = {}
    if kind not in STATE_PREFIX:
        raise ValidationError({"kind": _("Choose a kind of code.")})
    if not name.strip():
        errors["name"] = _("Enter a name.")
    if kind == ChannelCode.Kind.STAFF:
        if not staff:
            errors["staff"] = _("Choose at least one staff member.")
        elif any(s.status != Staff.Status.ACTIVE for s in staff):
            errors["staff"] = _("A resigned staff member cannot receive new customers.")
    elif kind == ChannelCode.Kind.GROUP:
        if not 1 <= len(groups) <= MAX_GROUPS_PER_CODE:
            errors["groups"] = _("Choose one to %(max)d groups.") % {"max": MAX_GROUPS_PER_CODE}
        elif any(g.dismissed_at is not None for g in groups):
            errors["groups"] = _("A dismissed group cannot take new members.")
    if errors:
        raise ValidationError(errors)


def _code_staff(*, kind: str, staff: list[Staff], groups: list[Group]) -> list[Staff]:
    # A group code belongs to the owners of its groups: that is who sees it in the dashboard.
    if kind == ChannelCode.Kind.GROUP:
        owners = {g.owner_id: g.owner for g in groups}
        return list({**owners, **{s.pk: s for s in staff}}.values())
    return staff


def channel_code_create(
    *,
    kind: str,
    name: str,
    staff: Iterable[Staff] = (),
    groups: Iterable[Group] = (),
    tags: Iterable[Tag] = (),
    welcome_message: str = "",
) -> ChannelCode:
    """Make the QR code in WeCom, then keep it here with its config id and image URL.

    A staff code adds one of `staff`; a group code joins one of `groups` (up to 5). When
    WeCom refuses, a ValidationError says why and nothing is saved.
    """
    staff, groups = list(staff), list(groups)
    _check(kind=kind, name=name, staff=staff, groups=groups)
    state = channel_state_new(kind=kind)
    try:
        if kind == ChannelCode.Kind.STAFF:
            made = gateway.contact_way_create(
                state=state, userids=[s.userid for s in staff], remark=name.strip()[:30]
            )
        else:
            made = gateway.join_way_create(state=state, chat_ids=[g.chat_id for g in groups])
    except WeComError as exc:
        raise _wecom_error(exc, WECOM_FIELD[kind]) from None
    try:
        with transaction.atomic():
            code = ChannelCode.objects.create(
                name=name.strip(),
                kind=kind,
                state=state,
                config_id=made.config_id,
                qr_url=made.qr_url,
                welcome_message=welcome_message,
            )
            code.staff.set(_code_staff(kind=kind, staff=staff, groups=groups))
            code.tags.set(list(tags))
            if kind == ChannelCode.Kind.GROUP:
                code.groups.set(groups)
    except Exception:
        # Not kept here, so it must not keep working in WeCom either.
        _wecom_delete_quietly(kind=kind, config_id=made.config_id)
        raise
    return code


def _wecom_delete_quietly(*, kind: str, config_id: str) -> None:
    try:
        if kind == ChannelCode.Kind.STAFF:
            gateway.contact_way_delete(config_id=config_id)
        else:
            gateway.join_way_delete(config_id=config_id)
    except WeComError:
        logger.warning("channel code %s left in WeCom after a failed save", config_id)


def channel_code_update(
    *,
    code: ChannelCode,
    name: str,
    staff: Iterable[Staff] = (),
    groups: Iterable[Group] = (),
    tags: Iterable[Tag] = (),
    welcome_message: str = "",
) -> ChannelCode:
    """Change a code. New staff or groups go to WeCom first; if it refuses, nothing changes.

    The name, tags given on arrival and welcome message are ours alone.
    """
    staff, groups = list(staff), list(groups)
    _check(kind=code.kind, name=name, staff=staff, groups=groups)
    if not code.is_active:
        raise ValidationError(_("This code was deleted; make a new one instead."))
    if code.kind == ChannelCode.Kind.STAFF:
        wecom_changed = {s.pk for s in staff} != set(code.staff.values_list("pk", flat=True))
    else:
        wecom_changed = {g.pk for g in groups} != set(code.groups.values_list("pk", flat=True))
    if wecom_changed and code.config_id:
        try:
            if code.kind == ChannelCode.Kind.STAFF:
                gateway.contact_way_update(
                    config_id=code.config_id, userids=[s.userid for s in staff]
                )
            else:
                gateway.join_way_update(
                    config_id=code.config_id,
                    state=code.state,
                    chat_ids=[g.chat_id for g in groups],
                )
        except WeComError as exc:
            raise _wecom_error(exc, WECOM_FIELD[code.kind]) from None
    if code.kind == ChannelCode.Kind.GROUP:
        # Whoever made the code keeps it; the owners follow the groups.
        old_owners = set(code.groups.values_list("owner_id", flat=True))
        staff = [s for s in code.staff.all() if s.pk not in old_owners] + staff
    with transaction.atomic():
        code.name = name.strip()
        code.welcome_message = welcome_message
        code.save(update_fields=["name", "welcome_message"])
        code.staff.set(_code_staff(kind=code.kind, staff=staff, groups=groups))
        code.tags.set(list(tags))
        if code.kind == ChannelCode.Kind.GROUP:
            code.groups.set(groups)
    return code


def channel_code_delete(*, code: ChannelCode) -> ChannelCode:
    """Stop the code in WeCom and retire it here.

    The row stays (inactive), so the contacts, joins, orders and events it brought keep their
    channel and its figures stay readable.
    """
    if code.config_id:
        try:
            if code.kind == ChannelCode.Kind.STAFF:
                gateway.contact_way_delete(config_id=code.config_id)
            else:
                gateway.join_way_delete(config_id=code.config_id)
        except WeComError as exc:
            raise _wecom_error(exc) from None
    code.is_active = False
    code.config_id = ""
    code.qr_url = ""
    code.save(update_fields=["is_active", "config_id", "qr_url"])
    return code
