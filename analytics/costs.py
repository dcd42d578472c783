"""Costs (投入) entered by hand per group, channel code or campaign and period: what ROI and
lifetime value divide by.

A cost is one COST_RECORDED event (amount in fen, its period in the payload), so the metrics
read it like any other fact. The event log is append-only: a recorded cost cannot be edited
or deleted here.
"""

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _t

from analytics.events import record
from analytics.models import Event, EventType
from campaigns.models import Campaign, Cost
from contacts.models import ChannelCode
from groups.models import Group
from groups.selectors import channel_codes_visible_to, groups_visible_to, user_sees_all, user_staff
from scrm.models import User
from scrm.roles import can_write

TARGET_KINDS = ("group", "channel", "campaign")
NOTE_MAX_LENGTH = 200
# ¥100,000,000 in fen: far above any real entry, far below the column's limit.
MAX_AMOUNT_FEN = 10_000_000_000
# The list shows the newest entries; costs are typed by hand, so this is years of them.
COSTS_SHOWN = 500


class CostError(ValueError):
    """Input we refuse; `field` names the input at fault."""

    def __init__(self, message: str, *, field: str):
        super().__init__(message)
        self.field = field


def cost_targets(user) -> dict[str, QuerySet]:
    """What the login may record costs against, by kind: managers everything; operators their
    own groups and channel codes (campaigns have no owner, so only managers cost them)."""
    if user_sees_all(user):
        campaigns = Campaign.objects.all()
    else:
        campaigns = Campaign.objects.none()
    return {
        "group": groups_visible_to(user),
        "channel": channel_codes_visible_to(user),
        "campaign": campaigns,
    }


def target_name(kind: str, target) -> str:
    if kind == "group":
        return target.name or target.chat_id
    return target.name


def cost_record(
    *,
    target_kind: str,
    target_id: int,
    amount_fen: int,
    first: date,
    last: date,
    note: str,
    user,
    key: str | None = None,
) -> Event:
    """Record a cost of `amount_fen` against one group, channel code or campaign, spread over
    the days first … last (Shanghai). `key` makes a retried submission record it only once."""
    if not can_write(user):
        raise PermissionDenied("Analysts have read-only access.")
    if target_kind not in TARGET_KINDS:
        raise CostError(
            _t("Choose one of: %(kinds)s.") % {"kinds": ", ".join(TARGET_KINDS)},
            field="target_kind",
        )
    target = cost_targets(user)[target_kind].filter(pk=target_id).first()
    if target is None:
        # Someone else's target reads as missing: an operator learns nothing about it.
        raise CostError(_t("No such target that you may record costs for."), field="target_id")
    if amount_fen is None or amount_fen <= 0:
        raise CostError(_t("The amount must be more than zero."), field="amount_fen")
    if amount_fen > MAX_AMOUNT_FEN:
        raise CostError(_t("The amount is too large."), field="amount_fen")
    if last < first:
        raise CostError(_t("The last day cannot be before the first."), field="last")
    note = (note or "").strip()
    if len(note) > NOTE_MAX_LENGTH:
        raise CostError(
            _t("A note is at most %(max)d characters.") % {"max": NOTE_MAX_LENGTH}, field="note"
        )
    staff = user_staff(user)
    with transaction.atomic():
        event, created = record(
            type=EventType.COST_RECORDED,
            occurred_at=timezone.now(),
            key=f"cost:{user.pk}:{key or uuid.uuid4()}",
            staff=staff.pk if staff else None,
            amount=amount_fen,
            payload={
                "period_start": first.isoformat(),
                "period_end": last.isoformat(),
                "note": note,
                "recorded_by": user.pk,
            },
            **{target_kind: target.pk},
        )
        if created:  # the campaigns' cost ledger keeps the same entry
            Cost.objects.create(
                amount_fen=amount_fen,
                period_start=first,
                period_end=last,
                note=note,
                **{target_kind: target},
            )
    return event


@dataclass(frozen=True)
class CostEntry:
    id: int
    target_kind: str
    target_id: int
    target_name: str
    amount_fen: int
    first: date
    last: date
    note: str
    recorded_by: str  # the login's username; "" for costs loaded without one
    recorded_at: datetime


def costs_visible_to(user, *, limit: int = COSTS_SHOWN) -> list[CostEntry]:
    """Recorded costs the login may see, newest first: managers and analysts every one,
    operators those against their own groups and channel codes."""
    events = Event.objects.filter(type=EventType.COST_RECORDED)
    if not user_sees_all(user):
        targets = cost_targets(user)
        events = events.filter(
            Q(group__in=targets["group"].values("pk"))
            | Q(channel__in=targets["channel"].values("pk"))
        )
    return cost_entries(list(events.order_by("-occurred_at", "-pk")[:limit]))


def cost_entries(events: list[Event]) -> list[CostEntry]:
    """COST_RECORDED events as entries, with their targets' names and who recorded them."""

    def kind_of(event: Event) -> tuple[str, int]:
        for kind in TARGET_KINDS:
            if getattr(event, f"{kind}_id") is not None:
                return kind, getattr(event, f"{kind}_id")
        return "", 0

    kinds = [kind_of(e) for e in events]
    models = {"group": Group, "channel": ChannelCode, "campaign": Campaign}
    names = {}
    for kind, model in models.items():
        ids = {target for k, target in kinds if k == kind}
        for target in model.objects.filter(pk__in=ids):
            names[kind, target.pk] = target_name(kind, target)
    user_ids = {(e.payload or {}).get("recorded_by") for e in events} - {None}
    usernames = dict(User.objects.filter(pk__in=user_ids).values_list("pk", "username"))
    entries = []
    for event, (kind, target) in zip(events, kinds, strict=True):
        payload = event.payload or {}
        entries.append(
            CostEntry(
                id=event.pk,
                target_kind=kind,
                target_id=target,
                target_name=names.get((kind, target), f"#{target}"),
                amount_fen=event.amount or 0,
                first=date.fromisoformat(payload["period_start"]),
                last=date.fromisoformat(payload["period_end"]),
                note=payload.get("note", ""),
                recorded_by=usernames.get(payload.get("recorded_by"), ""),
                recorded_at=event.occurred_at,
            )
        )
    return entries
