"""The campaign engine every campaign type is built on: states, audience, taking part,
rewards given once, rejections recorded with their reason, and reaching people through the
SOP engine's budgets and quiet hours.

Each type (campaigns.types says which module holds which) adds its own rules on top:
`participate`, `complete` and `reward` are all it needs from here.
"""

from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from analytics.events import record
from analytics.models import EventType
from campaigns.models import Campaign, Participation, Rejection, Reward
from contacts.models import Contact
from contacts.points import points_award
from groups.models import GroupMembership

Reason = Rejection.Reason
State = Campaign.State


class CampaignRefused(Exception):
    """A customer's action the campaign refused; the Rejection row says why."""

    def __init__(self, rejection: Rejection):
        super().__init__(rejection.get_reason_display())
        self.rejection = rejection

    @property
    def reason(self) -> str:
        return self.rejection.reason


# --- states -----------------------------------------------------------------------------------

# Which state may follow which, by hand; scheduled → running → ended also happen by the clock.
TRANSITIONS = {
    State.DRAFT: {State.SCHEDULED, State.RUNNING},
    State.SCHEDULED: {State.DRAFT, State.RUNNING, State.ENDED},
    State.RUNNING: {State.ENDED},
    State.ENDED: set(),
}


def campaign_check(campaign: Campaign) -> None:
    """Raise ValidationError naming each field that keeps the campaign from going live."""
    from campaigns.types import rules_check  # the types import this module

    errors = {}
    if not campaign.starts_at:
        errors["starts_at"] = _("A live campaign needs a start.")
    if not campaign.ends_at:
        errors["ends_at"] = _("A live campaign needs an end.")
    elif campaign.starts_at and campaign.ends_at <= campaign.starts_at:
        errors["ends_at"] = _("The end must come after the start.")
    try:
        rules_check(campaign.type, campaign.rules)
    except ValidationError as error:
        errors.update(error.message_dict)
    if errors:
        raise ValidationError(errors)


def campaign_move(campaign: Campaign, to: str, *, now: datetime | None = None) -> Campaign:
    """Move a campaign to state `to` by hand (schedule, start early, end, back to draft)."""
    now = now or timezone.now()
    if to not in TRANSITIONS[campaign.state]:
        raise ValidationError(
            {"state": _("A %(from)s campaign cannot become %(to)s.")
             % {"from": campaign.get_state_display(), "to": State(to).label}}
        )  # fmt: skip
    if to in (State.SCHEDULED, State.RUNNING):
        campaign_check(campaign)
    if to == State.RUNNING and campaign.starts_at > now:
        campaign.starts_at = now  # started early, by hand
    if to == State.ENDED and campaign.ends_at and campaign.ends_at > now:
        campaign.ends_at = now
    campaign.state = to
    campaign.save(update_fields=["state", "starts_at", "ends_at", "updated_at"])
    return campaign


def campaigns_tick(now: datetime | None = None) -> tuple[int, int]:
    """By the clock: scheduled campaigns whose start has come run; running ones whose end has
    passed end. Returns (started, ended). Run every minute by beat."""
    now = now or timezone.now()
    started = Campaign.objects.filter(state=State.SCHEDULED, starts_at__lte=now).update(
        state=State.RUNNING, updated_at=now
    )
    ended = Campaign.objects.filter(
        state__in=[State.RUNNING, State.SCHEDULED], ends_at__lte=now
    ).update(state=State.ENDED, updated_at=now)
    return started, ended


def is_running(campaign: Campaign, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    return (
        campaign.state == State.RUNNING
        and (campaign.starts_at is None or campaign.starts_at <= now)
        and (campaign.ends_at is None or now < campaign.ends_at)
    )


# --- audience ---------------------------------------------------------------------------------


def audience(campaign: Campaign):
    """The customers the campaign is for: any of its tags, any of its tiers, in any of its
    groups now (each kind left empty means no condition of that kind)."""
    contacts = Contact.objects.filter(opted_out=False)
    tags = list(campaign.audience_tags.values_list("pk", flat=True))
    tiers = list(campaign.audience_tiers.values_list("pk", flat=True))
    groups = list(campaign.audience_groups.values_list("pk", flat=True))
    if tags:
        contacts = contacts.filter(contact_tags__tag__in=tags)
    if tiers:
        contacts = contacts.filter(tier__in=tiers)
    if groups:
        members = GroupMembership.objects.filter(group__in=groups, left_at__isnull=True)
        contacts = contacts.filter(pk__in=members.values("contact"))
    return contacts.distinct()


_IN_AUDIENCE_SQL = """
    SELECT NOT c.opted_out
        AND (NOT EXISTS (SELECT 1 FROM campaigns_campaign_audience_tags a
                         WHERE a.campaign_id = %(campaign)s)
             OR EXISTS (SELECT 1 FROM campaigns_campaign_audience_tags a
                        JOIN contacts_contacttag t ON t.tag_id = a.tag_id
                        WHERE a.campaign_id = %(campaign)s AND t.contact_id = c.id))
        AND (NOT EXISTS (SELECT 1 FROM campaigns_campaign_audience_tiers a
                         WHERE a.campaign_id = %(campaign)s)
             OR EXISTS (SELECT 1 FROM campaigns_campaign_audience_tiers a
                        WHERE a.campaign_id = %(campaign)s AND a.membertier_id = c.tier_id))
        AND (NOT EXISTS (SELECT 1 FROM campaigns_campaign_audience_groups a
                         WHERE a.campaign_id = %(campaign)s)
             OR EXISTS (SELECT 1 FROM campaigns_campaign_audience_groups a
                        JOIN groups_groupmembership m ON m.group_id = a.group_id
                        WHERE a.campaign_id = %(campaign)s AND m.contact_id = c.id
                          AND m.left_at IS NULL))
    FROM contacts_contact c WHERE c.id = %(contact)s
"""


def in_audience(campaign: Campaign, contact: Contact) -> bool:
    """`audience(campaign)` for one customer, in one query (each tap on a landing page
    asks it)."""
    with connection.cursor() as cursor:
        cursor.execute(_IN_AUDIENCE_SQL, {"campaign": campaign.pk, "contact": contact.pk})
        row = cursor.fetchone()
    return bool(row and row[0])


# --- rejections, taking part, rewards -----------------------------------------------------------


def reject(campaign: Campaign, contact: Contact | None, reason: str, detail: str = "") -> Rejection:
    """Record that the campaign refused something, and why; returns the record."""
    return Rejection.objects.create(
        campaign=campaign, contact=contact, reason=reason, detail=detail[:200]
    )


def refuse(campaign: Campaign, contact: Contact | None, reason: str, detail: str = ""):
    """Record a rejection and raise it. Not inside a transaction the exception will roll
    back (the record would go with it): decide inside, refuse after."""
    raise CampaignRefused(reject(campaign, contact, reason, detail))


def participate(
    campaign: Campaign,
    contact: Contact,
    *,
    referrer: Contact | None = None,
    now: datetime | None = None,
) -> Participation:
    """Take part (idempotent: the same customer joins once). Refused, with the reason
    recorded, when the campaign is not running or the customer is not in its audience."""
    now = now or timezone.now()
    existing = Participation.objects.filter(campaign=campaign, contact=contact).first()
    if existing:
        return existing
    if not is_running(campaign, now):
        refuse(campaign, contact, Reason.NOT_RUNNING)
    if not in_audience(campaign, contact):
        refuse(campaign, contact, Reason.NOT_IN_AUDIENCE)
    if referrer is not None and referrer.pk == contact.pk:
        reject(campaign, contact, Reason.SELF_REFERRAL, "joined by their own link")
        referrer = None
    try:
        with transaction.atomic():
            participation = Participation.objects.create(
                campaign=campaign, contact=contact, referrer=referrer, joined_at=now
            )
    except IntegrityError:  # joined at the same moment by a second request
        return Participation.objects.get(campaign=campaign, contact=contact)
    record(
        type=EventType.CAMPAIGN_JOINED,
        occurred_at=now,
        key=f"campaign:{campaign.pk}:joined:{contact.pk}",
        contact=contact,
        campaign=campaign,
        payload={"referrer": referrer.pk} if referrer else None,
    )
    return participation


def take_part(campaign: Campaign, contact: Contact, *, now: datetime) -> Participation:
    """For a customer's action on a type's landing page: refused (recorded) unless the
    campaign runs now, then `participate` (which alone lets a past participant through after
    the end)."""
    if not is_running(campaign, now):
        refuse(campaign, contact, Reason.NOT_RUNNING)
    return participate(campaign, contact, now=now)


def complete(participation: Participation, *, now: datetime | None = None) -> bool:
    """Mark the task done, once. Returns whether this call completed it."""
    now = now or timezone.now()
    done = Participation.objects.filter(
        pk=participation.pk, state=Participation.State.JOINED
    ).update(state=Participation.State.COMPLETED, completed_at=now)
    if done:
        participation.state = Participation.State.COMPLETED
        participation.completed_at = now
        record(
            type=EventType.CAMPAIGN_COMPLETED,
            occurred_at=now,
            key=f"campaign:{participation.campaign_id}:completed:{participation.contact_id}",
            contact=participation.contact_id,
            campaign=participation.campaign_id,
        )
    return bool(done)


def money_spent(campaign: Campaign) -> int:
    """Fen the campaign has given away (commissions, gifts, coupons' face value): what its
    budget caps."""
    money = Q(kind__in=[Reward.Kind.COMMISSION, Reward.Kind.GIFT, Reward.Kind.COUPON])
    return sum(campaign.rewards.filter(money).values_list("amount", flat=True))


def reward(
    campaign: Campaign,
    contact: Contact,
    *,
    kind: str,
    amount: int,
    key: str,
    description: str = "",
    coupon=None,
    now: datetime | None = None,
) -> Reward:
    """Give a reward once per `key` (a retry or a second click returns the first). Points
    are credited to the customer's ledger in the same transaction; money rewards must fit
    in what is left of the budget (budget 0: no cap)."""
    now = now or timezone.now()
    key = f"campaign:{campaign.pk}:{key}"
    if existing := Reward.objects.filter(key=key).first():
        return existing
    with transaction.atomic():
        # One reward decision at a time per campaign: the budget check and the insert agree.
        Campaign.objects.select_for_update().filter(pk=campaign.pk).values_list("pk").first()
        if existing := Reward.objects.filter(key=key).first():
            return existing
        budget = campaign.budget_fen
        over_budget = (
            kind != Reward.Kind.POINTS and budget > 0 and money_spent(campaign) + amount > budget
        )
        if not over_budget:
            given = Reward.objects.create(
                campaign=campaign,
                contact=contact,
                kind=kind,
                amount=amount,
                description=description[:100],
                coupon=coupon,
                key=key,
            )
            if kind == Reward.Kind.POINTS:
                points_award(contact, points=amount, key=key, occurred_at=now, note=campaign.name)
            Participation.objects.filter(
                campaign=campaign, contact=contact, state=Participation.State.COMPLETED
            ).update(state=Participation.State.REWARDED, rewarded_at=now)
            record(
                type=EventType.CAMPAIGN_REWARDED,
                occurred_at=now,
                key=key,
                contact=contact,
                campaign=campaign,
                amount=amount,
                payload={"kind": kind, "reward": given.pk},
            )
    if over_budget:  # recorded after the transaction, which raising inside would roll back
        refuse(campaign, contact, Reason.BUDGET_SPENT, f"{kind} {amount}")
    return given


# --- reaching people --------------------------------------------------------------------------


def announce(
    campaign: Campaign,
    *,
    content,
    send_at: datetime,
    contacts=None,
    groups=None,
    user=None,
):
    """Announce the campaign or tell participants their progress: a broadcast through the
    SOP engine, so the shared push budgets, quiet hours and opt-outs apply (never around
    them). Returns the broadcast plan."""
    from sop.services import broadcast_create  # sop depends on campaigns' models only

    return broadcast_create(
        name=f"{campaign.name}",
        content=content,
        send_at=send_at,
        contacts=contacts,
        groups=groups,
        campaign=campaign,
        user=user,
        staff=campaign.staff,
    )


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelStep:
    key: str
    label: str
    count: int


def campaign_funnel(campaign: Campaign) -> list[FunnelStep]:
    """Reached → joined → completed → rewarded → ordered (people, each step from its events
    and records; ordered: participants with an order attributed to the campaign)."""
    from analytics.models import Event

    people = campaign.participants
    # Reached: sent an announcement or opened the landing page, or joined (by a link).
    reached = (
        Event.objects.filter(
            campaign_id=campaign.pk, type=EventType.CAMPAIGN_REACHED, contact_id__isnull=False
        )
        .values("contact_id")
        .union(people.values("contact_id"))
        .count()
    )
    joined = people.count()
    completed = people.filter(
        state__in=[Participation.State.COMPLETED, Participation.State.REWARDED]
    ).count()
    rewarded = campaign.rewards.values("contact").distinct().count()
    ordered = campaign.orders.filter(status="paid").values("contact").distinct().count()
    return [
        FunnelStep("reached", _("Reached"), reached),
        FunnelStep("joined", pgettext("campaign", "Joined"), joined),
        FunnelStep("completed", _("Completed"), completed),
        FunnelStep("rewarded", _("Rewarded"), rewarded),
        FunnelStep("ordered", _("Ordered"), ordered),
    ]


def campaign_period(campaign: Campaign):
    """The Shanghai days the campaign ran (or runs): from its start to its end, or today."""
    from analytics.metrics import SHANGHAI, Period

    start = campaign.starts_at or campaign.created_at
    end = campaign.ends_at or timezone.now()
    last = timezone.localtime(end, SHANGHAI).date()
    first = min(timezone.localtime(start, SHANGHAI).date(), last)
    return Period(first, last)


def campaign_roi(campaign: Campaign):
    """投入产出比: orders attributed to the campaign ÷ costs recorded against it, over its
    days (analytics.metrics.roi)."""
    from analytics.metrics import roi

    return roi(campaign_period(campaign), campaign=campaign.pk)
