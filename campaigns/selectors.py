"""Reads behind the operators' campaign pages and API: who sees and changes campaigns, the
funnel with step conversion, ROI, participants, rewards and rejections, and what each type
shows beyond them (coupon batches, stock, entries, group-buys, commissions, invites,
streaks)."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from importlib.util import find_spec

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from analytics.metrics import Ratio
from campaigns import services
from campaigns.engagement import checkin_streak, contest_ranking
from campaigns.models import (
    Campaign,
    CheckIn,
    Commission,
    Coupon,
    CouponBatch,
    Entry,
    GroupBuy,
    Invite,
    Participation,
    Rejection,
    Reward,
    Stock,
)

# offers reads a typed code this way (spaces, dashes, case); read it the same here.
from campaigns.offers import code_clean
from campaigns.rules import shanghai_day
from campaigns.types import TYPE_MODULES
from contacts.models import Contact, Tag
from contacts.selectors import contacts_visible_to


def campaigns_visible_to(user) -> QuerySet[Campaign]:
    """Campaigns are brand-wide: every login reads all of them."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Campaign.objects.none()
    return Campaign.objects.all()


def campaign_may_change(user) -> bool:
    """Only managers create, edit, move and announce campaigns: a campaign has no owner
    (analytics.costs says the same for recording its costs)."""
    return bool(user and user.is_authenticated and user.is_active and user.is_manager)


def campaigns_filtered(
    campaigns: QuerySet[Campaign], *, type: str = "", state: str = "", search: str = ""
) -> QuerySet[Campaign]:
    if type:
        campaigns = campaigns.filter(type=type)
    if state:
        campaigns = campaigns.filter(state=state)
    if search:
        campaigns = campaigns.filter(name__icontains=search)
    return campaigns.select_related("staff").order_by("-starts_at", "-pk")


def type_available(campaign_type: str) -> bool:
    """Whether the module carrying this type is installed (types arrive one module at a
    time; a missing one must read as a clear error, not a crash)."""
    module = TYPE_MODULES.get(campaign_type)
    return module is not None and find_spec(module) is not None


@dataclass(frozen=True)
class FunnelRow:
    key: str
    label: str
    count: int
    conversion: Ratio | None  # this step ÷ the step before; None for the first


def campaign_funnel_rows(campaign: Campaign) -> list[FunnelRow]:
    """services.campaign_funnel with each step's conversion from the step before."""
    rows, previous = [], None
    for step in services.campaign_funnel(campaign):
        conversion = None if previous is None else Ratio(step.count, previous)
        rows.append(FunnelRow(step.key, str(step.label), step.count, conversion))
        previous = step.count
    return rows


def campaign_participants(campaign: Campaign, *, user) -> QuerySet[Participation]:
    """The campaign's participants this login may see (an operator: their own customers)."""
    return (
        campaign.participants.filter(contact__in=contacts_visible_to(user))
        .select_related("contact", "referrer")
        .order_by("-joined_at", "-pk")
    )


def campaign_rewards(campaign: Campaign, *, user) -> QuerySet[Reward]:
    return (
        campaign.rewards.filter(contact__in=contacts_visible_to(user))
        .select_related("contact")
        .order_by("-created_at", "-pk")
    )


@dataclass(frozen=True)
class RewardTotal:
    kind: str
    label: str
    count: int
    amount: int  # points, or fen for money rewards


def campaign_reward_totals(campaign: Campaign) -> list[RewardTotal]:
    """Rewards given, by kind, over the whole campaign."""
    rows = (
        campaign.rewards.values("kind")
        .annotate(count=Count("pk"), amount=Sum("amount"))
        .order_by("kind")
    )
    return [
        RewardTotal(row["kind"], str(Reward.Kind(row["kind"]).label), row["count"], row["amount"])
        for row in rows
    ]


@dataclass(frozen=True)
class RejectionCount:
    reason: str
    label: str
    count: int


def campaign_rejections(campaign: Campaign) -> list[RejectionCount]:
    """Every refusal of the campaign grouped by its reason, most frequent first."""
    rows = (
        campaign.rejections.values("reason")
        .annotate(count=Count("pk"))
        .order_by("-count", "reason")
    )
    return [
        RejectionCount(row["reason"], str(Rejection.Reason(row["reason"]).label), row["count"])
        for row in rows
    ]


# --- what each type needs beyond the generic settings -----------------------------------------

# Check-in streaks listed on the page and by default in the API.
STREAKS_SHOWN = 20


@dataclass(frozen=True)
class BatchRow:
    batch: CouponBatch
    issued: int  # still in hand (neither redeemed nor expired)
    redeemed: int
    expired: int

    @property
    def total(self) -> int:
        return self.issued + self.redeemed + self.expired


def campaign_coupon_batches(campaign: Campaign) -> list[BatchRow]:
    """The campaign's coupon batches with their coupons by state and the stock left."""
    state = Coupon.State
    batches = campaign.coupon_batches.annotate(
        n_issued=Count("coupons", filter=Q(coupons__state=state.ISSUED)),
        n_redeemed=Count("coupons", filter=Q(coupons__state=state.REDEEMED)),
        n_expired=Count("coupons", filter=Q(coupons__state=state.EXPIRED)),
    ).order_by("pk")
    return [BatchRow(b, b.n_issued, b.n_redeemed, b.n_expired) for b in batches]


def coupon_of_campaign(campaign: Campaign, code: str) -> Coupon | None:
    """The coupon with this code (typed as offers reads it) if one of the campaign's."""
    return Coupon.objects.filter(batch__campaign=campaign, code=code_clean(code)).first()


def segment_contacts(campaign: Campaign, *, tag: Tag | None = None) -> QuerySet[Contact]:
    """Who a batch goes to: the campaign's audience, or the customers with `tag` (never
    the opted-out, like the audience)."""
    if tag is None:
        return services.audience(campaign)
    return Contact.objects.filter(opted_out=False, contact_tags__tag=tag).distinct()


def campaign_stock(campaign: Campaign) -> QuerySet[Stock]:
    """Flash-sale items or lottery prizes, each with the claims made on it."""
    return campaign.stock.annotate(claimed=Count("claims")).order_by("pk")


@dataclass(frozen=True)
class EntryRow:
    rank: int  # among all entries, whoever may see them
    entry: Entry
    won: bool


def contest_entries(campaign: Campaign, *, user) -> list[EntryRow]:
    """Entries ranked by votes (engagement.contest_ranking, as the draw ranks them), those
    of customers this login may see, each keeping its rank among all entries and marked
    when the draw rewarded it."""
    prefix = f"campaign:{campaign.pk}:contest:"  # engagement.contest_draw's reward key
    won = {
        int(key.removeprefix(prefix))
        for key in campaign.rewards.filter(key__startswith=prefix).values_list("key", flat=True)
    }
    ranking = contest_ranking(campaign).select_related("contact")
    entrants = contacts_visible_to(user).filter(pk__in=ranking.values("contact"))
    visible = set(entrants.values_list("pk", flat=True))
    return [
        EntryRow(rank, entry, entry.pk in won)
        for rank, entry in enumerate(ranking, start=1)
        if entry.contact_id in visible
    ]


def contest_may_draw(campaign: Campaign, now: datetime | None = None) -> bool:
    """The draw comes after the contest ends (engagement.contest_draw says the same)."""
    now = now or timezone.now()
    return campaign.state == Campaign.State.ENDED or (
        campaign.ends_at is not None and campaign.ends_at <= now
    )


def campaign_group_buys(campaign: Campaign, *, user) -> QuerySet[GroupBuy]:
    """Group-buys led by customers this login may see, newest first, with seats taken."""
    return (
        campaign.group_buys.filter(leader__in=contacts_visible_to(user))
        .annotate(seats=Count("members", filter=Q(members__released_at__isnull=True)))
        .select_related("leader")
        .order_by("-created_at", "-pk")
    )


def campaign_commissions(campaign: Campaign, *, user) -> QuerySet[Commission]:
    """The commission ledger: beneficiaries this login may see, newest first."""
    return (
        campaign.commissions.filter(beneficiary__in=contacts_visible_to(user))
        .select_related("beneficiary", "order")
        .order_by("-created_at", "-pk")
    )


def commission_totals(campaign: Campaign, *, user) -> list[dict]:
    """Commission per beneficiary (this login's visible ones), the largest first."""
    rows = (
        campaign_commissions(campaign, user=user)
        .values("beneficiary", "beneficiary__name")
        .annotate(orders=Count("order", distinct=True), amount_fen=Sum("amount_fen"))
        .order_by("-amount_fen", "beneficiary")
    )
    return [
        {
            "beneficiary": row["beneficiary"],
            "beneficiary_name": row["beneficiary__name"],
            "orders": row["orders"],
            "amount_fen": row["amount_fen"],
        }
        for row in rows
    ]


@dataclass(frozen=True)
class InviteCount:
    state: str
    state_label: str
    reason: str  # blank unless not counted
    reason_label: str
    count: int


def invite_counts(campaign: Campaign) -> list[InviteCount]:
    """Invites by state and, for those not counted, by reason, over the whole campaign."""
    rows = campaign.invites.values("state", "reason").annotate(count=Count("pk"))
    return [
        InviteCount(
            row["state"],
            str(Invite.State(row["state"]).label),
            row["reason"],
            str(Rejection.Reason(row["reason"]).label) if row["reason"] else "",
            row["count"],
        )
        for row in rows.order_by("state", "-count", "reason")
    ]


def invite_progress(campaign: Campaign, *, user) -> QuerySet[Participation]:
    """Each participant this login may see with their invites by state, most counted first."""
    state = Invite.State
    invites = Invite.objects.filter(campaign=campaign, inviter=OuterRef("contact"))

    def count(of: str):
        return Coalesce(
            Subquery(
                invites.filter(state=of)
                .order_by()
                .values("inviter")
                .annotate(n=Count("pk"))
                .values("n")
            ),
            0,
        )

    return (
        campaign_participants(campaign, user=user)
        .annotate(
            counted=count(state.COUNTED),
            pending=count(state.PENDING),
            rejected=count(state.REJECTED),
        )
        .order_by("-counted", "-pending", "joined_at", "pk")
    )


@dataclass(frozen=True)
class StreakRow:
    contact: Contact
    streak: int  # consecutive days up to the reference day (engagement.checkin_streak)
    days: int  # days checked in all
    makeups: int


def checkin_streaks(campaign: Campaign, *, user, limit: int = STREAKS_SHOWN) -> list[StreakRow]:
    """The longest current streaks among participants this login may see. A streak is
    counted up to today, or to the campaign's last day once it is over."""
    last_day = min(shanghai_day(timezone.now()), services.campaign_period(campaign).last)
    checked: dict[int, dict] = defaultdict(dict)
    rows = CheckIn.objects.filter(
        campaign=campaign, contact__in=contacts_visible_to(user)
    ).values_list("contact_id", "day", "makeup")
    for contact_id, day, makeup in rows:
        checked[contact_id][day] = makeup
    ranked = sorted(
        (
            (checkin_streak(days, last_day), len(days), sum(days.values()), contact_id)
            for contact_id, days in checked.items()
        ),
        key=lambda row: (-row[0], -row[1], row[3]),
    )[:limit]
    contacts = Contact.objects.in_bulk([row[3] for row in ranked])
    return [StreakRow(contacts[pk], streak, days, makeups) for streak, days, makeups, pk in ranked]
