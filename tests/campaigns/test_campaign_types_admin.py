"""Each campaign type's own section on the detail page and in the API: coupon batches (any
campaign), stock, contest entries and the draw, group-buys, commissions, invites, streaks.
Managers change; operators and analysts read (an operator: their own customers)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from analytics.metrics import SHANGHAI
from campaigns.models import (
    Campaign,
    CheckIn,
    Claim,
    Commission,
    Coupon,
    CouponBatch,
    Entry,
    GroupBuy,
    GroupBuyMember,
    Invite,
    Order,
    Participation,
    Rejection,
    Reward,
    Stock,
)
from contacts.models import ContactTag, Tag, TagGroup
from scrm.models import Role, User
from tests.campaigns.test_campaign_pages import login, running
from tests.factories import ContactFactory, StaffFactory
from tests.sop.builders import customer

pytestmark = pytest.mark.django_db
Type = Campaign.Type


@pytest.fixture
def manager() -> User:
    return User.objects.create_user("boss", role=Role.ADMIN)


@pytest.fixture
def operator() -> User:
    user = User.objects.create_user("xiaowang", role=Role.OPERATOR)
    StaffFactory(name="小王", user=user)
    return user


@pytest.fixture
def analyst() -> User:
    return User.objects.create_user("laoli", role=Role.ANALYST)


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def detail(client, campaign: Campaign):
    response = client.get(f"/campaigns/{campaign.pk}/")
    assert response.status_code == 200
    return response


def batch_of(campaign: Campaign, **fields) -> CouponBatch:
    fields = {"name": "满100减10", "value_fen": 1000, "stock": 10, **fields}
    return CouponBatch.objects.create(campaign=campaign, **fields)


def coupon_of(batch: CouponBatch, state: str = Coupon.State.ISSUED, **fields) -> Coupon:
    now = timezone.now()
    contact = fields.pop("contact", None) or ContactFactory()
    number = Coupon.objects.count() + 1
    return Coupon.objects.create(
        batch=batch,
        contact=contact,
        code=fields.pop("code", f"CODE{number:08d}"),
        state=state,
        issued_at=now,
        expires_at=now + timedelta(days=30),
        key=f"test:{number}",
        **fields,
    )


def tagged(tag: Tag, count: int) -> list:
    people = [ContactFactory() for _ in range(count)]
    for person in people:
        ContactTag.objects.create(contact=person, tag=tag)
    return people


def a_tag() -> Tag:
    return Tag.objects.create(group=TagGroup.objects.create(name="兴趣"), name="咖啡")


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# --- coupons (any campaign) -------------------------------------------------------------------


@pytest.mark.parametrize("campaign_type", [Type.COUPON, Type.REFERRAL])
def test_any_campaign_lists_its_coupon_batches_with_counts_and_stock_left(campaign_type, operator):
    campaign = running(type=campaign_type)
    batch = batch_of(campaign, stock=7, value_fen=1050)
    coupon_of(batch)
    coupon_of(batch)
    coupon_of(batch, Coupon.State.REDEEMED)
    coupon_of(batch, Coupon.State.EXPIRED)
    response = detail(login(operator), campaign)
    html = response.content.decode()
    [row] = response.context["batches"]
    assert (row.issued, row.redeemed, row.expired, row.batch.stock) == (2, 1, 1, 7)
    assert f'data-batch="{batch.pk}"' in html and "¥10.50" in html
    assert "Create the batch" not in html  # an operator reads only


def test_a_manager_creates_a_batch_in_yuan_stored_in_fen(manager):
    campaign = running(type=Type.COUPON)
    response = login(manager).post(
        f"/campaigns/{campaign.pk}/coupon-batches/",
        {
            "batch-name": "新人券",
            "batch-value_yuan": "10.5",
            "batch-min_spend_yuan": "99",
            "batch-stock": "100",
            "batch-per_contact": "1",
            "batch-valid_days": "7",
            "batch-claim_code": "new-2026",
        },
        follow=True,
    )
    assert response.status_code == 200
    batch = CouponBatch.objects.get(campaign=campaign)
    assert (batch.value_fen, batch.min_spend_fen, batch.stock) == (1050, 9900, 100)
    assert batch.valid_days == 7 and batch.claim_code == "NEW2026"
    assert "Coupon batch “新人券” created." in messages_of(response)


def test_bad_batch_input_is_named_beside_its_fields(manager):
    campaign = running(type=Type.COUPON)
    batch_of(campaign, claim_code="SPRING")
    response = login(manager).post(
        f"/campaigns/{campaign.pk}/coupon-batches/",
        {
            "batch-name": "",
            "batch-value_yuan": "0",
            "batch-min_spend_yuan": "-1",
            "batch-stock": "0",
            "batch-per_contact": "1",
            "batch-valid_days": "30",
            "batch-claim_code": "spring",
        },
    )
    assert response.status_code == 400
    errors = response.context["batch_form"].errors
    assert set(errors) == {"name", "value_yuan", "min_spend_yuan", "stock", "claim_code"}
    html = response.content.decode()
    assert 'id="id_batch-value_yuan_error"' in html and 'id="id_batch-stock_error"' in html
    assert CouponBatch.objects.filter(campaign=campaign).count() == 1


def test_issuing_to_customers_with_a_tag_counts_issued_already_and_refused(manager):
    campaign = running(type=Type.COUPON)
    batch = batch_of(campaign, stock=2)
    tag = a_tag()
    people = tagged(tag, 3)
    ContactFactory()  # untagged: not in the segment
    client = login(manager)
    form = {"issue-batch": batch.pk, "issue-segment": "tag", "issue-tag": tag.pk}

    response = client.post(f"/campaigns/{campaign.pk}/coupons/issue/", form, follow=True)
    assert messages_of(response) == ["Issued 2; 0 already had one; 1 refused. (Sold out: 1)"]
    assert set(Coupon.objects.values_list("contact", flat=True)) < {p.pk for p in people}
    response = client.post(f"/campaigns/{campaign.pk}/coupons/issue/", form, follow=True)
    assert messages_of(response) == ["Issued 0; 2 already had one; 1 refused. (Sold out: 1)"]
    assert Coupon.objects.count() == 2


def test_issuing_to_a_tag_segment_without_a_tag_names_the_tag(manager):
    campaign = running(type=Type.COUPON)
    batch = batch_of(campaign)
    response = login(manager).post(
        f"/campaigns/{campaign.pk}/coupons/issue/",
        {"issue-batch": batch.pk, "issue-segment": "tag"},
    )
    assert response.status_code == 400
    assert list(response.context["issue_form"].errors) == ["tag"]
    assert not Coupon.objects.exists()


def test_a_coupon_is_redeemed_once_and_the_second_time_shows_the_refusal(manager):
    campaign = running(type=Type.COUPON)
    batch = batch_of(campaign, min_spend_fen=5000)
    coupon = coupon_of(batch, code="ABCDEFGH2345")
    order = Order.objects.create(
        order_no="SO-1", contact=coupon.contact, amount_fen=8000, ordered_at=timezone.now()
    )
    client = login(manager)
    form = {"redeem-code": "abcd-efgh-2345", "redeem-order_no": "SO-1"}

    response = client.post(f"/campaigns/{campaign.pk}/coupons/redeem/", form, follow=True)
    assert messages_of(response) == ["Coupon ABCDEFGH2345 redeemed on order SO-1."]
    coupon.refresh_from_db()
    assert coupon.state == Coupon.State.REDEEMED and coupon.order == order

    response = client.post(f"/campaigns/{campaign.pk}/coupons/redeem/", form)
    assert response.status_code == 400
    assert response.context["redeem_form"].errors["code"] == ["Refused: Already used."]
    assert 'id="id_redeem-code_error"' in response.content.decode()
    assert Rejection.objects.filter(campaign=campaign, reason="already_used").count() == 1


def test_redeeming_an_unknown_code_or_order_names_the_field(manager):
    campaign = running(type=Type.COUPON)
    other = batch_of(running(name="别的活动", type=Type.COUPON))
    coupon_of(other, code="OTHERCAMPAIGN")
    batch_of(campaign)
    response = login(manager).post(
        f"/campaigns/{campaign.pk}/coupons/redeem/",
        {"redeem-code": "OTHERCAMPAIGN", "redeem-order_no": "NOPE"},
    )
    assert response.status_code == 400
    errors = response.context["redeem_form"].errors
    assert errors["code"] == ["No coupon of this campaign has this code."]
    assert errors["order_no"] == ["No order has this number."]
    assert not Coupon.objects.filter(state=Coupon.State.REDEEMED).exists()


# --- stock: flash sale and lottery ------------------------------------------------------------


def test_a_flash_sale_shows_its_items_with_remaining_and_claims(operator):
    campaign = running(type=Type.FLASH_SALE)
    item = Stock.objects.create(
        campaign=campaign, name="茅台", price_fen=99_900, total=10, remaining=8
    )
    for _ in range(2):
        Claim.objects.create(
            campaign=campaign, stock=item, contact=ContactFactory(), key=f"k{Claim.objects.count()}"
        )
    response = detail(login(operator), campaign)
    html = response.content.decode()
    assert [(s.name, s.remaining, s.total, s.claimed) for s in response.context["stock"]] == [
        ("茅台", 8, 10, 2)
    ]
    assert f'data-stock-item="{item.pk}"' in html and "8 / 10" in html and "¥999.00" in html


def test_a_manager_adds_a_lottery_prize_with_its_odds(manager):
    campaign = running(type=Type.LOTTERY, rules={"draws_per_contact": 1})
    client = login(manager)
    response = client.post(
        f"/campaigns/{campaign.pk}/stock/",
        {
            "stock-name": "咖啡机",
            "stock-price_yuan": "399",
            "stock-total": "3",
            "stock-weight": "0",
        },
    )
    assert response.status_code == 400
    assert list(response.context["stock_form"].errors) == ["weight"]
    assert not Stock.objects.exists()

    response = client.post(
        f"/campaigns/{campaign.pk}/stock/",
        {
            "stock-name": "咖啡机",
            "stock-price_yuan": "399",
            "stock-total": "3",
            "stock-weight": "5",
        },
        follow=True,
    )
    item = Stock.objects.get(campaign=campaign)
    assert (item.price_fen, item.total, item.remaining, item.weight) == (39_900, 3, 3, 5)
    assert "“咖啡机” added: 3 units." in messages_of(response)
    assert "3 / 3" in response.content.decode()


def test_a_coupon_campaign_has_no_stock_to_add_to(manager):
    campaign = running(type=Type.COUPON)
    response = login(manager).post(
        f"/campaigns/{campaign.pk}/stock/", {"stock-name": "x", "stock-total": "1"}
    )
    assert response.status_code == 403
    assert not Stock.objects.exists()


# --- contest ----------------------------------------------------------------------------------


def contest(*, ended: bool = False) -> tuple[Campaign, list[Entry]]:
    """A contest with three entries: 夜色 (9 votes) leads 海边 (5) and 晨光 (3)."""
    campaign = running(type=Type.CONTEST, rules={"draw_winners": 1, "reward": {"points": 50}})
    if ended:
        campaign.state, campaign.ends_at = Campaign.State.ENDED, timezone.now() - timedelta(hours=1)
        campaign.save(update_fields=["state", "ends_at"])
    entries = [
        Entry.objects.create(campaign=campaign, contact=ContactFactory(), title=title, votes=votes)
        for title, votes in (("晨光", 3), ("夜色", 9), ("海边", 5))
    ]
    return campaign, entries


def test_contest_entries_are_ranked_by_votes_and_the_draw_waits_for_the_end(manager):
    campaign, entries = contest()
    client = login(manager)
    response = detail(client, campaign)
    assert [(r.rank, r.entry.title) for r in response.context["entries"]] == [
        (1, "夜色"),
        (2, "海边"),
        (3, "晨光"),
    ]
    assert "Draw the winners" not in response.content.decode()
    response = client.post(f"/campaigns/{campaign.pk}/draw/")
    assert response.status_code == 400
    assert "The draw comes after the contest ends." in response.content.decode()
    assert not Reward.objects.exists()


def test_the_draw_after_the_end_rewards_the_top_entry_once(manager):
    campaign, entries = contest(ended=True)
    client = login(manager)
    assert "Draw the winners" in detail(client, campaign).content.decode()

    response = client.post(f"/campaigns/{campaign.pk}/draw/", follow=True)
    top = entries[1]
    assert messages_of(response) == [f"Winners: {top.contact.name}."]
    assert [r.entry.pk for r in response.context["entries"] if r.won] == [top.pk]
    client.post(f"/campaigns/{campaign.pk}/draw/")
    reward = Reward.objects.get(campaign=campaign)
    assert reward.contact == top.contact and reward.amount == 50


# --- group-buy, referral, invite task, check-in ------------------------------------------------


def test_group_buys_show_state_seats_and_deadline(operator):
    campaign = running(type=Type.GROUP_BUY, rules={"size": 3, "hours": 24, "price_fen": 9900})
    leader = customer(operator.staff, name="团长")
    deadline = timezone.now() + timedelta(hours=5)
    group_buy = GroupBuy.objects.create(campaign=campaign, leader=leader, size=3, deadline=deadline)
    GroupBuyMember.objects.create(group_buy=group_buy, contact=leader)
    GroupBuyMember.objects.create(group_buy=group_buy, contact=ContactFactory())
    GroupBuyMember.objects.create(
        group_buy=group_buy, contact=ContactFactory(), released_at=timezone.now()
    )
    theirs = GroupBuy.objects.create(
        campaign=campaign, leader=customer(StaffFactory()), size=3, deadline=deadline
    )
    response = detail(login(operator), campaign)
    html = response.content.decode()
    assert [g.pk for g in response.context["group_buys"]] == [group_buy.pk]
    assert f'data-group-buy="{group_buy.pk}"' in html and "2 / 3" in html
    assert f'data-group-buy="{theirs.pk}"' not in html
    assert timezone.localtime(deadline, SHANGHAI).strftime("%Y-%m-%d %H:%M") in html


def referral_case() -> tuple[Campaign, list]:
    campaign = running(type=Type.REFERRAL, rules={"levels": [1000, 500]})
    first, second, buyer = (
        ContactFactory(name="一级"),
        ContactFactory(name="二级"),
        ContactFactory(),
    )
    for number, amount in ((1, 10_000), (2, 20_000)):
        order = Order.objects.create(
            order_no=f"R-{number}", contact=buyer, amount_fen=amount, ordered_at=timezone.now()
        )
        Commission.objects.create(
            campaign=campaign, order=order, beneficiary=first, level=1, amount_fen=amount // 10
        )
        Commission.objects.create(
            campaign=campaign, order=order, beneficiary=second, level=2, amount_fen=amount // 20
        )
    return campaign, [first, second]


def test_the_referral_ledger_and_totals_per_beneficiary(analyst):
    campaign, (first, second) = referral_case()
    response = detail(login(analyst), campaign)
    totals = [
        (t["beneficiary"], t["orders"], t["amount_fen"])
        for t in response.context["commission_totals"]
    ]
    assert totals == [(first.pk, 2, 3000), (second.pk, 2, 1500)]
    html = response.content.decode()
    assert "¥30.00" in html and "¥15.00" in html and "R-2" in html
    assert len(response.context["commissions"]) == 4


def test_invites_by_state_with_reasons_and_each_inviters_progress(manager):
    campaign = running(
        type=Type.INVITE_TASK,
        rules={"invites_needed": 3, "window_hours": 24, "reward": {"points": 5}},
    )
    inviter = ContactFactory(name="邀请人")
    Participation.objects.create(campaign=campaign, contact=inviter, joined_at=timezone.now())
    for state, reason in (
        ("counted", ""),
        ("counted", ""),
        ("pending", ""),
        ("rejected", "left_in_window"),
    ):
        Invite.objects.create(
            campaign=campaign,
            inviter=inviter,
            invitee=ContactFactory(),
            state=state,
            reason=reason,
            invited_at=timezone.now(),
        )
    response = detail(login(manager), campaign)
    counts = [(c.state, c.reason, c.count) for c in response.context["invite_counts"]]
    assert counts == [("counted", "", 2), ("pending", "", 1), ("rejected", "left_in_window", 1)]
    [row] = response.context["invite_progress"]
    assert (row.contact, row.counted, row.pending, row.rejected) == (inviter, 2, 1, 1)
    html = response.content.decode()
    assert "Left or deleted staff within the window" in html and "2 / 3" in html


def test_checkin_streaks_rank_the_longest_current_streak_first(operator):
    campaign = running(type=Type.CHECKIN, rules={"days_needed": 7, "reward": {"points": 5}})
    today = timezone.localtime(timezone.now(), SHANGHAI).date()
    steady, lapsed = customer(operator.staff, name="坚持"), customer(operator.staff, name="断了")
    hidden = customer(StaffFactory(), name="别人的")
    for back in range(4):  # today and the 3 days before, one a makeup
        CheckIn.objects.create(
            campaign=campaign, contact=steady, day=today - timedelta(back), makeup=back == 2
        )
    for back in (3, 4, 5, 6, 7):  # a longer run that broke 3 days ago
        CheckIn.objects.create(campaign=campaign, contact=lapsed, day=today - timedelta(back))
    CheckIn.objects.create(campaign=campaign, contact=hidden, day=today)
    response = detail(login(operator), campaign)
    rows = [(r.contact, r.streak, r.days, r.makeups) for r in response.context["streaks"]]
    assert rows == [(steady, 4, 4, 1), (lapsed, 0, 5, 0)]
    assert "4 / 7" in response.content.decode()


def test_a_type_without_a_section_shows_only_the_coupons(manager):
    campaign = running(type=Type.POINTS)
    response = detail(login(manager), campaign)
    assert response.context["type_template"] == ""
    assert "Coupon batches" in response.content.decode()


# --- roles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["operator", "analyst"])
def test_operators_and_analysts_change_nothing(role, request):
    user = request.getfixturevalue(role)
    coupons = running(type=Type.COUPON)
    batch = batch_of(coupons)
    coupon = coupon_of(batch, code="READONLY1234")
    Order.objects.create(
        order_no="RO-1", contact=coupon.contact, amount_fen=1, ordered_at=timezone.now()
    )
    lottery = running(type=Type.LOTTERY, rules={"draws_per_contact": 1})
    ended, _entries = contest(ended=True)
    client = login(user)
    posts = {
        f"/campaigns/{coupons.pk}/coupon-batches/": {
            "batch-name": "x",
            "batch-value_yuan": "1",
            "batch-stock": "1",
        },
        f"/campaigns/{coupons.pk}/coupons/issue/": {
            "issue-batch": batch.pk,
            "issue-segment": "audience",
        },
        f"/campaigns/{coupons.pk}/coupons/redeem/": {
            "redeem-code": coupon.code,
            "redeem-order_no": "RO-1",
        },
        f"/campaigns/{lottery.pk}/stock/": {
            "stock-name": "x",
            "stock-total": "1",
            "stock-weight": "1",
        },
        f"/campaigns/{ended.pk}/draw/": {},
    }
    for url, form in posts.items():
        assert client.post(url, form).status_code == 403, url
    client = api(user)
    api_posts = {
        f"/api/campaigns/{coupons.pk}/coupon-batches/": {"name": "x", "value_fen": 100, "stock": 1},
        f"/api/campaigns/{coupons.pk}/coupons/issue/": {"batch": batch.pk, "segment": "audience"},
        f"/api/campaigns/{coupons.pk}/coupons/redeem/": {"code": coupon.code, "order_no": "RO-1"},
        f"/api/campaigns/{lottery.pk}/stock/": {"name": "x", "total": 1, "weight": 1},
        f"/api/campaigns/{ended.pk}/draw/": {},
    }
    for url, body in api_posts.items():
        assert client.post(url, body, format="json").status_code == 403, url
    assert CouponBatch.objects.count() == 1 and Coupon.objects.count() == 1
    coupon.refresh_from_db()
    assert coupon.state == Coupon.State.ISSUED
    assert not Stock.objects.exists() and not Reward.objects.exists()
    assert client.get(f"/api/campaigns/{coupons.pk}/coupon-batches/").status_code == 200


# --- the API ----------------------------------------------------------------------------------


def test_the_api_creates_a_batch_issues_it_to_the_audience_and_redeems_once(manager):
    campaign = running(type=Type.COUPON)
    people = [ContactFactory(), ContactFactory()]
    client = api(manager)
    url = f"/api/campaigns/{campaign.pk}/"
    response = client.post(
        f"{url}coupon-batches/", {"name": "新人券", "value_fen": 500, "stock": 5}, format="json"
    )
    assert response.status_code == 201, response.data
    batch_id = response.data["id"]
    assert response.data["per_contact"] == 1 and response.data["valid_days"] == 30

    response = client.post(
        f"{url}coupons/issue/", {"batch": batch_id, "segment": "audience"}, format="json"
    )
    assert response.data == {"issued": 2, "already": 0, "refused": 0, "reasons": {}}
    listed = client.get(f"{url}coupon-batches/").data
    assert [(b["issued"], b["stock"]) for b in listed] == [(2, 3)]

    coupon = Coupon.objects.get(contact=people[0])
    Order.objects.create(
        order_no="A-1", contact=people[0], amount_fen=100, ordered_at=timezone.now()
    )
    body = {"code": coupon.code, "order_no": "A-1"}
    response = client.post(f"{url}coupons/redeem/", body, format="json")
    assert response.status_code == 200 and response.data["coupon_state"] == "redeemed"
    response = client.post(f"{url}coupons/redeem/", body, format="json")
    assert response.status_code == 400
    assert response.data["reason"] == ["already_used"]


def test_the_api_names_the_fields_of_bad_input(manager):
    campaign = running(type=Type.LOTTERY, rules={"draws_per_contact": 1})
    client = api(manager)
    url = f"/api/campaigns/{campaign.pk}/"
    response = client.post(
        f"{url}coupon-batches/", {"name": "x", "value_fen": 0, "stock": 0}, format="json"
    )
    assert response.status_code == 400 and set(response.data) == {"value_fen", "stock"}
    response = client.post(f"{url}stock/", {"name": "奖品", "total": 2}, format="json")
    assert response.status_code == 400 and set(response.data) == {"weight"}
    response = client.post(f"{url}coupons/issue/", {"batch": 999, "segment": "tag"}, format="json")
    assert response.status_code == 400 and set(response.data) == {"batch"}
    response = client.post(
        f"{url}coupons/redeem/", {"code": "NOPE", "order_no": "NOPE"}, format="json"
    )
    assert set(response.data) == {"code", "order_no"}
    assert not CouponBatch.objects.exists() and not Stock.objects.exists()

    response = client.post(
        f"{url}stock/", {"name": "奖品", "total": 2, "weight": 3, "price_fen": 100}, format="json"
    )
    assert response.status_code == 201 and response.data["remaining"] == 2
    assert client.get(f"{url}stock/").data[0]["claimed"] == 0
    assert client.get(f"{url}entries/").status_code == 404  # not a contest


def test_the_api_reads_each_types_section(manager, operator):
    referral, (first, _second) = referral_case()
    totals = api(manager).get(f"/api/campaigns/{referral.pk}/commission-totals/").data
    assert [(t["beneficiary"], t["amount_fen"]) for t in totals] == [
        (first.pk, 3000),
        (_second.pk, 1500),
    ]
    assert api(manager).get(f"/api/campaigns/{referral.pk}/commissions/").data["count"] == 4
    # An operator following neither beneficiary sees none of their money.
    assert api(operator).get(f"/api/campaigns/{referral.pk}/commission-totals/").data == []

    ended, entries = contest(ended=True)
    client = api(manager)
    ranked = client.get(f"/api/campaigns/{ended.pk}/entries/").data
    assert [(e["rank"], e["title"], e["won"]) for e in ranked][0] == (1, "夜色", False)
    winners = client.post(f"/api/campaigns/{ended.pk}/draw/").data
    assert [w["contact"] for w in winners] == [entries[1].contact_id]
    assert client.post(f"/api/campaigns/{ended.pk}/draw/").data == winners  # once
    assert Reward.objects.filter(campaign=ended).count() == 1

    checkin = running(type=Type.CHECKIN, rules={"days_needed": 3, "reward": {"points": 5}})
    CheckIn.objects.create(campaign=checkin, contact=first, day=timezone.localdate())
    assert client.get(f"/api/campaigns/{checkin.pk}/streaks/?limit=0").status_code == 400
    streaks = client.get(f"/api/campaigns/{checkin.pk}/streaks/").data
    assert [(s["contact"], s["streak"]) for s in streaks] == [(first.pk, 1)]

    group_buy = running(type=Type.GROUP_BUY, rules={"size": 2, "hours": 1, "price_fen": 1})
    GroupBuy.objects.create(
        campaign=group_buy, leader=first, size=2, deadline=timezone.now() + timedelta(hours=1)
    )
    rows = client.get(f"/api/campaigns/{group_buy.pk}/group-buys/").data["results"]
    assert [(r["group_state"], r["seats"], r["size"]) for r in rows] == [("open", 0, 2)]

    invite_task = running(
        type=Type.INVITE_TASK,
        rules={"invites_needed": 2, "window_hours": 1, "reward": {"points": 1}},
    )
    Participation.objects.create(campaign=invite_task, contact=first, joined_at=timezone.now())
    Invite.objects.create(
        campaign=invite_task, inviter=first, invitee=ContactFactory(), invited_at=timezone.now()
    )
    data = client.get(f"/api/campaigns/{invite_task.pk}/invites/").data
    assert data["invites_needed"] == 2
    assert [(r["invite_state"], r["count"]) for r in data["by_state"]] == [("pending", 1)]
    assert [(r["contact"], r["pending"], r["counted"]) for r in data["progress"]] == [
        (first.pk, 1, 0)
    ]
