"""Promotion offers: coupons issued, claimed by code, redeemed once and expired; flash sales
that never oversell; lotteries with odds and stock; spend-and-get gifts once per order —
each with its abuse cases, and the races run on real PostgreSQL connections in parallel."""

import random
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from analytics.models import Event, EventType
from campaigns import offers
from campaigns.models import (
    Campaign,
    Claim,
    Coupon,
    CouponBatch,
    Order,
    Participation,
    Rejection,
    Reward,
    Stock,
)
from campaigns.services import CampaignRefused
from campaigns.tokens import landing_token
from campaigns.types import rules_check
from contacts.models import Contact
from tests.concurrency import race
from tests.factories import ContactFactory

Reason = Rejection.Reason
Type = Campaign.Type


def running(campaign_type: str, rules: dict | None = None, **fields) -> Campaign:
    """A campaign running now (the rate caps count rows stamped with the real clock)."""
    now = timezone.now()
    return Campaign.objects.create(
        name=fields.pop("name", "双十一"),
        type=campaign_type,
        state=Campaign.State.RUNNING,
        starts_at=now - timedelta(days=1),
        ends_at=now + timedelta(days=7),
        rules=rules or {},
        **fields,
    )


def batch_of(campaign: Campaign, **fields) -> CouponBatch:
    fields = {"name": "满100减20", "value_fen": 2000, "stock": 100, **fields}
    return CouponBatch.objects.create(campaign=campaign, **fields)


def order_of(contact: Contact, amount_fen: int, *, no: str, **fields) -> Order:
    fields.setdefault("ordered_at", timezone.now())
    return Order.objects.create(order_no=no, contact=contact, amount_fen=amount_fen, **fields)


def reasons(campaign: Campaign) -> list[str]:
    return sorted(Rejection.objects.filter(campaign=campaign).values_list("reason", flat=True))


def refused(call) -> str:
    with pytest.raises(CampaignRefused) as raised:
        call()
    return raised.value.reason


def english_client() -> Client:
    client = Client()
    client.cookies["django_language"] = "en"
    return client


def refusal_reasons(outcomes: list) -> list[str]:
    unexpected = [
        o for o in outcomes if isinstance(o, Exception) and not isinstance(o, CampaignRefused)
    ]
    assert not unexpected, unexpected
    return sorted(o.reason for o in outcomes if isinstance(o, CampaignRefused))


# --- rules ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("campaign_type", "rules", "rule"),
    [
        (Type.FLASH_SALE, {"per_contact": 0}, "per_contact"),
        (Type.FLASH_SALE, {"per_contact": "1"}, "per_contact"),
        (Type.FLASH_SALE, {"per_contect": 1}, "per_contect"),
        (Type.LOTTERY, {"miss_weight": 5}, "draws_per_contact"),
        (Type.LOTTERY, {"draws_per_contact": 1, "miss_weight": -1}, "miss_weight"),
        (Type.COUPON, {"max_attempts_per_minute": True}, "max_attempts_per_minute"),
        (Type.SPEND_AND_GET, {"gift": {"points": 10}}, "threshold_fen"),
        (Type.SPEND_AND_GET, {"threshold_fen": 9900}, "gift"),
        (Type.SPEND_AND_GET, {"threshold_fen": 9900, "gift": {"points": 0}}, "gift"),
        (Type.SPEND_AND_GET, {"threshold_fen": 9900, "gift": {"coupon_batch": 999999}}, "gift"),
        (Type.SPEND_AND_GET, {"threshold_fen": 9900, "gift": {"cash": 5}}, "gift"),
    ],
)
def test_bad_rules_are_refused_naming_the_rule(campaign_type, rules, rule):
    with pytest.raises(ValidationError) as raised:
        rules_check(campaign_type, rules)

    assert rule in raised.value.message_dict
    assert rule in raised.value.message_dict[rule][0]


@pytest.mark.django_db
def test_good_rules_pass():
    batch = batch_of(running(Type.COUPON))
    rules_check(Type.COUPON, {})
    rules_check(Type.FLASH_SALE, {"per_contact": 2, "max_attempts_per_minute": 5})
    rules_check(Type.LOTTERY, {"draws_per_contact": 3, "miss_weight": 0})
    rules_check(Type.SPEND_AND_GET, {"threshold_fen": 9900, "gift": {"points": 50}})
    rules_check(Type.SPEND_AND_GET, {"threshold_fen": 9900, "gift": {"coupon_batch": batch.pk}})


# --- coupons ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_issued_coupon_takes_one_from_stock_with_an_unguessable_code_and_an_end():
    batch = batch_of(running(Type.COUPON), stock=5, valid_days=7)
    buyer = ContactFactory()

    coupon = offers.coupon_issue(batch, buyer, key="welcome")
    again = offers.coupon_issue(batch, buyer, key="welcome")

    assert again.pk == coupon.pk  # a retry issues nothing more
    assert CouponBatch.objects.get(pk=batch.pk).stock == 4
    assert len(coupon.code) == 12 and set(coupon.code) <= set(offers.CODE_ALPHABET)
    assert coupon.expires_at - coupon.issued_at == timedelta(days=7)
    assert coupon.state == Coupon.State.ISSUED
    issued = Event.objects.get(type=EventType.COUPON_ISSUED)
    assert (issued.contact_id, issued.campaign_id, issued.amount) == (
        buyer.pk,
        batch.campaign_id,
        2000,
    )
    codes = {offers.coupon_issue(batch, ContactFactory(), key=f"k{n}").code for n in range(4)}
    assert len(codes | {coupon.code}) == 5


@pytest.mark.django_db
def test_a_customer_gets_no_more_coupons_than_the_batch_allows_each():
    batch = batch_of(running(Type.COUPON), per_contact=2)
    buyer = ContactFactory()
    offers.coupon_issue(batch, buyer, key="a")
    offers.coupon_issue(batch, buyer, key="b")

    assert refused(lambda: offers.coupon_issue(batch, buyer, key="c")) == Reason.LIMIT_REACHED
    assert Coupon.objects.filter(contact=buyer).count() == 2
    assert CouponBatch.objects.get(pk=batch.pk).stock == 98
    assert reasons(batch.campaign) == [Reason.LIMIT_REACHED]


@pytest.mark.django_db
def test_issuing_to_a_segment_counts_issued_and_refused_and_stops_at_zero_stock():
    batch = batch_of(running(Type.COUPON), stock=3)
    ContactFactory.create_batch(5)

    first = offers.coupons_issue_to(batch, Contact.objects.order_by("pk"))
    second = offers.coupons_issue_to(batch, Contact.objects.order_by("pk"))

    assert first == {"issued": 3, "already": 0, "refused": 2, "reasons": {Reason.SOLD_OUT: 2}}
    assert second == {"issued": 0, "already": 3, "refused": 2, "reasons": {Reason.SOLD_OUT: 2}}
    assert CouponBatch.objects.get(pk=batch.pk).stock == 0
    assert Coupon.objects.count() == 3
    assert reasons(batch.campaign) == [Reason.SOLD_OUT] * 4


@pytest.mark.django_db
def test_a_coupon_given_as_a_reward_is_recorded_at_its_face_value():
    campaign = running(Type.COUPON)
    batch = batch_of(campaign, value_fen=1500)
    winner = ContactFactory()

    coupon = offers.coupon_reward(batch, winner, key="top-inviter")
    offers.coupon_reward(batch, winner, key="top-inviter")

    given = Reward.objects.get()
    assert (given.kind, given.amount, given.coupon_id, given.contact_id) == (
        Reward.Kind.COUPON,
        1500,
        coupon.pk,
        winner.pk,
    )
    assert Coupon.objects.count() == 1


@pytest.mark.django_db
def test_a_coupon_reward_over_budget_is_refused_and_issues_nothing():
    campaign = running(Type.COUPON, budget_fen=2000)
    batch = batch_of(campaign, value_fen=1500, stock=10, per_contact=5)
    winner = ContactFactory()
    offers.coupon_reward(batch, winner, key="first")

    assert refused(lambda: offers.coupon_reward(batch, winner, key="second")) == Reason.BUDGET_SPENT

    assert Coupon.objects.count() == 1
    assert CouponBatch.objects.get(pk=batch.pk).stock == 9  # the refused coupon went back
    assert reasons(campaign) == [Reason.BUDGET_SPENT]


@pytest.mark.django_db
def test_a_customer_claims_a_coupon_by_typing_its_code_on_the_landing_page():
    campaign = running(Type.COUPON)
    batch_of(campaign, claim_code="DOUBLE11", value_fen=3000)
    buyer = ContactFactory()
    client, token = english_client(), landing_token(campaign.pk, buyer.pk)

    page = client.post(f"/c/{token}/claim/", {"code": " double11 "}, follow=True)

    coupon = Coupon.objects.get(contact=buyer)
    text = page.content.decode()
    assert "Your coupon" in text and coupon.code in text and "¥30.00" in text
    assert Participation.objects.filter(campaign=campaign, contact=buyer).exists()
    again = client.post(f"/c/{token}/claim/", {"code": "DOUBLE11"}, follow=True)
    assert "Limit per customer reached" in again.content.decode()
    assert Coupon.objects.filter(contact=buyer).count() == 1


@pytest.mark.django_db
def test_guessing_claim_codes_is_recorded_and_soon_refused():
    campaign = running(Type.COUPON)
    batch_of(campaign, claim_code="DOUBLE11")
    guesser = ContactFactory()
    client, token = english_client(), landing_token(campaign.pk, guesser.pk)

    for n in range(offers.WRONG_CODES_PER_HOUR):
        page = client.post(f"/c/{token}/claim/", {"code": f"GUESS{n}"}, follow=True)
        assert "That code is not valid." in page.content.decode()
    page = client.post(f"/c/{token}/claim/", {"code": "DOUBLE11"}, follow=True)

    assert "Too many attempts" in page.content.decode()
    assert not Coupon.objects.exists()
    assert reasons(campaign) == sorted(
        [Reason.BAD_TOKEN] * offers.WRONG_CODES_PER_HOUR + [Reason.RATE_LIMITED]
    )


@pytest.mark.django_db
def test_a_coupon_is_redeemed_once():
    batch = batch_of(running(Type.COUPON), min_spend_fen=10000)
    buyer = ContactFactory()
    coupon = offers.coupon_issue(batch, buyer, key="k")
    order = order_of(buyer, 12000, no="A-1")

    used = offers.coupon_redeem(coupon.code.lower(), order=order)

    assert (used.state, used.order_id) == (Coupon.State.REDEEMED, order.pk)
    assert Order.objects.get(pk=order.pk).used_coupon
    redeemed = Event.objects.get(type=EventType.COUPON_REDEEMED)
    assert (redeemed.contact_id, redeemed.amount) == (buyer.pk, 2000)
    assert refused(lambda: offers.coupon_redeem(coupon.code)) == Reason.ALREADY_USED
    assert reasons(batch.campaign) == [Reason.ALREADY_USED]
    assert Event.objects.filter(type=EventType.COUPON_REDEEMED).count() == 1


@pytest.mark.django_db
def test_a_coupon_is_refused_below_its_minimum_spend_and_for_someone_elses_order():
    batch = batch_of(running(Type.COUPON), min_spend_fen=10000)
    buyer = ContactFactory()
    coupon = offers.coupon_issue(batch, buyer, key="k")

    small = order_of(buyer, 9999, no="A-small")
    assert refused(lambda: offers.coupon_redeem(coupon.code, order=small)) == Reason.BELOW_THRESHOLD
    other = order_of(ContactFactory(), 20000, no="B-1")
    with pytest.raises(ValidationError) as raised:
        offers.coupon_redeem(coupon.code, order=other)
    assert "order" in raised.value.message_dict
    with pytest.raises(ValidationError) as raised:
        offers.coupon_redeem("NOSUCHCODE00")
    assert "code" in raised.value.message_dict
    assert Coupon.objects.get(pk=coupon.pk).state == Coupon.State.ISSUED


@pytest.mark.django_db
def test_an_expired_coupon_is_refused_and_the_tick_marks_it_expired():
    batch = batch_of(running(Type.COUPON), valid_days=1)
    late = offers.coupon_issue(
        batch, ContactFactory(), key="old", now=timezone.now() - timedelta(days=2)
    )
    fresh = offers.coupon_issue(batch, ContactFactory(), key="new")

    assert refused(lambda: offers.coupon_redeem(late.code)) == Reason.EXPIRED
    assert offers.timed_work() == 1
    assert offers.timed_work() == 0
    assert Coupon.objects.get(pk=late.pk).state == Coupon.State.EXPIRED
    assert Coupon.objects.get(pk=fresh.pk).state == Coupon.State.ISSUED
    assert refused(lambda: offers.coupon_redeem(late.code)) == Reason.EXPIRED


@pytest.mark.django_db(transaction=True)
def test_thirty_customers_racing_for_ten_coupons_get_exactly_ten():
    batch = batch_of(running(Type.COUPON), stock=10)
    people = ContactFactory.create_batch(30)

    outcomes = race(30, lambda n: offers.coupon_issue(batch, people[n], key="race"))

    assert sum(isinstance(o, Coupon) for o in outcomes) == 10
    assert refusal_reasons(outcomes) == [Reason.SOLD_OUT] * 20
    assert CouponBatch.objects.get(pk=batch.pk).stock == 0
    assert Coupon.objects.count() == 10
    assert reasons(batch.campaign) == [Reason.SOLD_OUT] * 20


@pytest.mark.django_db(transaction=True)
def test_one_customer_asking_twenty_times_at_once_gets_the_per_customer_limit():
    batch = batch_of(running(Type.COUPON), stock=50, per_contact=2)
    greedy = ContactFactory()

    outcomes = race(20, lambda n: offers.coupon_issue(batch, greedy, key=f"tap{n}"))

    assert sum(isinstance(o, Coupon) for o in outcomes) == 2
    assert refusal_reasons(outcomes) == [Reason.LIMIT_REACHED] * 18
    assert CouponBatch.objects.get(pk=batch.pk).stock == 48


@pytest.mark.django_db(transaction=True)
def test_a_coupon_redeemed_ten_times_at_once_is_used_once():
    batch = batch_of(running(Type.COUPON))
    coupon = offers.coupon_issue(batch, ContactFactory(), key="k")

    outcomes = race(10, lambda n: offers.coupon_redeem(coupon.code))

    assert sum(isinstance(o, Coupon) for o in outcomes) == 1
    assert refusal_reasons(outcomes) == [Reason.ALREADY_USED] * 9
    assert Event.objects.filter(type=EventType.COUPON_REDEEMED).count() == 1


# --- flash sale -------------------------------------------------------------------------------


def flash_sale(units: int = 10, **rules) -> tuple[Campaign, Stock]:
    campaign = running(Type.FLASH_SALE, {"per_contact": 1, **rules})
    stock = Stock.objects.create(
        campaign=campaign, name="茅台 500ml", price_fen=149900, total=units, remaining=units
    )
    return campaign, stock


@pytest.mark.django_db
def test_a_flash_sale_claim_takes_one_unit_and_completes_the_customer():
    campaign, stock = flash_sale(10)
    buyer = ContactFactory()

    claim = offers.flash_claim(campaign, buyer, stock, key="k")
    again = offers.flash_claim(campaign, buyer, stock, key="k")

    assert again.pk == claim.pk
    assert Stock.objects.get(pk=stock.pk).remaining == 9
    taking_part = Participation.objects.get(campaign=campaign, contact=buyer)
    assert taking_part.state == Participation.State.COMPLETED
    assert Event.objects.filter(type=EventType.CAMPAIGN_COMPLETED, contact_id=buyer.pk).count() == 1


@pytest.mark.django_db
def test_a_second_flash_sale_claim_is_over_the_limit_and_a_late_one_sold_out():
    campaign, stock = flash_sale(1)
    first, second = ContactFactory(), ContactFactory()
    offers.flash_claim(campaign, first, stock, key="1")

    assert (
        refused(lambda: offers.flash_claim(campaign, first, stock, key="2")) == Reason.LIMIT_REACHED
    )
    assert refused(lambda: offers.flash_claim(campaign, second, stock, key="1")) == Reason.SOLD_OUT
    assert Stock.objects.get(pk=stock.pk).remaining == 0
    assert reasons(campaign) == sorted([Reason.LIMIT_REACHED, Reason.SOLD_OUT])


@pytest.mark.django_db
def test_hammering_the_claim_button_is_rate_limited():
    campaign, stock = flash_sale(0, max_attempts_per_minute=3)
    hammer = ContactFactory()

    outcomes = [
        refused(lambda n=n: offers.flash_claim(campaign, hammer, stock, key=f"{n}"))
        for n in range(5)
    ]

    assert outcomes == [Reason.SOLD_OUT] * 3 + [Reason.RATE_LIMITED] * 2


@pytest.mark.django_db
def test_a_flash_sale_that_ended_refuses_even_past_participants():
    campaign, stock = flash_sale(10, per_contact=2)
    buyer = ContactFactory()
    offers.flash_claim(campaign, buyer, stock, key="1")
    Campaign.objects.filter(pk=campaign.pk).update(state=Campaign.State.ENDED)
    campaign.refresh_from_db()

    assert (
        refused(lambda: offers.flash_claim(campaign, buyer, stock, key="2")) == Reason.NOT_RUNNING
    )
    assert Stock.objects.get(pk=stock.pk).remaining == 9


@pytest.mark.django_db
def test_an_item_of_another_campaign_cannot_be_claimed():
    campaign, _stock = flash_sale(10)
    _other, elsewhere = flash_sale(10)

    with pytest.raises(ValidationError) as raised:
        offers.flash_claim(campaign, ContactFactory(), elsewhere, key="k")

    assert "stock" in raised.value.message_dict


@pytest.mark.django_db
def test_a_customer_grabs_a_flash_sale_item_from_the_landing_page():
    campaign, stock = flash_sale(2)
    buyer = ContactFactory()
    client, token = english_client(), landing_token(campaign.pk, buyer.pk)

    before = client.get(f"/c/{token}/").content.decode()
    page = client.post(f"/c/{token}/claim/", {"stock": stock.pk}, follow=True).content.decode()
    second = client.post(f"/c/{token}/claim/", {"stock": stock.pk}, follow=True).content.decode()

    assert "2 of 2 left" in before and "¥1,499.00" in before
    assert "You got 茅台 500ml at ¥1,499.00." in page and "1 of 2 left" in page
    assert "Limit per customer reached" in second
    assert Claim.objects.filter(contact=buyer).count() == 1


@pytest.mark.django_db(transaction=True)
def test_fifty_customers_racing_for_ten_units_never_oversell():
    campaign, stock = flash_sale(10)
    people = ContactFactory.create_batch(50)

    outcomes = race(50, lambda n: offers.flash_claim(campaign, people[n], stock, key="grab"))

    assert sum(isinstance(o, Claim) for o in outcomes) == 10
    assert refusal_reasons(outcomes) == [Reason.SOLD_OUT] * 40
    assert Stock.objects.get(pk=stock.pk).remaining == 0
    assert Claim.objects.filter(stock=stock).count() == 10
    assert Claim.objects.values("contact").distinct().count() == 10
    assert reasons(campaign) == [Reason.SOLD_OUT] * 40


@pytest.mark.django_db(transaction=True)
def test_one_customer_tapping_twenty_times_at_once_gets_one_unit():
    campaign, stock = flash_sale(10)
    buyer = ContactFactory()

    outcomes = race(20, lambda n: offers.flash_claim(campaign, buyer, stock, key=f"tap{n}"))

    assert sum(isinstance(o, Claim) for o in outcomes) == 1
    assert refusal_reasons(outcomes) == [Reason.LIMIT_REACHED] * 19
    assert Stock.objects.get(pk=stock.pk).remaining == 9


# --- lottery ----------------------------------------------------------------------------------


def lottery(*prizes: tuple[str, int, int], **rules) -> Campaign:
    """A running lottery with prizes (name, units, weight)."""
    campaign = running(Type.LOTTERY, {"draws_per_contact": 1, **rules})
    for name, units, weight in prizes:
        Stock.objects.create(
            campaign=campaign,
            name=name,
            price_fen=5000,
            total=units,
            remaining=units,
            weight=weight,
        )
    return campaign


@pytest.mark.django_db
def test_a_lottery_prize_is_taken_from_stock_and_given_as_a_gift():
    campaign = lottery(("保温杯", 3, 1), miss_weight=0)
    winner = ContactFactory()

    claim = offers.lottery_draw(campaign, winner, key="1", rng=random.Random(7))

    assert claim.stock.name == "保温杯"
    assert Stock.objects.get(campaign=campaign).remaining == 2
    gift = Reward.objects.get()
    assert (gift.kind, gift.amount, gift.description, gift.contact_id) == (
        Reward.Kind.GIFT,
        5000,
        "保温杯",
        winner.pk,
    )
    assert Participation.objects.get(contact=winner).state == Participation.State.REWARDED


@pytest.mark.django_db
def test_lottery_odds_follow_the_weights():
    campaign = lottery(
        ("一等奖", 1000, 1), ("二等奖", 1000, 3), draws_per_contact=1000, miss_weight=6
    )
    player = ContactFactory()

    for n in range(1000):
        offers.lottery_draw(campaign, player, key=str(n))

    won = dict(Stock.objects.filter(campaign=campaign).values_list("name", "remaining"))
    first, second = 1000 - won["一等奖"], 1000 - won["二等奖"]
    misses = Claim.objects.filter(campaign=campaign, stock__isnull=True).count()
    # Expected 100 / 300 / 600; bounds at about five standard deviations.
    assert 50 <= first <= 150, first
    assert 225 <= second <= 375, second
    assert 520 <= misses <= 680, misses
    assert first + second + misses == 1000
    assert Reward.objects.filter(campaign=campaign).count() == first + second


@pytest.mark.django_db
def test_lottery_draws_are_limited_per_customer_and_stop_when_prizes_run_out():
    campaign = lottery(("红包", 1, 1), draws_per_contact=2, miss_weight=0)
    player, late = ContactFactory(), ContactFactory()

    offers.lottery_draw(campaign, player, key="1")

    assert refused(lambda: offers.lottery_draw(campaign, player, key="2")) == Reason.SOLD_OUT
    assert refused(lambda: offers.lottery_draw(campaign, late, key="1")) == Reason.SOLD_OUT
    Stock.objects.filter(campaign=campaign).update(total=5, remaining=4)
    offers.lottery_draw(campaign, player, key="3")
    assert refused(lambda: offers.lottery_draw(campaign, player, key="4")) == Reason.LIMIT_REACHED
    assert Claim.objects.filter(contact=player).count() == 2


@pytest.mark.django_db
def test_a_prize_taken_by_someone_else_meanwhile_is_no_prize():
    campaign = lottery(("iPhone", 1, 1), miss_weight=0)
    iphone = Stock.objects.get(campaign=campaign)

    class SomeoneWinsFirst(random.Random):
        """Picks the iPhone, but another draw takes the last one in the same instant."""

        def choices(self, population, weights=None, **kwargs):
            Stock.objects.filter(pk=iphone.pk).update(remaining=0)
            return [population[0]]

    claim = offers.lottery_draw(campaign, ContactFactory(), key="1", rng=SomeoneWinsFirst())

    assert claim.stock is None
    assert Stock.objects.get(pk=iphone.pk).remaining == 0
    assert not Reward.objects.exists()


@pytest.mark.django_db
def test_a_lottery_prize_over_budget_is_refused_and_keeps_its_unit():
    campaign = lottery(("礼盒", 5, 1), miss_weight=0, draws_per_contact=3)
    Campaign.objects.filter(pk=campaign.pk).update(budget_fen=6000)
    campaign.refresh_from_db()
    player = ContactFactory()
    offers.lottery_draw(campaign, player, key="1")

    assert refused(lambda: offers.lottery_draw(campaign, player, key="2")) == Reason.BUDGET_SPENT
    assert Stock.objects.get(campaign=campaign).remaining == 4
    assert Claim.objects.filter(contact=player).count() == 1  # the refused draw is not spent


@pytest.mark.django_db
def test_a_customer_draws_from_the_landing_page():
    campaign = lottery(("保温杯", 5, 1), miss_weight=0)
    player = ContactFactory()
    client, token = english_client(), landing_token(campaign.pk, player.pk)

    page = client.post(f"/c/{token}/draw/", follow=True).content.decode()
    again = client.post(f"/c/{token}/draw/", follow=True).content.decode()

    assert "You won 保温杯!" in page and "Won 保温杯" in page and "0 draws left." in page
    assert "Limit per customer reached" in again


@pytest.mark.django_db(transaction=True)
def test_thirty_concurrent_draws_never_give_more_prizes_than_there_are():
    campaign = lottery(("一等奖", 2, 1), ("二等奖", 3, 1), miss_weight=1)
    people = ContactFactory.create_batch(30)

    outcomes = race(30, lambda n: offers.lottery_draw(campaign, people[n], key="draw"))

    claims = [o for o in outcomes if isinstance(o, Claim)]
    won = [c for c in claims if c.stock_id is not None]
    assert set(refusal_reasons(outcomes)) <= {Reason.SOLD_OUT}
    assert len(claims) + len(refusal_reasons(outcomes)) == 30
    prizes = Stock.objects.filter(campaign=campaign)
    assert all(p.remaining >= 0 for p in prizes)
    for prize in prizes:
        assert Claim.objects.filter(stock=prize).count() == prize.total - prize.remaining
    assert Reward.objects.filter(campaign=campaign).count() == len(won) <= 5


# --- spend and get ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_order_over_the_threshold_gets_the_points_once():
    campaign = running(Type.SPEND_AND_GET, {"threshold_fen": 19900, "gift": {"points": 200}})
    buyer = ContactFactory()
    order = order_of(buyer, 19900, no="SG-1")

    given = offers.order_paid(order)
    offers.order_paid(order)

    assert [(r.kind, r.amount) for r in given] == [(Reward.Kind.POINTS, 200)]
    assert Contact.objects.get(pk=buyer.pk).points_balance == 200
    assert Reward.objects.filter(campaign=campaign).count() == 1
    assert Participation.objects.get(contact=buyer).state == Participation.State.REWARDED
    offers.order_paid(order_of(buyer, 30000, no="SG-2"))
    assert Contact.objects.get(pk=buyer.pk).points_balance == 400  # each order once


@pytest.mark.django_db
def test_an_order_below_the_threshold_gets_nothing_and_says_why():
    campaign = running(Type.SPEND_AND_GET, {"threshold_fen": 19900, "gift": {"points": 200}})
    buyer = ContactFactory()

    assert offers.order_paid(order_of(buyer, 19899, no="SG-1")) == []

    assert reasons(campaign) == [Reason.BELOW_THRESHOLD]
    assert "SG-1" in Rejection.objects.get().detail
    assert not Reward.objects.exists()
    assert Contact.objects.get(pk=buyer.pk).points_balance == 0


@pytest.mark.django_db
def test_spend_and_get_can_give_a_coupon():
    coupons = running(Type.COUPON)
    batch = batch_of(coupons, value_fen=1000)
    campaign = running(
        Type.SPEND_AND_GET, {"threshold_fen": 10000, "gift": {"coupon_batch": batch.pk}}
    )
    buyer = ContactFactory()

    offers.orders_paid([order_of(buyer, 12000, no="SG-1")])

    coupon = Coupon.objects.get(contact=buyer)
    gift = Reward.objects.get()
    assert (gift.campaign_id, gift.kind, gift.amount, gift.coupon_id) == (
        campaign.pk,
        Reward.Kind.COUPON,
        1000,
        coupon.pk,
    )
    assert CouponBatch.objects.get(pk=batch.pk).stock == 99


@pytest.mark.django_db
def test_refunded_orders_and_orders_outside_the_campaign_get_nothing():
    campaign = running(Type.SPEND_AND_GET, {"threshold_fen": 100, "gift": {"points": 5}})
    buyer = ContactFactory()

    refunded = order_of(buyer, 500, no="R-1", status=Order.Status.REFUNDED)
    before = order_of(buyer, 500, no="R-2", ordered_at=campaign.starts_at - timedelta(hours=1))

    assert offers.order_paid(refunded) == [] and offers.order_paid(before) == []
    assert not Reward.objects.exists()


@pytest.mark.django_db
def test_the_spend_and_get_page_shows_the_way_to_the_threshold():
    campaign = running(Type.SPEND_AND_GET, {"threshold_fen": 20000, "gift": {"points": 100}})
    buyer = ContactFactory()
    order_of(buyer, 15000, no="P-1")
    client = english_client()

    page = client.get(f"/c/{landing_token(campaign.pk, buyer.pk)}/").content.decode()

    assert "Spend ¥200.00 in one order and get 100 points." in page
    assert "Your largest order so far: ¥150.00; ¥50.00 more in one order to qualify." in page
    assert 'value="75"' in page


@pytest.mark.django_db
def test_the_coupon_page_lists_the_customers_coupons():
    campaign = running(Type.COUPON)
    batch = batch_of(campaign, claim_code="HELLO")
    buyer = ContactFactory()
    coupon = offers.coupon_issue(batch, buyer, key="k")

    page = english_client().get(f"/c/{landing_token(campaign.pk, buyer.pk)}/").content.decode()

    assert coupon.code in page and "¥20.00" in page and "Claim coupon" in page
    assert "HELLO" not in page  # the public code is typed, never shown
