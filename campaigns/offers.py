"""Promotion offers: coupons (issued, redeemed once, expired), flash sales (秒杀) that never
oversell, lotteries (抽奖) with configured odds and stock, and spend-and-get (满赠).

Every unit (a coupon from a batch, a flash-sale item, a lottery prize) is taken by one
conditional UPDATE that never goes below zero, so concurrent customers never take more than
there is; per-customer limits are checked under a transaction-scoped advisory lock on
(campaign, customer), so one customer's parallel clicks are decided one at a time.
"""

import random
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, F, Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from analytics.events import record
from analytics.models import EventType
from analytics.templatetags.money import yuan
from campaigns import services
from campaigns.models import (
    Campaign,
    Claim,
    Coupon,
    CouponBatch,
    Order,
    Rejection,
    Reward,
    Stock,
)
from campaigns.services import CampaignRefused, refuse
from contacts.models import Contact

Reason = Rejection.Reason
Type = Campaign.Type

# 12 characters from 32 that cannot be misread (no 0/O, 1/I): 60 random bits, unguessable.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 12
# Wrong claim codes a customer may type in an hour before further tries are refused: enough
# for typos, far too few to guess a code.
WRONG_CODES_PER_HOUR = 10
_SYSTEM_RANDOM = random.SystemRandom()


@contextmanager
def _refusals_kept() -> Iterator[None]:
    """One transaction for a decision; a refusal inside it undoes everything but is itself
    written again afterwards, so the Rejection row survives the rollback."""
    try:
        with transaction.atomic():
            yield
    except CampaignRefused as refused:
        rejection = refused.rejection
        refuse(rejection.campaign, rejection.contact, rejection.reason, rejection.detail)


def _lock(name: str) -> None:
    """Hold a lock on `name` until the transaction ends (a hash collision only serialises
    two unrelated decisions, never mixes them)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [name])


def _rate_check(campaign: Campaign, contact: Contact) -> None:
    """Refuse a customer who tried more than the campaign's max_attempts_per_minute: every
    claim, draw and refusal of the last minute counts as an attempt."""
    cap = campaign.rules.get("max_attempts_per_minute")
    if not cap:
        return
    since = timezone.now() - timedelta(minutes=1)
    recent = Q(campaign=campaign, contact=contact, created_at__gte=since)
    attempts = Claim.objects.filter(recent).count() + Rejection.objects.filter(recent).count()
    if attempts >= cap:
        refuse(campaign, contact, Reason.RATE_LIMITED, f"{attempts} attempts in a minute")


def _take_unit(stock_id: int) -> bool:
    """One unit of a stock row, or False when none is left: the single statement that
    keeps concurrent claims from ever overselling."""
    return bool(
        Stock.objects.filter(pk=stock_id, remaining__gt=0).update(remaining=F("remaining") - 1)
    )


# --- rules ------------------------------------------------------------------------------------


def _check_rules(
    rules: dict,
    *,
    numbers: set[str],
    required: set[str] = frozenset(),
    others: set[str] = frozenset(),
) -> dict:
    """Errors naming each rule at fault: unknown rules, missing ones, and numbers that are
    not whole or too small (miss_weight may be 0; everything else counts from 1). `others`
    are rules the caller checks itself."""
    errors = {}
    for name in sorted(set(rules) - numbers - others):
        errors[name] = _("“%(rule)s” is not a rule of this campaign type.") % {"rule": name}
    for name in sorted(required - set(rules)):
        errors[name] = _("The rule “%(rule)s” is required.") % {"rule": name}
    for name in sorted(numbers & set(rules)):
        value, minimum = rules[name], 0 if name == "miss_weight" else 1
        if not isinstance(value, int) or isinstance(value, bool):
            errors[name] = _("“%(rule)s” must be a whole number.") % {"rule": name}
        elif value < minimum:
            errors[name] = _("“%(rule)s” must be at least %(minimum)d.") % {
                "rule": name,
                "minimum": minimum,
            }
    return errors


def _whole(value, minimum: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def coupon_rules_check(rules: dict) -> None:
    if errors := _check_rules(rules, numbers={"max_attempts_per_minute"}):
        raise ValidationError(errors)


def flash_sale_rules_check(rules: dict) -> None:
    if errors := _check_rules(rules, numbers={"per_contact", "max_attempts_per_minute"}):
        raise ValidationError(errors)


def lottery_rules_check(rules: dict) -> None:
    errors = _check_rules(
        rules,
        numbers={"draws_per_contact", "miss_weight", "max_attempts_per_minute"},
        required={"draws_per_contact"},
    )
    if errors:
        raise ValidationError(errors)


def spend_and_get_rules_check(rules: dict) -> None:
    errors = _check_rules(
        rules, numbers={"threshold_fen"}, required={"threshold_fen", "gift"}, others={"gift"}
    )
    gift = rules.get("gift")
    if "gift" not in rules:
        pass
    elif not isinstance(gift, dict) or len(gift) != 1 or set(gift) - {"points", "coupon_batch"}:
        errors["gift"] = _('“gift” must be either {"points": n} or {"coupon_batch": batch id}.')
    elif "points" in gift and not _whole(gift["points"]):
        errors["gift"] = _("“gift” points must be a whole number of at least 1.")
    elif "coupon_batch" in gift and not (
        _whole(gift["coupon_batch"])
        and CouponBatch.objects.filter(pk=gift["coupon_batch"]).exists()
    ):
        errors["gift"] = _("“gift” names coupon batch %(batch)s, which does not exist.") % {
            "batch": gift["coupon_batch"]
        }
    if errors:
        raise ValidationError(errors)


RULES = {
    Type.COUPON: coupon_rules_check,
    Type.FLASH_SALE: flash_sale_rules_check,
    Type.LOTTERY: lottery_rules_check,
    Type.SPEND_AND_GET: spend_and_get_rules_check,
}


# --- coupons ----------------------------------------------------------------------------------


def coupon_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def code_clean(code: str) -> str:
    return "".join(code.split()).replace("-", "").upper()


def _issue(batch: CouponBatch, contact: Contact, *, key: str, now: datetime) -> tuple[Coupon, bool]:
    """(coupon, whether this call issued it); refused LIMIT_REACHED / SOLD_OUT."""
    # Keys are per customer: one customer's key never returns another's coupon.
    key = f"coupon:{batch.pk}:{contact.pk}:{key}"
    if existing := Coupon.objects.filter(key=key).first():
        return existing, False
    campaign = batch.campaign
    with _refusals_kept():
        _lock(f"coupon:{batch.pk}:{contact.pk}")
        if existing := Coupon.objects.filter(key=key).first():
            return existing, False
        held = Coupon.objects.filter(batch=batch, contact=contact).count()
        if held >= batch.per_contact:
            refuse(campaign, contact, Reason.LIMIT_REACHED, f"{batch.name}: {held} held")
        taken = CouponBatch.objects.filter(pk=batch.pk, stock__gt=0).update(stock=F("stock") - 1)
        if not taken:
            refuse(campaign, contact, Reason.SOLD_OUT, batch.name)
        coupon = Coupon.objects.create(
            batch=batch,
            contact=contact,
            code=coupon_code(),
            issued_at=now,
            expires_at=now + timedelta(days=batch.valid_days),
            key=key,
        )
        record(
            type=EventType.COUPON_ISSUED,
            occurred_at=now,
            key=f"coupon:{coupon.pk}:issued",
            contact=contact,
            campaign=batch.campaign_id,
            amount=batch.value_fen,
            payload={"batch": batch.pk, "coupon": coupon.pk},
        )
    return coupon, True


def coupon_issue(
    batch: CouponBatch, contact: Contact, *, key: str, now: datetime | None = None
) -> Coupon:
    """Issue one coupon of the batch, once per customer and `key`: taken from the batch's
    stock (never below zero), within its per-customer limit, valid for the batch's days.
    Refused with LIMIT_REACHED or SOLD_OUT (recorded) otherwise."""
    return _issue(batch, contact, key=key, now=now or timezone.now())[0]


def coupons_issue_to(
    batch: CouponBatch, contacts: Iterable[Contact], *, key: str = "segment"
) -> dict:
    """Issue one coupon to each customer of a segment (a queryset of contacts). Running it
    again issues nothing twice. Returns counts: issued, already (issued by an earlier run),
    refused, and refused by reason."""
    counts = {"issued": 0, "already": 0, "refused": 0, "reasons": {}}
    now = timezone.now()
    for contact in contacts:
        try:
            _coupon, created = _issue(batch, contact, key=key, now=now)
        except CampaignRefused as refused:
            counts["refused"] += 1
            counts["reasons"][refused.reason] = counts["reasons"].get(refused.reason, 0) + 1
            continue
        counts["issued" if created else "already"] += 1
    return counts


def _coupon_reward(
    batch: CouponBatch, contact: Contact, *, key: str, campaign: Campaign, now: datetime
) -> Reward:
    with _refusals_kept():
        coupon = coupon_issue(batch, contact, key=f"reward:{campaign.pk}:{key}", now=now)
        return services.reward(
            campaign,
            contact,
            kind=Reward.Kind.COUPON,
            amount=batch.value_fen,
            key=f"coupon:{contact.pk}:{key}",
            description=batch.name,
            coupon=coupon,
            now=now,
        )


def coupon_reward(
    batch: CouponBatch,
    contact: Contact,
    *,
    key: str,
    campaign: Campaign | None = None,
    now: datetime | None = None,
) -> Coupon:
    """Give a coupon as a campaign's reward (once per customer and `key`): the coupon and its Reward
    (kind coupon, its face value counted against `campaign`'s budget) stand or fall
    together. `campaign` is the one giving it, by default the batch's own."""
    campaign = campaign or batch.campaign
    given = _coupon_reward(batch, contact, key=key, campaign=campaign, now=now or timezone.now())
    return given.coupon


def coupon_claim(campaign: Campaign, contact: Contact, code: str) -> Coupon | None:
    """A customer typed a batch's public claim code on the landing page. None when no batch
    of this campaign has that code (recorded, and capped per hour against guessing)."""
    now = timezone.now()
    services.take_part(campaign, contact, now=now)
    _rate_check(campaign, contact)
    since = now - timedelta(hours=1)
    wrong = Rejection.objects.filter(
        campaign=campaign, contact=contact, reason=Reason.BAD_TOKEN, created_at__gte=since
    ).count()
    if wrong >= WRONG_CODES_PER_HOUR:
        refuse(campaign, contact, Reason.RATE_LIMITED, f"{wrong} wrong codes in an hour")
    typed = code_clean(code)
    batch = next(
        (
            b
            for b in campaign.coupon_batches.exclude(claim_code="")
            if code_clean(b.claim_code) == typed
        ),
        None,
    )
    if not typed or batch is None:
        services.reject(campaign, contact, Reason.BAD_TOKEN, f"wrong claim code {code[:40]!r}")
        return None
    held = Coupon.objects.filter(batch=batch, contact=contact).count()
    # A double tap sends the same key and gets the same coupon; a later claim asks for the
    # next one, which the per-customer limit decides.
    return coupon_issue(batch, contact, key=f"code:{held + 1}", now=now)


def coupon_redeem(code: str, *, order: Order | None = None, now: datetime | None = None) -> Coupon:
    """Use a coupon, once, before it expires (optionally on an order of its holder that
    reaches the minimum spend). Refused ALREADY_USED, EXPIRED or BELOW_THRESHOLD (recorded);
    ValidationError for a code that does not exist or an order of someone else."""
    now = now or timezone.now()
    coupon = (
        Coupon.objects.select_related("batch__campaign", "contact")
        .filter(code=code_clean(code))
        .first()
    )
    if coupon is None:
        raise ValidationError({"code": _("No coupon has this code.")})
    batch, campaign = coupon.batch, coupon.batch.campaign
    if order is not None:
        if order.contact_id != coupon.contact_id:
            raise ValidationError({"order": _("This coupon belongs to another customer.")})
        # Only a usable coupon is refused for the amount; a used or expired one says so.
        if coupon.state == Coupon.State.ISSUED and order.amount_fen < batch.min_spend_fen:
            refuse(
                campaign,
                coupon.contact,
                Reason.BELOW_THRESHOLD,
                f"{coupon.code}: order {order.amount_fen} < minimum {batch.min_spend_fen}",
            )
    with transaction.atomic():
        used = Coupon.objects.filter(
            pk=coupon.pk, state=Coupon.State.ISSUED, expires_at__gt=now
        ).update(state=Coupon.State.REDEEMED, redeemed_at=now, order=order)
        if used:
            if order is not None:
                Order.objects.filter(pk=order.pk).update(used_coupon=True)
            record(
                type=EventType.COUPON_REDEEMED,
                occurred_at=now,
                key=f"coupon:{coupon.pk}:redeemed",
                contact=coupon.contact_id,
                campaign=campaign,
                amount=batch.value_fen,
                payload={"coupon": coupon.pk, "order_no": order.order_no if order else None},
            )
    coupon.refresh_from_db()
    if not used:
        if coupon.state == Coupon.State.REDEEMED:
            refuse(campaign, coupon.contact, Reason.ALREADY_USED, coupon.code)
        refuse(campaign, coupon.contact, Reason.EXPIRED, coupon.code)
    return coupon


def coupons_expire(now: datetime | None = None) -> int:
    """Issued coupons past their end become expired; returns how many."""
    now = now or timezone.now()
    return Coupon.objects.filter(state=Coupon.State.ISSUED, expires_at__lte=now).update(
        state=Coupon.State.EXPIRED
    )


# --- flash sale -------------------------------------------------------------------------------


def flash_claim(
    campaign: Campaign, contact: Contact, stock: Stock, *, key: str, now: datetime | None = None
) -> Claim:
    """Take one unit of a flash-sale item (秒杀), once per customer and `key`. Refused NOT_RUNNING,
    NOT_IN_AUDIENCE, RATE_LIMITED, LIMIT_REACHED (rules per_contact, default 1) or SOLD_OUT,
    each recorded. Never oversells: the unit is taken by one conditional UPDATE."""
    now = now or timezone.now()
    if stock.campaign_id != campaign.pk:
        raise ValidationError({"stock": _("This item is not on sale in this campaign.")})
    key = f"flash:{campaign.pk}:{contact.pk}:{key}"
    if existing := Claim.objects.filter(key=key).first():
        return existing
    participation = services.take_part(campaign, contact, now=now)
    _rate_check(campaign, contact)
    per_contact = campaign.rules.get("per_contact", 1)
    with _refusals_kept():
        _lock(f"claim:{campaign.pk}:{contact.pk}")
        if existing := Claim.objects.filter(key=key).first():
            return existing
        held = Claim.objects.filter(campaign=campaign, contact=contact).count()
        if held >= per_contact:
            refuse(campaign, contact, Reason.LIMIT_REACHED, f"{held} of {per_contact} claimed")
        # Last before the insert: the stock row stays locked only until this commit.
        if not _take_unit(stock.pk):
            refuse(campaign, contact, Reason.SOLD_OUT, stock.name)
        claim = Claim.objects.create(campaign=campaign, contact=contact, stock=stock, key=key)
    services.complete(participation, now=now)
    return claim


# --- lottery ----------------------------------------------------------------------------------


def lottery_draw(
    campaign: Campaign,
    contact: Contact,
    *,
    key: str,
    rng: random.Random | None = None,
    now: datetime | None = None,
) -> Claim:
    """Draw once (once per customer and `key`), within rules draws_per_contact: a prize
    picked by the weights of the prizes still in stock against the rules' miss_weight, its
    unit taken atomically (if another draw took the last one meanwhile, this draw wins
    nothing) and given as a gift reward. The Claim's stock is the prize, or None for no prize."""
    now = now or timezone.now()
    rng = rng or _SYSTEM_RANDOM
    key = f"lottery:{campaign.pk}:{contact.pk}:{key}"
    if existing := Claim.objects.filter(key=key).first():
        return existing
    participation = services.take_part(campaign, contact, now=now)
    _rate_check(campaign, contact)
    rules = campaign.rules
    with _refusals_kept():
        _lock(f"claim:{campaign.pk}:{contact.pk}")
        if existing := Claim.objects.filter(key=key).first():
            return existing
        drawn = Claim.objects.filter(campaign=campaign, contact=contact).count()
        allowed = rules.get("draws_per_contact", 1)
        if drawn >= allowed:
            refuse(campaign, contact, Reason.LIMIT_REACHED, f"{drawn} of {allowed} draws")
        prizes = list(campaign.stock.filter(remaining__gt=0, weight__gt=0).order_by("pk"))
        if not prizes:
            refuse(campaign, contact, Reason.SOLD_OUT, "no prize left")
        miss = rules.get("miss_weight", 0)
        picked = rng.choices([*prizes, None], weights=[p.weight for p in prizes] + [miss])[0]
        if picked is not None and not _take_unit(picked.pk):
            picked = None
        claim = Claim.objects.create(campaign=campaign, contact=contact, stock=picked, key=key)
        services.complete(participation, now=now)
        if picked is not None:
            services.reward(
                campaign,
                contact,
                kind=Reward.Kind.GIFT,
                amount=picked.price_fen,
                description=picked.name,
                key=f"draw:{claim.pk}",
                now=now,
            )
    return claim


# --- spend and get ----------------------------------------------------------------------------


def _spend_and_get(campaign: Campaign, order: Order) -> Reward:
    threshold = campaign.rules["threshold_fen"]
    contact = order.contact
    if order.amount_fen < threshold:
        refuse(
            campaign,
            contact,
            Reason.BELOW_THRESHOLD,
            f"order {order.order_no}: {order.amount_fen} < {threshold}",
        )
    participation = services.participate(campaign, contact, now=order.ordered_at)
    gift = campaign.rules["gift"]
    key = f"order:{order.order_no}"
    with _refusals_kept():
        services.complete(participation, now=order.ordered_at)
        if "points" in gift:
            return services.reward(
                campaign,
                contact,
                kind=Reward.Kind.POINTS,
                amount=gift["points"],
                description=campaign.name,
                key=key,
                now=order.ordered_at,
            )
        batch = CouponBatch.objects.select_related("campaign").get(pk=gift["coupon_batch"])
        return _coupon_reward(batch, contact, key=key, campaign=campaign, now=order.ordered_at)


def _spend_and_get_campaigns():
    return list(Campaign.objects.filter(type=Type.SPEND_AND_GET, state=Campaign.State.RUNNING))


def order_paid(order: Order, *, campaigns: list[Campaign] | None = None) -> list[Reward]:
    """A paid order: each running spend-and-get campaign (满赠) it was placed in gives its
    gift once per order (order_no is the key) when the order reaches the threshold, and
    records BELOW_THRESHOLD (or the audience refusal) otherwise. Safe to call again.
    Returns the rewards given (or given before) for this order."""
    if order.status != Order.Status.PAID:
        return []
    given = []
    for campaign in _spend_and_get_campaigns() if campaigns is None else campaigns:
        if not services.is_running(campaign, order.ordered_at):
            continue
        try:
            given.append(_spend_and_get(campaign, order))
        except CampaignRefused:
            continue
    return given


def orders_paid(orders: Iterable[Order]) -> int:
    """order_paid for many orders (an import), reading the campaigns once; returns gifts."""
    campaigns = _spend_and_get_campaigns()
    if not campaigns:
        return 0
    return sum(len(order_paid(order, campaigns=campaigns)) for order in orders)


# --- timed work -------------------------------------------------------------------------------


def timed_work() -> int:
    """Every minute (campaigns.tasks.tick): coupons past their end expire."""
    return coupons_expire()


# --- the landing page -------------------------------------------------------------------------


def _coupon_context(campaign: Campaign, contact: Contact) -> dict:
    coupons = (
        Coupon.objects.filter(batch__campaign=campaign, contact=contact)
        .select_related("batch")
        .order_by("-issued_at")
    )
    return {
        "coupons": list(coupons),
        "claimable": campaign.coupon_batches.exclude(claim_code="").exists(),
    }


def _flash_sale_context(campaign: Campaign, contact: Contact) -> dict:
    items = list(campaign.stock.order_by("pk"))
    claims = list(Claim.objects.filter(campaign=campaign, contact=contact).select_related("stock"))
    per_contact = campaign.rules.get("per_contact", 1)
    return {
        "items": items,
        "claims": claims,
        "per_contact": per_contact,
        "claims_left": max(per_contact - len(claims), 0),
        "units_left": sum(item.remaining for item in items),
    }


def _lottery_context(campaign: Campaign, contact: Contact) -> dict:
    draws = list(
        Claim.objects.filter(campaign=campaign, contact=contact)
        .select_related("stock")
        .order_by("-created_at")
    )
    allowed = campaign.rules.get("draws_per_contact", 1)
    return {
        "prizes": list(campaign.stock.filter(weight__gt=0).order_by("pk")),
        "draws": draws,
        "draws_left": max(allowed - len(draws), 0),
    }


def _spend_and_get_context(campaign: Campaign, contact: Contact) -> dict:
    rules = campaign.rules
    gift = rules.get("gift") or {}
    batch = None
    if "coupon_batch" in gift:
        batch = CouponBatch.objects.filter(pk=gift["coupon_batch"]).first()
    threshold = rules.get("threshold_fen", 0)
    orders = Order.objects.filter(contact=contact, status=Order.Status.PAID)
    if campaign.starts_at:
        orders = orders.filter(ordered_at__gte=campaign.starts_at)
    if campaign.ends_at:
        orders = orders.filter(ordered_at__lt=campaign.ends_at)
    best = orders.aggregate(best=Max("amount_fen"))["best"] or 0
    gifts = campaign.rewards.filter(contact=contact).aggregate(n=Count("pk"))["n"]
    return {
        "threshold_fen": threshold,
        "gift_points": gift.get("points"),
        "gift_batch": batch,
        "best_order_fen": best,
        "still_to_spend_fen": max(threshold - best, 0),
        "progress_percent": min(100, best * 100 // threshold) if threshold else 0,
        "gifts_received": gifts,
    }


_CONTEXTS = {
    Type.COUPON: _coupon_context,
    Type.FLASH_SALE: _flash_sale_context,
    Type.LOTTERY: _lottery_context,
    Type.SPEND_AND_GET: _spend_and_get_context,
}


def landing_context(campaign: Campaign, contact: Contact) -> dict:
    return _CONTEXTS[campaign.type](campaign, contact)


def _act_claim_code(campaign: Campaign, contact: Contact, data) -> str:
    coupon = coupon_claim(campaign, contact, str(data.get("code", "")))
    if coupon is None:
        return _("That code is not valid.")
    return _("Your coupon %(code)s (%(value)s off) is valid until %(date)s.") % {
        "code": coupon.code,
        "value": yuan(coupon.batch.value_fen),
        "date": timezone.localtime(coupon.expires_at).strftime("%Y-%m-%d"),
    }


def _act_flash_claim(campaign: Campaign, contact: Contact, data) -> str:
    items = campaign.stock.all()
    try:
        stock = items.get(pk=int(data["stock"])) if data.get("stock") else items.get()
    except (ValueError, Stock.DoesNotExist, Stock.MultipleObjectsReturned):
        return _("Choose an item.")
    held = Claim.objects.filter(campaign=campaign, contact=contact).count()
    claim = flash_claim(campaign, contact, stock, key=f"landing:{held + 1}")
    return _("You got %(item)s at %(price)s.") % {
        "item": claim.stock.name,
        "price": yuan(claim.stock.price_fen),
    }


def _act_draw(campaign: Campaign, contact: Contact, data) -> str:
    drawn = Claim.objects.filter(campaign=campaign, contact=contact).count()
    claim = lottery_draw(campaign, contact, key=f"landing:{drawn + 1}")
    if claim.stock is None:
        return _("No prize this time.")
    return _("You won %(prize)s!") % {"prize": claim.stock.name}


ACTIONS = {
    Type.COUPON: {"claim": _act_claim_code},
    Type.FLASH_SALE: {"claim": _act_flash_claim},
    Type.LOTTERY: {"draw": _act_draw},
    Type.SPEND_AND_GET: {},
}
