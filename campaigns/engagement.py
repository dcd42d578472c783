"""Check-in streaks (打卡), group-buys (拼团) and contests (比赛): their rules, landing pages,
the actions a customer takes on them, and the timed and operator work they need."""

from datetime import date, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from analytics.events import record
from analytics.metrics import SHANGHAI
from analytics.models import EventType
from campaigns import services
from campaigns.models import (
    Campaign,
    CheckIn,
    CouponBatch,
    Entry,
    GroupBuy,
    GroupBuyMember,
    Participation,
    Reward,
    Vote,
)
from campaigns.offers import coupon_reward
from campaigns.rules import reward_check, shanghai_day, whole
from contacts.exports import fen_as_yuan
from contacts.models import Contact
from contacts.points import points_award

Type = Campaign.Type
Reason = services.Reason

# A group-buy seat count fits the model's small integer, and a bigger "group" is no group.
GROUP_BUY_MAX_SIZE = 100
ENTRY_CONTENT_MAX = 5000
# The contest page lists this many entries at most (the rest still count and can be drawn).
ENTRIES_SHOWN = 100


# --- rules ------------------------------------------------------------------------------------


def checkin_rules_check(rules: dict) -> None:
    errors: dict = {}
    whole(rules, "days_needed", errors, minimum=1)
    makeups = whole(rules, "makeups_allowed", errors, minimum=0, required=False)
    whole(rules, "makeup_within_days", errors, minimum=1, required=bool(makeups))
    whole(rules, "points_per_checkin", errors, minimum=1, required=False)
    reward_check(rules, errors)
    if errors:
        raise ValidationError(errors)


def group_buy_rules_check(rules: dict) -> None:
    errors: dict = {}
    size = whole(rules, "size", errors, minimum=2)
    if size is not None and size > GROUP_BUY_MAX_SIZE:
        errors["size"] = _("size must be at most %(maximum)s.") % {"maximum": GROUP_BUY_MAX_SIZE}
    whole(rules, "hours", errors, minimum=1)
    whole(rules, "price_fen", errors, minimum=0)
    if errors:
        raise ValidationError(errors)


def contest_rules_check(rules: dict) -> None:
    errors: dict = {}
    # One vote per person per day is what the Vote table enforces; anything else would lie.
    if rules.get("votes_per_day", 1) != 1:
        errors["votes_per_day"] = _("votes_per_day must be 1.")
    whole(rules, "draw_winners", errors, minimum=1)
    reward_check(rules, errors)
    if errors:
        raise ValidationError(errors)


RULES = {
    Type.CHECKIN: checkin_rules_check,
    Type.GROUP_BUY: group_buy_rules_check,
    Type.CONTEST: contest_rules_check,
}


# --- rewards ----------------------------------------------------------------------------------


def _reward_give(
    campaign: Campaign, contact: Contact, *, key: str, description: str, now: datetime
) -> Reward:
    """Give the campaign's configured reward once per key: points, or a coupon of a batch
    (issued by campaigns.offers, which owns coupon stock). Refused (CampaignRefused, the
    reason recorded) when the batch is sold out or the budget spent."""
    spec = campaign.rules["reward"]
    if "points" in spec:
        return services.reward(
            campaign,
            contact,
            kind=Reward.Kind.POINTS,
            amount=spec["points"],
            key=key,
            description=description,
            now=now,
        )
    batch = CouponBatch.objects.get(pk=spec["coupon_batch"])
    coupon = coupon_reward(batch, contact, key=key, campaign=campaign, now=now)
    return Reward.objects.get(campaign=campaign, coupon=coupon)


# --- check-in streak (打卡) ---------------------------------------------------------------------


def _checked_days(campaign: Campaign, contact: Contact) -> dict[date, bool]:
    """{day: was a makeup} of the customer's check-ins in the campaign."""
    rows = CheckIn.objects.filter(campaign=campaign, contact=contact).values_list("day", "makeup")
    return dict(rows)


def checkin_streak(days, today: date) -> int:
    """Consecutive checked days ending today, or yesterday if today is not checked yet
    (the streak is still alive until today ends); makeups count as checked."""
    day = today if today in days else today - timedelta(days=1)
    streak = 0
    while day in days:
        streak += 1
        day -= timedelta(days=1)
    return streak


def _streak_update(campaign: Campaign, participation: Participation, now: datetime) -> str:
    """Store the streak as progress; at days_needed, complete and reward (once: the key is
    the participation's). Returns what to tell the customer."""
    contact = participation.contact
    streak = checkin_streak(_checked_days(campaign, contact), shanghai_day(now))
    Participation.objects.filter(pk=participation.pk).update(progress=streak)
    needed = campaign.rules["days_needed"]
    if streak < needed:
        return _("Checked in: %(streak)s days in a row, %(left)s more to the reward.") % {
            "streak": streak,
            "left": needed - streak,
        }
    services.complete(participation, now=now)
    try:
        _reward_give(
            campaign,
            contact,
            key=f"checkin:{participation.pk}",
            description=_("%(days)s-day check-in streak") % {"days": needed},
            now=now,
        )
    except services.CampaignRefused as refused:
        message = _("Checked in: %(streak)s days in a row. The reward could not be given: %(why)s.")
        return message % {"streak": streak, "why": refused}
    return _("Checked in: %(streak)s days in a row. Streak reached, reward given.") % {
        "streak": streak
    }


def checkin(campaign: Campaign, contact: Contact, data, *, now: datetime | None = None) -> str:
    """Check in for today (Shanghai); once a day, a second time is refused as a duplicate."""
    now = now or timezone.now()
    participation = services.take_part(campaign, contact, now=now)
    today = shanghai_day(now)
    try:
        with transaction.atomic():
            CheckIn.objects.create(campaign=campaign, contact=contact, day=today)
    except IntegrityError:
        services.refuse(campaign, contact, Reason.DUPLICATE, f"check-in {today}")
    points = campaign.rules.get("points_per_checkin")
    key = f"campaign:{campaign.pk}:checkin:{contact.pk}:{today}"
    record(
        type=EventType.CHECKED_IN,
        occurred_at=now,
        key=key,
        contact=contact,
        campaign=campaign,
        amount=points,
        payload={"day": today.isoformat()},
    )
    if points:
        # Straight to the points ledger, not a campaign Reward: a daily credit is not the
        # streak's reward, and counting it would put every check-in in the funnel's
        # "rewarded" step.
        points_award(contact, points=points, key=key, occurred_at=now, note=campaign.name)
    return _streak_update(campaign, participation, now)


def makeup(campaign: Campaign, contact: Contact, data, *, now: datetime | None = None) -> str:
    """Fill a missed past day (data "day", YYYY-MM-DD) within makeup_within_days of today,
    at most makeups_allowed times in the campaign."""
    now = now or timezone.now()
    participation = services.take_part(campaign, contact, now=now)
    today = shanghai_day(now)
    try:
        day = date.fromisoformat(str(data.get("day", "")))
    except ValueError:
        return _("day: choose a missed day to make up (YYYY-MM-DD).")
    if day >= today:
        return _("day: only a past day can be made up; check in for today instead.")
    allowed = campaign.rules.get("makeups_allowed", 0)
    within = campaign.rules.get("makeup_within_days", 0)
    if not allowed:
        services.refuse(campaign, contact, Reason.LIMIT_REACHED, "no makeups in this campaign")
    first_day = services.campaign_period(campaign).first
    if day < first_day or day < today - timedelta(days=within):
        services.refuse(campaign, contact, Reason.EXPIRED, f"makeup {day}")
    refusal = None
    with transaction.atomic():
        # One makeup decision at a time per customer, so two at once cannot exceed the count.
        Participation.objects.select_for_update().filter(pk=participation.pk).first()
        used = CheckIn.objects.filter(campaign=campaign, contact=contact, makeup=True).count()
        if CheckIn.objects.filter(campaign=campaign, contact=contact, day=day).exists():
            refusal = Reason.DUPLICATE
        elif used >= allowed:
            refusal = Reason.LIMIT_REACHED
        else:
            CheckIn.objects.create(campaign=campaign, contact=contact, day=day, makeup=True)
    if refusal:  # recorded outside the transaction, so the rejection row stays
        services.refuse(campaign, contact, refusal, f"makeup {day}")
    record(
        type=EventType.CHECKED_IN,
        occurred_at=now,
        key=f"campaign:{campaign.pk}:checkin:{contact.pk}:{day}",
        contact=contact,
        campaign=campaign,
        payload={"day": day.isoformat(), "makeup": True},
    )
    return _streak_update(campaign, participation, now)


def checkin_context(campaign: Campaign, contact: Contact, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    today = shanghai_day(now)
    rules = campaign.rules
    checked = _checked_days(campaign, contact)
    within = rules.get("makeup_within_days", 0)
    makeups_left = max(rules.get("makeups_allowed", 0) - sum(checked.values()), 0)
    period = services.campaign_period(campaign)
    calendar = []
    day = period.first
    while day <= period.last:
        if day in checked:
            state = "makeup" if checked[day] else "checked"
        elif day >= today:
            state = "today" if day == today else "upcoming"
        else:
            state = "missed"
        can_make_up = state == "missed" and makeups_left > 0 and day >= today - timedelta(within)
        calendar.append({"day": day, "state": state, "can_make_up": can_make_up})
        day += timedelta(days=1)
    participation = Participation.objects.filter(campaign=campaign, contact=contact).first()
    return {
        "calendar": calendar,
        "streak": checkin_streak(checked, today),
        "days_needed": rules.get("days_needed"),
        "checked_today": today in checked,
        "makeups_left": makeups_left,
        "rewarded": bool(participation and participation.state == Participation.State.REWARDED),
    }


# --- group-buy (拼团) ---------------------------------------------------------------------------


def _price_text(campaign: Campaign) -> str:
    return f"¥{fen_as_yuan(campaign.rules['price_fen'])}"


def group_buy_open(
    campaign: Campaign, contact: Contact, data, *, now: datetime | None = None
) -> str:
    """Open a group as its leader (the leader holds the first seat); one open group at a time."""
    now = now or timezone.now()
    participation = services.take_part(campaign, contact, now=now)
    with transaction.atomic():
        # Serialise this leader's opens, so two taps cannot open two groups.
        Participation.objects.select_for_update().filter(pk=participation.pk).first()
        already = GroupBuy.objects.filter(
            campaign=campaign, leader=contact, state=GroupBuy.State.OPEN, deadline__gt=now
        ).first()
        if already is None:
            group_buy = GroupBuy.objects.create(
                campaign=campaign,
                leader=contact,
                size=campaign.rules["size"],
                deadline=now + timedelta(hours=campaign.rules["hours"]),
            )
            GroupBuyMember.objects.create(group_buy=group_buy, contact=contact)
    if already is not None:
        services.refuse(campaign, contact, Reason.DUPLICATE, f"group-buy {already.pk} open")
    return _("Group %(id)s opened: %(left)s more people needed before %(deadline)s.") % {
        "id": group_buy.pk,
        "left": group_buy.size - 1,
        "deadline": timezone.localtime(group_buy.deadline, SHANGHAI).strftime("%m-%d %H:%M"),
    }


def _group_buy_succeed(campaign: Campaign, group_buy: GroupBuy, now: datetime) -> None:
    """The last seat is taken: the group succeeds and every member has the price unlocked,
    recorded as a GIFT reward of 0 fen (the price is paid in the shop, not given away)."""
    group_buy.state = GroupBuy.State.SUCCEEDED
    group_buy.closed_at = now
    group_buy.save(update_fields=["state", "closed_at"])
    seats = group_buy.members.filter(released_at__isnull=True).select_related("contact")
    for seat in seats:
        participation = Participation.objects.get(campaign=campaign, contact=seat.contact)
        services.complete(participation, now=now)
        services.reward(
            campaign,
            seat.contact,
            kind=Reward.Kind.GIFT,
            amount=0,
            key=f"group_buy:{group_buy.pk}:{seat.contact_id}",
            description=_("Group-buy price %(price)s") % {"price": _price_text(campaign)},
            now=now,
        )


def group_buy_join(
    campaign: Campaign, contact: Contact, data, *, now: datetime | None = None
) -> str:
    """Take a seat in a group (data "group_buy": its id). The group's row is locked while
    seats are counted, so concurrent joins never take more than its size."""
    now = now or timezone.now()
    try:
        group_buy_id = int(data.get("group_buy", ""))
    except (TypeError, ValueError):
        return _("group_buy: enter the number of the group to join.")
    if not GroupBuy.objects.filter(pk=group_buy_id, campaign=campaign).exists():
        return _("group_buy: there is no group %(id)s in this campaign.") % {"id": group_buy_id}
    services.take_part(campaign, contact, now=now)
    refusal = None
    with transaction.atomic():
        group_buy = GroupBuy.objects.select_for_update().get(pk=group_buy_id)
        seats = group_buy.members.filter(released_at__isnull=True)
        taken = seats.count()
        if seats.filter(contact=contact).exists():
            refusal = Reason.DUPLICATE
        elif group_buy.state == GroupBuy.State.SUCCEEDED or taken >= group_buy.size:
            refusal = Reason.SOLD_OUT
        elif group_buy.state == GroupBuy.State.FAILED or group_buy.deadline <= now:
            refusal = Reason.EXPIRED
        else:
            GroupBuyMember.objects.create(group_buy=group_buy, contact=contact)
            taken += 1
            if taken == group_buy.size:
                _group_buy_succeed(campaign, group_buy, now)
    if refusal:  # recorded outside the transaction, so the rejection row stays
        services.refuse(campaign, contact, refusal, f"group-buy {group_buy_id}")
    if taken == group_buy.size:
        return _("The group is complete: the group-buy price %(price)s is yours.") % {
            "price": _price_text(campaign)
        }
    return _("You joined group %(id)s: %(left)s more people needed.") % {
        "id": group_buy.pk,
        "left": group_buy.size - taken,
    }


def group_buy_expire(now: datetime | None = None) -> int:
    """Open groups past their deadline fail and release their seats; returns how many.
    A group being joined right now is skipped (its join sees the deadline itself) and
    picked up on the next run."""
    now = now or timezone.now()
    with transaction.atomic():
        failed = list(
            GroupBuy.objects.select_for_update(skip_locked=True)
            .filter(state=GroupBuy.State.OPEN, deadline__lte=now)
            .values_list("pk", flat=True)
        )
        GroupBuy.objects.filter(pk__in=failed).update(state=GroupBuy.State.FAILED, closed_at=now)
        GroupBuyMember.objects.filter(group_buy__in=failed, released_at__isnull=True).update(
            released_at=now
        )
    return len(failed)


def timed_work() -> int:
    """Run every minute by campaigns.tasks.tick."""
    return group_buy_expire()


def _group_buy_row(group_buy: GroupBuy) -> dict:
    seats = group_buy.members.filter(released_at__isnull=True).count()
    return {"group_buy": group_buy, "seats": seats, "left": max(group_buy.size - seats, 0)}


def group_buy_context(campaign: Campaign, contact: Contact) -> dict:
    mine = (
        GroupBuy.objects.filter(campaign=campaign, members__contact=contact)
        .select_related("leader")
        .order_by("-created_at")
    )
    rows = [_group_buy_row(group_buy) for group_buy in mine]
    led = next(
        (
            row
            for row in rows
            if row["group_buy"].leader_id == contact.pk
            and row["group_buy"].state == GroupBuy.State.OPEN
        ),
        None,
    )
    return {
        "price": _price_text(campaign) if "price_fen" in campaign.rules else "",
        "size": campaign.rules.get("size"),
        "hours": campaign.rules.get("hours"),
        "my_groups": rows,
        "leading": led,
    }


# --- contest (比赛) -----------------------------------------------------------------------------


def contest_enter(
    campaign: Campaign, contact: Contact, data, *, now: datetime | None = None
) -> str:
    """Submit the customer's one entry (data "title", "content"). Entering is the task, so
    it completes their participation; winners are rewarded by the draw."""
    now = now or timezone.now()
    title = str(data.get("title", "")).strip()
    content = str(data.get("content", "")).strip()
    if not title:
        return _("title: give your entry a title.")
    if len(title) > 100:
        return _("title: at most 100 characters.")
    if len(content) > ENTRY_CONTENT_MAX:
        return _("content: at most %(n)s characters.") % {"n": ENTRY_CONTENT_MAX}
    participation = services.take_part(campaign, contact, now=now)
    try:
        with transaction.atomic():
            entry = Entry.objects.create(
                campaign=campaign, contact=contact, title=title, content=content
            )
    except IntegrityError:
        services.refuse(campaign, contact, Reason.DUPLICATE, "second entry")
    services.complete(participation, now=now)
    return _("Your entry “%(title)s” is in (number %(id)s).") % {"title": title, "id": entry.pk}


def contest_vote(campaign: Campaign, contact: Contact, data, *, now: datetime | None = None) -> str:
    """Vote for an entry (data "entry": its id): one vote per person per Shanghai day across
    the contest, never for one's own entry."""
    now = now or timezone.now()
    try:
        entry_id = int(data.get("entry", ""))
    except (TypeError, ValueError):
        return _("entry: choose an entry to vote for.")
    entry = Entry.objects.filter(pk=entry_id, campaign=campaign).first()
    if entry is None:
        return _("entry: there is no entry %(id)s in this contest.") % {"id": entry_id}
    services.take_part(campaign, contact, now=now)
    if entry.contact_id == contact.pk:
        services.refuse(campaign, contact, Reason.SELF_REFERRAL, f"vote for own entry {entry.pk}")
    today = shanghai_day(now)
    try:
        with transaction.atomic():
            Vote.objects.create(entry=entry, campaign=campaign, voter=contact, day=today)
            Entry.objects.filter(pk=entry.pk).update(votes=F("votes") + 1)
    except IntegrityError:
        services.refuse(campaign, contact, Reason.DUPLICATE, f"second vote on {today}")
    return _("Your vote for “%(title)s” counts. Come back tomorrow to vote again.") % {
        "title": entry.title
    }


def contest_ranking(campaign: Campaign):
    """Entries by votes, ties going to the earlier entry."""
    return Entry.objects.filter(campaign=campaign).order_by("-votes", "created_at", "pk")


def contest_draw(campaign: Campaign, *, rng=None, now: datetime | None = None) -> list[Reward]:
    """For the operator after the contest ends: the top draw_winners entries by votes (ties
    to the earlier entry) get the reward, once each (key "contest:<entry>"), so running it
    again gives nothing twice. `rng` is accepted for the draw interface; the ranking is
    deterministic, so nothing is left to chance."""
    del rng
    now = now or timezone.now()
    if campaign.state != Campaign.State.ENDED and (
        campaign.ends_at is None or campaign.ends_at > now
    ):
        raise ValidationError({"campaign": _("The draw comes after the contest ends.")})
    winners = contest_ranking(campaign).select_related("contact")[: campaign.rules["draw_winners"]]
    return [
        _reward_give(
            campaign,
            entry.contact,
            key=f"contest:{entry.pk}",
            description=_("Contest winner: %(title)s") % {"title": entry.title},
            now=now,
        )
        for entry in winners
    ]


def contest_context(campaign: Campaign, contact: Contact, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    vote = (
        Vote.objects.filter(campaign=campaign, voter=contact, day=shanghai_day(now))
        .select_related("entry")
        .first()
    )
    won = Reward.objects.filter(
        campaign=campaign, key__startswith=f"campaign:{campaign.pk}:contest:"
    ).values_list("key", flat=True)
    winners = {int(key.rsplit(":", 1)[1]) for key in won}
    return {
        "entries": list(contest_ranking(campaign)[:ENTRIES_SHOWN]),
        "my_entry": Entry.objects.filter(campaign=campaign, contact=contact).first(),
        "voted_today": vote.entry if vote else None,
        "winners": winners,
    }


# --- the landing page -------------------------------------------------------------------------


def landing_context(campaign: Campaign, contact: Contact) -> dict:
    if campaign.type == Type.CHECKIN:
        return checkin_context(campaign, contact)
    if campaign.type == Type.GROUP_BUY:
        return group_buy_context(campaign, contact)
    return contest_context(campaign, contact)


ACTIONS = {
    Type.CHECKIN: {"checkin": checkin, "makeup": makeup},
    Type.GROUP_BUY: {"open": group_buy_open, "join": group_buy_join},
    Type.CONTEST: {"enter": contest_enter, "vote": contest_vote},
}
