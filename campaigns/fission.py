"""Fission campaigns (裂变): referral with commission (分销), invite tasks (任务宝), group
fission (群裂变) and points for sharing (积分裂变). Share links, the attribution of the new
customers they bring, the anti-abuse rules, and the timed work that counts invites.

How a new customer arrives: a participant's share link is the campaign's WeCom contact link
(rules "contact_link", a 获客链接 or 联系我 link) carrying a short signed state naming the
campaign and the sharer. WeCom hands that state back on the add_external_contact callback,
which calls `arrival`. Invites wait out the campaign's window (rules "window_hours") and are
then counted or not by `timed_work`, run every minute by campaigns.tasks.tick.
"""

import hmac
import logging
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit

import segno
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _

from analytics.events import record
from analytics.metrics import SHANGHAI
from analytics.models import EventType
from campaigns import services
from campaigns.models import (
    Campaign,
    Commission,
    CouponBatch,
    Invite,
    Order,
    Participation,
    Reward,
)
from campaigns.rules import reward_check, shanghai_day, whole
from contacts.models import Contact, Follow
from groups.models import Group, GroupMembership

logger = logging.getLogger(__name__)
Type = Campaign.Type
Reason = services.Reason
FISSION_TYPES = (Type.REFERRAL, Type.INVITE_TASK, Type.GROUP_FISSION, Type.POINTS)

# The share state: "f" + base36 campaign id + "-" + base36 sharer id + "-" + MAC. WeCom
# returns at most 30 characters of state; a 10-character base36 MAC is about 51 bits, far
# beyond guessing, and leaves 17 characters for the two ids.
STATE_PREFIX = "f"
STATE_MAX_LENGTH = 30
STATE_MAC_LENGTH = 10
STATE_SALT = "campaigns.fission.state"

# Commission rates are basis points (1/10,000): 1000 = 10 %. Integers, so money never
# passes through a float.
BASIS_POINTS = 10_000
# Chinese rules on distribution treat commission deeper than three tiers as pyramid selling
# (传销); WeChat's own platform rules allow fewer.
MAX_LEVELS = 3
# Invites decided per campaign per tick: keeps the minute's work cheap; the rest wait.
DECIDE_BATCH = 500


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)


# --- share state and link ---------------------------------------------------------------------


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


def _state_mac(body: str) -> str:
    digest = salted_hmac(STATE_SALT, body, algorithm="sha256").digest()
    return _base36(int.from_bytes(digest[:8], "big")).rjust(13, "0")[:STATE_MAC_LENGTH]


def share_state(campaign_id: int, sharer_id: int) -> str:
    """The signed WeCom state naming a campaign and the customer who shares it."""
    body = f"{STATE_PREFIX}{_base36(campaign_id)}-{_base36(sharer_id)}"
    state = f"{body}-{_state_mac(body)}"
    if len(state) > STATE_MAX_LENGTH:
        raise ValueError(f"share state longer than WeCom allows: {state}")
    return state


def share_state_read(state: str) -> tuple[int, int] | None:
    """(campaign id, sharer id) of a share state; None for any other state (a channel
    code's, a forged or altered one)."""
    if not state or not state.startswith(STATE_PREFIX) or len(state) > STATE_MAX_LENGTH:
        return None
    body, _sep, mac = state.rpartition("-")
    parts = body[len(STATE_PREFIX) :].split("-")
    # Bytes: compare_digest refuses non-ASCII text, and any channel's state may reach here.
    if len(parts) != 2 or not hmac.compare_digest(mac.encode(), _state_mac(body).encode()):
        return None
    try:
        return int(parts[0], 36), int(parts[1], 36)
    except ValueError:
        return None


def share_link(campaign: Campaign, sharer: Contact) -> str:
    """The sharer's personal link: the campaign's contact link with their state as WeCom's
    customer_channel, which WeCom returns as the State of the add callback. Empty when the
    campaign has no contact link yet."""
    link = campaign.rules.get("contact_link") or ""
    if not link:
        return ""
    joiner = "&" if "?" in link else "?"
    return f"{link}{joiner}customer_channel={share_state(campaign.pk, sharer.pk)}"


# --- rules ------------------------------------------------------------------------------------


def _ids(rules: dict, name: str, errors: dict, *, required: bool) -> list[int]:
    value = rules.get(name)
    if value is None:
        if required:
            errors[name] = _("%(rule)s is required.") % {"rule": name}
        return []
    if (
        not isinstance(value, list)
        or not value
        or any(isinstance(v, bool) or not isinstance(v, int) for v in value)
        or len(set(value)) != len(value)
    ):
        errors[name] = _("%(rule)s must be a list of distinct ids.") % {"rule": name}
        return []
    return value


def _common_check(rules: dict, errors: dict) -> None:
    """Rules every fission type may carry."""
    whole(rules, "window_hours", errors, minimum=0, required=False)
    whole(rules, "max_invites_per_day", errors, minimum=1, required=False)
    link = rules.get("contact_link")
    if link is not None and (not isinstance(link, str) or urlsplit(link).scheme != "https"):
        errors["contact_link"] = _("contact_link must be an https link.")
    content = whole(rules, "notify_content_id", errors, minimum=1, required=False)
    if content is not None:
        from sop.models import ContentItem  # sop sits beside campaigns: imported late

        if not ContentItem.objects.filter(pk=content).exists():
            errors["notify_content_id"] = _("Content %(id)s does not exist.") % {"id": content}
    groups = _ids(rules, "groups", errors, required=False)
    missing = set(groups) - set(Group.objects.filter(pk__in=groups).values_list("pk", flat=True))
    if missing:
        errors["groups"] = _("No such groups: %(ids)s.") % {
            "ids": ", ".join(map(str, sorted(missing)))
        }


def _raise(errors: dict) -> None:
    if errors:
        raise ValidationError(errors)


def referral_rules_check(rules: dict) -> None:
    """{"levels": [basis points for level 1, level 2, …]}, e.g. [1000, 500] = 10 %, 5 %."""
    errors: dict = {}
    _common_check(rules, errors)
    levels = rules.get("levels")
    if (
        not isinstance(levels, list)
        or not 1 <= len(levels) <= MAX_LEVELS
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in levels)
    ):
        errors["levels"] = _(
            "levels must be 1 to %(max)s whole numbers of basis points (1000 = 10%%)."
        ) % {"max": MAX_LEVELS}
    elif sum(levels) > BASIS_POINTS:
        errors["levels"] = _("levels together must not exceed 10000 basis points (100%).")
    _raise(errors)


def invite_task_rules_check(rules: dict) -> None:
    errors: dict = {}
    _common_check(rules, errors)
    whole(rules, "invites_needed", errors, minimum=1)
    whole(rules, "window_hours", errors, minimum=0)
    reward_check(rules, errors)
    _raise(errors)


def group_fission_rules_check(rules: dict) -> None:
    errors: dict = {}
    _common_check(rules, errors)
    if "groups" not in rules:
        errors["groups"] = _("%(rule)s is required.") % {"rule": "groups"}
    whole(rules, "cap", errors, minimum=1)
    _raise(errors)


def points_rules_check(rules: dict) -> None:
    errors: dict = {}
    _common_check(rules, errors)
    whole(rules, "points_per_share", errors, minimum=1)
    whole(rules, "max_shares_per_day", errors, minimum=1)
    _raise(errors)


RULES = {
    Type.REFERRAL: referral_rules_check,
    Type.INVITE_TASK: invite_task_rules_check,
    Type.GROUP_FISSION: group_fission_rules_check,
    Type.POINTS: points_rules_check,
}


# --- a new customer arrives -------------------------------------------------------------------


def _known_before(contact: Contact, moment: datetime) -> bool:
    """Whether the customer was ours before `moment`: referred already, added before, or in
    one of our groups before. Someone a sharer merely got to scan again is not new."""
    if contact.referrer_id is not None:
        return True
    if contact.first_added_at is not None and contact.first_added_at < moment:
        return True
    return (
        Follow.objects.filter(contact=contact, added_at__lt=moment).exists()
        or GroupMembership.objects.filter(contact=contact, joined_at__lt=moment).exists()
    )


def arrival(state: str, new_contact: Contact, *, at: datetime) -> Invite | None:
    """A customer added a staff member through a share link (the add callback's `state`).

    Attributes them to the sharer once: a pending Invite, the sharer's Participation, the
    customer's referrer (the first referrer wins) and a REFERRAL event. Refusals are recorded
    as Rejections against the sharer and return None: self-referral, not a new customer,
    already counted in this campaign (a leave and rejoin too), over the daily cap. Any state
    that is not a share state returns None untouched. Safe to run twice for one arrival.
    """
    parsed = share_state_read(state)
    if parsed is None:
        return None
    campaign = Campaign.objects.filter(pk=parsed[0], type__in=FISSION_TYPES).first()
    sharer = Contact.objects.filter(pk=parsed[1]).first()
    if campaign is None or sharer is None:
        return None
    invitee = f"invitee {new_contact.pk}"
    if sharer.pk == new_contact.pk:
        services.reject(campaign, sharer, Reason.SELF_REFERRAL, invitee)
        return None
    if not services.is_running(campaign, at):
        services.reject(campaign, sharer, Reason.NOT_RUNNING, invitee)
        return None
    try:
        participation = services.participate(campaign, sharer, now=at)
    except services.CampaignRefused:
        return None  # recorded (not in the audience)

    with transaction.atomic():
        # One arrival decision at a time per sharer: the daily count and the insert agree,
        # and the same arrival processed twice at once finds the first one's invite.
        Participation.objects.select_for_update().filter(pk=participation.pk).first()
        reason, detail = _arrival_refusal(campaign, sharer, new_contact, at)
        if reason is None:
            try:
                with transaction.atomic():
                    invite = Invite.objects.create(
                        campaign=campaign, inviter=sharer, invitee=new_contact, invited_at=at
                    )
            except IntegrityError:  # another sharer's link, processed at the same moment
                reason, detail = Reason.ALREADY_COUNTED, f"{invitee}: invited by someone else"
        if reason == "same arrival":
            return Invite.objects.get(campaign=campaign, invitee=new_contact)
        if reason is None:
            Contact.objects.filter(pk=new_contact.pk, referrer__isnull=True).update(
                referrer=sharer, updated_at=at
            )
            record(
                type=EventType.REFERRAL,
                occurred_at=at,
                key=f"campaign:{campaign.pk}:referral:{new_contact.pk}",
                contact=sharer,
                campaign=campaign,
                payload={"referred": new_contact.pk},
            )
            return invite
        services.reject(campaign, sharer, reason, detail)
    return None


def _arrival_refusal(
    campaign: Campaign, sharer: Contact, contact: Contact, at: datetime
) -> tuple[str | None, str]:
    """Why this arrival does not count (reason, detail); (None, "") when it does. The reason
    "same arrival" is a replay of one already attributed, not a refusal."""
    invitee = f"invitee {contact.pk}"
    earlier = Invite.objects.filter(campaign=campaign, invitee=contact).first()
    if earlier is not None:
        if earlier.inviter_id == sharer.pk and earlier.invited_at == at:
            return "same arrival", ""
        return Reason.ALREADY_COUNTED, f"{invitee}: first invited {earlier.invited_at:%Y-%m-%d}"
    if _known_before(contact, at):
        return Reason.NOT_NEW, invitee
    cap = campaign.rules.get("max_invites_per_day")
    if cap:
        start = _day_start(shanghai_day(at))
        today = Invite.objects.filter(
            campaign=campaign,
            inviter=sharer,
            invited_at__gte=start,
            invited_at__lt=start + timedelta(days=1),
        ).count()
        if today >= cap:
            return Reason.RATE_LIMITED, f"{invitee}: {today} invites today"
    return None, ""


# --- invites counted once their window has passed ---------------------------------------------


def _stayed(campaign: Campaign, invite: Invite, end: datetime) -> bool:
    """Whether the invitee kept the staff member (and, when the campaign names groups, a
    seat in one of them) from the invite to the end of the window."""
    start = invite.invited_at
    kept = Q(deleted_by_staff_at__isnull=True) | Q(deleted_by_staff_at__gt=end)
    kept &= Q(deleted_by_contact_at__isnull=True) | Q(deleted_by_contact_at__gt=end)
    # A follow re-added after a delete carries its new added_at: it did not stay.
    if not Follow.objects.filter(kept, contact=invite.invitee_id, added_at__lte=start).exists():
        return False
    groups = campaign.rules.get("groups")
    if not groups:
        return True
    stays = GroupMembership.objects.filter(contact=invite.invitee_id, group__in=groups)
    left_in_window = stays.filter(left_at__gte=start, left_at__lte=end).exists()
    in_group_at_end = stays.filter(
        Q(left_at__isnull=True) | Q(left_at__gt=end), joined_at__lte=end
    ).exists()
    return in_group_at_end and not left_in_window


def _progress_notice(campaign: Campaign, inviter_id: int, now: datetime) -> None:
    """Tell the inviter an invite counted: a broadcast through the SOP engine, so push
    budgets and quiet hours decide when (or whether) it goes out."""
    content_id = campaign.rules.get("notify_content_id")
    if not content_id:
        return
    from sop.models import ContentItem  # sop sits beside campaigns: imported late

    content = ContentItem.objects.filter(pk=content_id).first()
    if content is not None:
        services.announce(campaign, content=content, send_at=now, contacts=[inviter_id])


def _reward_give(campaign: Campaign, contact: Contact, *, key: str, now: datetime) -> None:
    """The campaign's configured reward, once per key; a refusal (budget, stock) is recorded
    by the service that refused it."""
    spec = campaign.rules["reward"]
    try:
        if "points" in spec:
            services.reward(
                campaign, contact, kind=Reward.Kind.POINTS, amount=spec["points"], key=key, now=now
            )
        else:
            from campaigns.offers import coupon_reward  # the coupon types' module issues them

            batch = CouponBatch.objects.get(pk=spec["coupon_batch"])
            coupon_reward(batch, contact, key=key, campaign=campaign, now=now)
    except services.CampaignRefused:
        pass


def invite_decide(campaign: Campaign, invite: Invite, *, now: datetime) -> bool:
    """Count the invite or not, once (a conditional UPDATE claims it). A counted invite
    moves the inviter's progress; in an invite task, reaching `invites_needed` completes
    and rewards. Returns whether this call decided it."""
    end = invite.invited_at + timedelta(hours=campaign.rules.get("window_hours") or 0)
    stayed = _stayed(campaign, invite, end)
    with transaction.atomic():
        decided = Invite.objects.filter(pk=invite.pk, state=Invite.State.PENDING).update(
            state=Invite.State.COUNTED if stayed else Invite.State.REJECTED,
            reason="" if stayed else Reason.LEFT_IN_WINDOW,
            decided_at=now,
        )
        if not decided:
            return False
        if not stayed:
            services.reject(
                campaign, invite.inviter, Reason.LEFT_IN_WINDOW, f"invitee {invite.invitee_id}"
            )
            return True
        Participation.objects.filter(campaign=campaign, contact=invite.inviter_id).update(
            progress=F("progress") + 1
        )
        participation = Participation.objects.get(campaign=campaign, contact=invite.inviter_id)
        _progress_notice(campaign, invite.inviter_id, now)
        needed = campaign.rules.get("invites_needed")
        if campaign.type == Type.INVITE_TASK and needed and participation.progress >= needed:
            services.complete(participation, now=now)
            _reward_give(
                campaign,
                participation.contact,
                key=f"invite-task:{participation.pk}",
                now=now,
            )
    return True


def timed_work(now: datetime | None = None) -> int:
    """Every minute: decide the pending invites whose window has passed. Idempotent: each
    invite is claimed once by a conditional UPDATE. Returns how many were decided."""
    now = now or timezone.now()
    decided = 0
    pending = Campaign.objects.filter(
        type__in=FISSION_TYPES, invites__state=Invite.State.PENDING
    ).distinct()
    for campaign in pending:
        window = timedelta(hours=campaign.rules.get("window_hours") or 0)
        due = campaign.invites.filter(
            state=Invite.State.PENDING, invited_at__lte=now - window
        ).select_related("inviter")
        for invite in due.order_by("invited_at", "pk")[:DECIDE_BATCH]:
            try:
                decided += invite_decide(campaign, invite, now=now)
            except Exception:  # this invite stays pending, logged; the others go on
                logger.exception("campaigns: invite %s could not be decided", invite.pk)
    return decided


# --- referral / distribution (分销): commissions on attributed orders ---------------------------


def _referral_campaign(order: Order) -> Campaign | None:
    """The distribution campaign an order pays commission under: the one it names, else the
    one that brought its buyer, if it was running when the order was placed."""
    if order.campaign_id and order.campaign.type == Type.REFERRAL:
        campaign = order.campaign
    else:
        invite = (
            Invite.objects.filter(invitee=order.contact_id, campaign__type=Type.REFERRAL)
            .select_related("campaign")
            .order_by("invited_at")
            .first()
        )
        campaign = invite.campaign if invite else None
    if campaign is None or not services.is_running(campaign, order.ordered_at):
        return None
    return campaign


def referrer_chain(buyer: Contact, depth: int) -> list[Contact]:
    """The buyer's referrer, their referrer, … up to `depth`, stopping at a missing referrer
    or a cycle; never the buyer themself."""
    chain: list[Contact] = []
    seen = {buyer.pk}
    current = buyer.referrer
    while current is not None and current.pk not in seen and len(chain) < depth:
        chain.append(current)
        seen.add(current.pk)
        current = current.referrer
    return chain


def order_attributed(order: Order) -> list[Commission]:
    """Commission on a paid order whose buyer came through a referral chain: one row per
    level at the campaign's rate (basis points, rounded down to the fen), once per (order,
    level), each also a COMMISSION reward against the campaign's budget. The order is
    attributed to the campaign and the buyer's referrer when it names none. Safe to repeat."""
    if order.status != Order.Status.PAID:
        return []
    campaign = _referral_campaign(order)
    if campaign is None:
        return []
    levels = campaign.rules.get("levels") or []
    buyer = Contact.objects.select_related("referrer").get(pk=order.contact_id)
    chain = referrer_chain(buyer, len(levels))
    if not chain:
        return []
    changed = []
    if order.campaign_id is None:
        order.campaign, changed = campaign, [*changed, "campaign"]
    if order.referrer_id is None:
        order.referrer, changed = chain[0], [*changed, "referrer"]
    if changed:
        order.save(update_fields=changed)
    paid = []
    for level, (beneficiary, rate) in enumerate(zip(chain, levels, strict=False), start=1):
        amount = order.amount_fen * rate // BASIS_POINTS
        if amount <= 0:
            continue
        try:
            # The reward first: when the budget refuses, no commission row is left behind.
            services.reward(
                campaign,
                beneficiary,
                kind=Reward.Kind.COMMISSION,
                amount=amount,
                key=f"commission:{order.pk}:{level}",
                description=_("Commission L%(level)s on %(order)s")
                % {"level": level, "order": order.order_no},
                now=order.ordered_at,
            )
        except services.CampaignRefused:
            continue  # over budget: recorded; a smaller, deeper level may still fit
        commission, _created = Commission.objects.get_or_create(
            order=order,
            level=level,
            defaults={"campaign": campaign, "beneficiary": beneficiary, "amount_fen": amount},
        )
        paid.append(commission)
    return paid


# --- group fission (群裂变) ---------------------------------------------------------------------


def fission_group(campaign: Campaign, contact: Contact | None = None) -> Group | None:
    """The group the poster sends the next person to: the first listed live group with room
    (open memberships below the campaign's cap and the group's own); None, recorded as
    LIMIT_REACHED, when all are full."""
    ids = campaign.rules.get("groups") or []
    cap = campaign.rules.get("cap") or 0
    groups = Group.objects.filter(pk__in=ids, dismissed_at__isnull=True).annotate(
        members=Count("memberships", filter=Q(memberships__left_at__isnull=True))
    )
    by_id = {group.pk: group for group in groups}
    for group_id in ids:
        group = by_id.get(group_id)
        if group is not None and group.members < min(cap, group.member_cap):
            return group
    services.reject(campaign, contact, Reason.LIMIT_REACHED, "every group is full")
    return None


# --- points for sharing (积分裂变) ---------------------------------------------------------------


def share(campaign: Campaign, contact: Contact, data=None, *, now: datetime | None = None) -> str:
    """The customer shared the campaign: points, up to the daily number of shares."""
    now = now or timezone.now()
    if not services.is_running(campaign, now):
        services.refuse(campaign, contact, Reason.NOT_RUNNING)
    services.participate(campaign, contact, now=now)
    rules = campaign.rules
    prefix = f"share:{contact.pk}:{shanghai_day(now).isoformat()}:"
    shared = Reward.objects.filter(
        campaign=campaign, key__startswith=f"campaign:{campaign.pk}:{prefix}"
    ).count()
    if shared >= rules["max_shares_per_day"]:
        services.refuse(campaign, contact, Reason.RATE_LIMITED, f"{shared} shares today")
    # A double tap asks for the same key and gets the same reward, never two.
    services.reward(
        campaign,
        contact,
        kind=Reward.Kind.POINTS,
        amount=rules["points_per_share"],
        key=f"{prefix}{shared + 1}",
        description=_("Shared"),
        now=now,
    )
    return _("Thanks for sharing: %(points)s points added.") % {"points": rules["points_per_share"]}


# --- the landing page -------------------------------------------------------------------------


def _share_context(campaign: Campaign, contact: Contact) -> dict:
    invites = campaign.invites.filter(inviter=contact)
    by_state = dict(invites.values_list("state").annotate(n=Count("pk")))
    link = share_link(campaign, contact)
    return {
        "share_link": link,
        # The QR code a friend scans from the customer's phone screen or a saved poster.
        "share_qr": segno.make(link, error="m").svg_inline(scale=5, title=campaign.name)
        if link
        else "",
        "invites_counted": by_state.get(Invite.State.COUNTED, 0),
        "invites_pending": by_state.get(Invite.State.PENDING, 0),
        "window_hours": campaign.rules.get("window_hours") or 0,
    }


def landing_context(campaign: Campaign, contact: Contact) -> dict:
    context = _share_context(campaign, contact)
    participation = Participation.objects.filter(campaign=campaign, contact=contact).first()
    context["participation"] = participation
    if campaign.type == Type.REFERRAL:
        earned = Commission.objects.filter(campaign=campaign, beneficiary=contact)
        context["levels_percent"] = [
            f"{rate / 100:g}" for rate in campaign.rules.get("levels") or []
        ]
        context["commission_fen"] = earned.aggregate(total=Sum("amount_fen"))["total"] or 0
        context["commission_yuan"] = f"{context['commission_fen'] / 100:.2f}"
    elif campaign.type == Type.INVITE_TASK:
        context["invites_needed"] = campaign.rules.get("invites_needed") or 0
        context["progress"] = participation.progress if participation else 0
        context["done"] = bool(participation and participation.completed_at)
    elif campaign.type == Type.GROUP_FISSION:
        group = fission_group(campaign, contact)
        context["group"] = group
        context["join_code"] = (
            group.join_codes.filter(is_active=True).exclude(qr_url="").first() if group else None
        )
    else:
        today = shanghai_day(timezone.now())
        context["points_per_share"] = campaign.rules.get("points_per_share") or 0
        context["max_shares_per_day"] = campaign.rules.get("max_shares_per_day") or 0
        context["shares_today"] = Reward.objects.filter(
            campaign=campaign,
            key__startswith=f"campaign:{campaign.pk}:share:{contact.pk}:{today.isoformat()}:",
        ).count()
        context["points_balance"] = contact.points_balance
    return context


ACTIONS = {
    Type.REFERRAL: {},
    Type.INVITE_TASK: {},
    Type.GROUP_FISSION: {},
    Type.POINTS: {"share": share},
}
