"""Reads behind the operators' campaign pages and API: who sees and changes campaigns, the
funnel with step conversion, ROI, participants, rewards and rejections."""

from dataclasses import dataclass
from importlib.util import find_spec

from django.db.models import Count, QuerySet, Sum

from analytics.metrics import Ratio
from campaigns import services
from campaigns.models import Campaign, Participation, Rejection, Reward
from campaigns.types import TYPE_MODULES
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
