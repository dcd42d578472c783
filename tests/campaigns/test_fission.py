"""Fission campaigns: share links and the new customers they bring, counted once and only
when they stay; invite tasks rewarded at N; commission down a referral chain; groups that
fill up and overflow; points for sharing, capped per day. Every refusal leaves its reason."""

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.utils import timezone, translation

from analytics.models import Event, EventType
from campaigns import fission, services
from campaigns.models import Campaign, Commission, Invite, Order, Participation, Rejection, Reward
from campaigns.tokens import landing_token
from campaigns.types import rules_check
from contacts.models import ChannelCode, Contact, Follow
from groups.models import GroupMembership
from sop.models import ContentItem, Plan
from tests.factories import ContactFactory, GroupFactory, StaffFactory
from wecom.models import Callback
from wecom.services import callback_apply

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 10, 12, tzinfo=SH)
Reason = Rejection.Reason


def running(type=Campaign.Type.INVITE_TASK, *, around=NOW, **rules) -> Campaign:
    return Campaign.objects.create(
        name="老带新",
        type=type,
        state=Campaign.State.RUNNING,
        starts_at=around - timedelta(days=1),
        ends_at=around + timedelta(days=7),
        rules=rules,
    )


def old_customer(**fields) -> Contact:
    """Someone who has been our customer since long before any campaign here."""
    return ContactFactory(first_added_at=NOW - timedelta(days=100), **fields)


def newcomer(at: datetime, staff=None) -> Contact:
    """A customer who first added a staff member at `at` (what the add callback leaves)."""
    contact = ContactFactory(first_added_at=at)
    Follow.objects.create(contact=contact, staff=staff or StaffFactory(), added_at=at)
    return contact


def arrive(campaign: Campaign, sharer: Contact, at: datetime) -> tuple[Contact, Invite | None]:
    contact = newcomer(at)
    return contact, fission.arrival(fission.share_state(campaign.pk, sharer.pk), contact, at=at)


def reasons(campaign: Campaign) -> list[str]:
    return sorted(campaign.rejections.values_list("reason", flat=True))


# --- the share state --------------------------------------------------------------------------


def test_the_share_state_fits_wecom_and_cannot_be_forged():
    state = fission.share_state(987_654, 2_000_000_000)
    assert len(state) <= 30
    assert fission.share_state_read(state) == (987_654, 2_000_000_000)
    other = fission.share_state(987_654, 2_000_000_001)
    forged = other.rsplit("-", 1)[0] + "-" + state.rsplit("-", 1)[1]
    assert fission.share_state_read(forged) is None
    assert fission.share_state_read(state[:-1] + ("0" if state[-1] != "0" else "1")) is None
    assert fission.share_state_read("cs-abcdefghijkl") is None  # a channel code's state
    assert fission.share_state_read("") is None
    assert fission.share_state_read("f抖音-直播-码") is None  # any channel's state may come


# --- arrivals and their abuse cases -----------------------------------------------------------


@pytest.mark.django_db
def test_a_new_customer_through_a_share_link_is_attributed_to_the_sharer_once():
    campaign, sharer = running(window_hours=48), old_customer()
    contact, invite = arrive(campaign, sharer, NOW)

    assert invite.inviter == sharer and invite.state == Invite.State.PENDING
    contact.refresh_from_db()
    assert contact.referrer == sharer
    assert Participation.objects.get(campaign=campaign, contact=sharer).progress == 0
    # The same callback applied again is the same arrival: nothing new, nothing refused.
    again = fission.arrival(fission.share_state(campaign.pk, sharer.pk), contact, at=NOW)
    assert again == invite
    assert Invite.objects.count() == 1 and reasons(campaign) == []
    referrals = Event.objects.filter(type=EventType.REFERRAL)
    assert [(e.contact_id, e.payload["referred"]) for e in referrals] == [(sharer.pk, contact.pk)]


@pytest.mark.django_db
def test_self_referral_old_customers_and_rejoiners_are_refused_with_their_reason():
    campaign, sharer, other_sharer = running(), old_customer(), old_customer()
    state = fission.share_state(campaign.pk, sharer.pk)

    assert fission.arrival(state, sharer, at=NOW) is None
    assert fission.arrival(state, old_customer(), at=NOW) is None
    already_referred = newcomer(NOW)
    Contact.objects.filter(pk=already_referred.pk).update(referrer=other_sharer)
    already_referred.refresh_from_db()
    assert fission.arrival(state, already_referred, at=NOW) is None
    # Came, left, and came back (through anyone's link): counted once only.
    came_back, first = arrive(campaign, sharer, NOW)
    later = NOW + timedelta(days=1)
    assert fission.arrival(state, came_back, at=later) is None
    other_state = fission.share_state(campaign.pk, other_sharer.pk)
    assert fission.arrival(other_state, came_back, at=later) is None

    assert list(Invite.objects.values_list("invitee", flat=True)) == [came_back.pk]
    assert reasons(campaign) == sorted(
        [Reason.SELF_REFERRAL, Reason.NOT_NEW, Reason.NOT_NEW]
        + [Reason.ALREADY_COUNTED, Reason.ALREADY_COUNTED]
    )
    assert Contact.objects.get(pk=already_referred.pk).referrer == other_sharer


@pytest.mark.django_db
def test_invites_beyond_the_daily_cap_are_refused_and_the_next_day_counts_again():
    campaign, sharer = running(max_invites_per_day=2), old_customer()
    results = [arrive(campaign, sharer, NOW + timedelta(minutes=i))[1] for i in range(3)]
    assert [r is not None for r in results] == [True, True, False]
    assert reasons(campaign) == [Reason.RATE_LIMITED]
    assert arrive(campaign, sharer, NOW + timedelta(days=1))[1] is not None


@pytest.mark.django_db
def test_arrivals_outside_the_campaign_or_by_unknown_states_change_nothing():
    campaign, sharer = running(), old_customer()
    contact = newcomer(NOW + timedelta(days=30))
    state = fission.share_state(campaign.pk, sharer.pk)
    assert fission.arrival(state, contact, at=NOW + timedelta(days=30)) is None
    assert reasons(campaign) == [Reason.NOT_RUNNING]
    assert fission.arrival("cs-store-1", newcomer(NOW), at=NOW) is None
    assert (
        Invite.objects.count() == 0 and Contact.objects.filter(referrer__isnull=False).count() == 0
    )


@pytest.mark.django_db(transaction=True)
def test_the_same_arrival_processed_twice_at_once_counts_once():
    campaign, sharer, rival = running(), old_customer(), old_customer()
    contact = newcomer(NOW)
    states = [fission.share_state(campaign.pk, who.pk) for who in (sharer, sharer, rival, rival)]
    results = []
    barrier = threading.Barrier(len(states))

    def process(state):
        try:
            barrier.wait()
            results.append(fission.arrival(state, Contact.objects.get(pk=contact.pk), at=NOW))
        finally:
            connection.close()

    threads = [threading.Thread(target=process, args=(state,)) for state in states]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    invite = Invite.objects.get()
    assert invite.invitee == contact
    # Whoever's link was processed first wins; the other's two arrivals are refusals.
    assert [r for r in results if r is not None] == [invite, invite]
    assert reasons(campaign) == [Reason.ALREADY_COUNTED] * 2
    assert Event.objects.filter(type=EventType.REFERRAL).count() == 1
    assert Contact.objects.get(pk=contact.pk).referrer_id == invite.inviter_id


# --- invite task (任务宝) ------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_invite_task_counts_invitees_who_stayed_and_rewards_at_n():
    notice = ContentItem.objects.create(
        title="进度", purpose=ContentItem.Purpose.ACTIVATION, text="又一位好友助力成功！"
    )
    campaign = running(
        invites_needed=2,
        window_hours=24,
        reward={"points": 100},
        notify_content_id=notice.pk,
    )
    sharer = old_customer()
    stays_1, _ = arrive(campaign, sharer, NOW)
    stays_2, _ = arrive(campaign, sharer, NOW + timedelta(minutes=5))
    deletes, _ = arrive(campaign, sharer, NOW + timedelta(minutes=10))
    # 拉黑 within the window: not a stayer.
    Follow.objects.filter(contact=deletes).update(deleted_by_contact_at=NOW + timedelta(hours=3))

    assert fission.timed_work(NOW + timedelta(hours=23)) == 0  # the window has not passed
    assert fission.timed_work(NOW + timedelta(hours=25)) == 3
    assert fission.timed_work(NOW + timedelta(hours=25)) == 0  # idempotent

    participation = Participation.objects.get(campaign=campaign, contact=sharer)
    assert participation.progress == 2
    assert participation.state == Participation.State.REWARDED
    sharer.refresh_from_db()
    assert sharer.points_balance == 100
    assert Reward.objects.filter(campaign=campaign).count() == 1
    states = dict(Invite.objects.values_list("invitee", "state"))
    assert states == {stays_1.pk: "counted", stays_2.pk: "counted", deletes.pk: "rejected"}
    assert reasons(campaign) == [Reason.LEFT_IN_WINDOW]
    # Progress notices are SOP broadcasts (budgets, quiet hours), one per counted invite.
    plans = Plan.objects.filter(campaign=campaign)
    assert plans.count() == 2
    assert all(p.kind == Plan.Kind.BROADCAST for p in plans)
    assert {c.pk for p in plans for c in p.contacts.all()} == {sharer.pk}


@pytest.mark.django_db
def test_an_invitee_who_leaves_the_campaign_group_within_the_window_does_not_count():
    group = GroupFactory()
    campaign = running(invites_needed=5, window_hours=24, reward={"points": 10}, groups=[group.pk])
    sharer = old_customer()
    stays, _ = arrive(campaign, sharer, NOW)
    leaves, _ = arrive(campaign, sharer, NOW)
    never_joins, _ = arrive(campaign, sharer, NOW)
    GroupMembership.objects.create(group=group, contact=stays, joined_at=NOW)
    GroupMembership.objects.create(
        group=group, contact=leaves, joined_at=NOW, left_at=NOW + timedelta(hours=2)
    )

    assert fission.timed_work(NOW + timedelta(days=2)) == 3
    states = dict(Invite.objects.values_list("invitee", "state"))
    assert states == {stays.pk: "counted", leaves.pk: "rejected", never_joins.pk: "rejected"}
    assert Participation.objects.get(contact=sharer).progress == 1


@pytest.mark.django_db
def test_invite_task_rules_name_the_rule_at_fault():
    with pytest.raises(ValidationError) as error:
        rules_check(Campaign.Type.INVITE_TASK, {"window_hours": -1, "reward": {"cash": 1}})
    assert set(error.value.message_dict) == {"invites_needed", "window_hours", "reward"}
    rules_check(
        Campaign.Type.INVITE_TASK,
        {"invites_needed": 3, "window_hours": 48, "reward": {"points": 5}},
    )


# --- referral / distribution (分销) -------------------------------------------------------------


@pytest.mark.django_db
def test_a_referral_chain_pays_each_level_its_commission_once():
    campaign = running(Campaign.Type.REFERRAL, levels=[1000, 500])  # 10 %, 5 %
    a = old_customer(name="A")
    b, _ = arrive(campaign, a, NOW)
    c, _ = arrive(campaign, b, NOW + timedelta(hours=1))
    order = Order.objects.create(
        order_no="C-1", contact=c, amount_fen=10_000, ordered_at=NOW + timedelta(days=1)
    )

    paid = fission.order_attributed(order)
    fission.order_attributed(order)  # the shop posts it again

    assert [(x.level, x.beneficiary, x.amount_fen) for x in paid] == [(1, b, 1_000), (2, a, 500)]
    assert Commission.objects.count() == 2
    rewards = Reward.objects.filter(kind=Reward.Kind.COMMISSION).order_by("amount")
    assert [(r.contact, r.amount) for r in rewards] == [(a, 500), (b, 1_000)]
    order.refresh_from_db()
    assert order.referrer == b and order.campaign == campaign


@pytest.mark.django_db
def test_commission_rounds_down_and_stops_at_a_cycle_or_the_budget():
    campaign = running(Campaign.Type.REFERRAL, levels=[333, 200, 100])
    campaign.budget_fen = 400
    campaign.save()
    a = old_customer()
    b, _ = arrive(campaign, a, NOW)
    Contact.objects.filter(pk=a.pk).update(referrer=b)  # a cycle: A ← B ← A
    order = Order.objects.create(order_no="B-1", contact=b, amount_fen=999, ordered_at=NOW)

    assert fission.referrer_chain(Contact.objects.get(pk=b.pk), 3) == [a]
    assert [(x.beneficiary, x.amount_fen) for x in fission.order_attributed(order)] == [(a, 33)]

    big = Order.objects.create(order_no="B-2", contact=b, amount_fen=200_000, ordered_at=NOW)
    assert fission.order_attributed(big) == []  # 6,660 fen: over the ¥4 budget
    assert reasons(campaign) == [Reason.BUDGET_SPENT]
    refunded = Order.objects.create(
        order_no="B-3", contact=b, amount_fen=100, ordered_at=NOW, status=Order.Status.REFUNDED
    )
    assert fission.order_attributed(refunded) == []


@pytest.mark.django_db
def test_referral_rules_take_basis_points():
    for bad in ([], [10.5], [6000, 5000], [100, 100, 100, 100], "10%"):
        with pytest.raises(ValidationError) as error:
            rules_check(Campaign.Type.REFERRAL, {"levels": bad})
        assert list(error.value.message_dict) == ["levels"]
    rules_check(Campaign.Type.REFERRAL, {"levels": [1000, 500]})


# --- group fission (群裂变) ----------------------------------------------------------------------


@pytest.mark.django_db
def test_group_fission_fills_each_group_to_its_cap_then_overflows():
    first, dismissed, second = GroupFactory(), GroupFactory(), GroupFactory()
    dismissed.dismissed_at = NOW
    dismissed.save()
    campaign = running(
        Campaign.Type.GROUP_FISSION, groups=[first.pk, dismissed.pk, second.pk], cap=2
    )

    def join(group):
        GroupMembership.objects.create(group=group, contact=ContactFactory(), joined_at=NOW)

    assert fission.fission_group(campaign) == first
    join(first)
    join(first)
    assert fission.fission_group(campaign) == second
    # Someone leaving frees a seat.
    GroupMembership.objects.filter(group=first).update(left_at=NOW + timedelta(hours=1))
    assert fission.fission_group(campaign) == first
    for group in (first, first, second, second):
        join(group)
    assert fission.fission_group(campaign) is None
    assert reasons(campaign) == [Reason.LIMIT_REACHED]


@pytest.mark.django_db
def test_the_group_fission_page_shows_the_group_with_room_and_its_code():
    full, open_ = GroupFactory(name="一群"), GroupFactory(name="二群")
    code = ChannelCode.objects.create(
        name="二群码", kind="group", state="cg-two", qr_url="https://wework.qpic.cn/two.png"
    )
    open_.join_codes.add(code)
    GroupMembership.objects.create(group=full, contact=ContactFactory(), joined_at=NOW)
    campaign = running(
        Campaign.Type.GROUP_FISSION, around=timezone.now(), groups=[full.pk, open_.pk], cap=1
    )
    person = old_customer()
    page = Client().get(f"/c/{landing_token(campaign.pk, person.pk)}/").content.decode()
    assert "二群" in page and "https://wework.qpic.cn/two.png" in page and "一群" not in page


@pytest.mark.django_db
def test_group_fission_rules_need_groups_and_a_cap():
    with pytest.raises(ValidationError) as error:
        rules_check(Campaign.Type.GROUP_FISSION, {"groups": [999_999], "cap": 0})
    assert set(error.value.message_dict) == {"groups", "cap"}


# --- points for sharing (积分裂变) ----------------------------------------------------------------


@pytest.mark.django_db
def test_sharing_earns_points_up_to_the_daily_cap():
    campaign = running(Campaign.Type.POINTS, points_per_share=5, max_shares_per_day=2)
    person = old_customer()
    fission.share(campaign, person, now=NOW)
    fission.share(campaign, person, now=NOW + timedelta(minutes=1))
    with pytest.raises(services.CampaignRefused) as refused:
        fission.share(campaign, person, now=NOW + timedelta(minutes=2))
    assert refused.value.reason == Reason.RATE_LIMITED
    fission.share(campaign, person, now=NOW + timedelta(days=1))  # a new Shanghai day
    person.refresh_from_db()
    assert person.points_balance == 15
    assert reasons(campaign) == [Reason.RATE_LIMITED]


@pytest.mark.django_db
def test_the_points_page_shares_by_tapping_and_shows_the_personal_link():
    campaign = running(
        Campaign.Type.POINTS,
        around=timezone.now(),
        points_per_share=5,
        max_shares_per_day=1,
        contact_link="https://work.weixin.qq.com/ca/cawcde123",
    )
    person = old_customer()
    url = f"/c/{landing_token(campaign.pk, person.pk)}/"
    client = Client()
    with translation.override("en"):
        client.cookies["django_language"] = "en"
        page = client.post(url + "share/", follow=True).content.decode()
        assert "5 points added" in page
        assert "Too many attempts" in client.post(url + "share/", follow=True).content.decode()
    state = fission.share_state(campaign.pk, person.pk)
    assert f"https://work.weixin.qq.com/ca/cawcde123?customer_channel={state}" in page
    # …and as a QR code a friend can scan from the screen.
    assert "<svg" in page and 'class="segno"' in page
    person.refresh_from_db()
    assert person.points_balance == 5


# --- through WeCom: the add callback carries the share state ----------------------------------


WORLD = {"staff": [{"userid": "alice", "name": "Alice"}], "contacts": [], "tag_groups": []}


def test_the_add_callback_attributes_a_newcomer_to_the_sharer(fake_wecom, live_server):
    fake_wecom.load_world({**WORLD, "groups": []})
    fake_wecom.callback_url = live_server.url + "/wecom/callback"
    campaign = running(around=timezone.now(), window_hours=0)
    sharer = old_customer()
    state = fission.share_state(campaign.pk, sharer.pk)

    fake_wecom.driver.add_contact("alice", "wm-friend", name="朋友", state=state)
    for pk in Callback.objects.filter(status="pending").values_list("pk", flat=True):
        callback_apply(pk)

    friend = Contact.objects.get(external_userid="wm-friend")
    assert friend.referrer == sharer
    assert Invite.objects.get(campaign=campaign).invitee == friend
    assert fission.timed_work(timezone.now() + timedelta(minutes=1)) == 1
    assert Participation.objects.get(campaign=campaign, contact=sharer).progress == 1


@pytest.mark.django_db
def test_imported_orders_are_settled_once_after_the_import():
    from campaigns.tasks import orders_settle

    campaign = running(Campaign.Type.REFERRAL, levels=[1000])
    a = old_customer(name="A")
    b, _ = arrive(campaign, a, NOW)
    order = Order.objects.create(
        order_no="IMP-1", contact=b, amount_fen=20_000, ordered_at=NOW + timedelta(hours=2)
    )
    # What the order import queues once it commits; a retry changes nothing.
    assert orders_settle([order.pk])["commissions"] == 1
    assert orders_settle([order.pk])["commissions"] == 1
    assert list(Commission.objects.values_list("beneficiary", "amount_fen")) == [(a.pk, 2_000)]
