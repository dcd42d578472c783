"""Check-in streaks, group-buys and contests: each one's happy path and its abuse cases, the
landing pages customers tap, and the races that must not oversell seats or votes."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone, translation

from analytics.models import Event, EventType
from campaigns import engagement
from campaigns.models import (
    Campaign,
    CheckIn,
    CouponBatch,
    Entry,
    GroupBuy,
    GroupBuyMember,
    Participation,
    Rejection,
    Reward,
)
from campaigns.services import CampaignRefused
from campaigns.tokens import landing_token
from campaigns.types import rules_check
from contacts.models import Contact
from tests.concurrency import race
from tests.factories import ContactFactory

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 10, 12, tzinfo=SH)
DAY = timedelta(days=1)
Type = Campaign.Type
Reason = Rejection.Reason

CHECKIN_RULES = {
    "days_needed": 3,
    "makeups_allowed": 1,
    "makeup_within_days": 3,
    "reward": {"points": 50},
}
GROUP_BUY_RULES = {"size": 3, "hours": 24, "price_fen": 9900}
CONTEST_RULES = {"votes_per_day": 1, "draw_winners": 2, "reward": {"points": 100}}


@pytest.fixture(autouse=True)
def english():
    """The messages checked here are the English msgids (the UI is Chinese by default)."""
    with translation.override("en"):
        yield


def running(campaign_type: str, rules: dict, *, around: datetime = NOW) -> Campaign:
    return Campaign.objects.create(
        name="活动",
        type=campaign_type,
        state=Campaign.State.RUNNING,
        starts_at=around - 5 * DAY,
        ends_at=around + 10 * DAY,
        rules=rules,
    )


def refused(act, *args, **kwargs) -> str:
    """The reason an action was refused (it must be)."""
    with pytest.raises(CampaignRefused) as refusal:
        act(*args, **kwargs)
    return refusal.value.reason


def balance(contact: Contact) -> int:
    return Contact.objects.values_list("points_balance", flat=True).get(pk=contact.pk)


# --- rules ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_bad_rules_are_refused_naming_each_rule():
    with pytest.raises(ValidationError) as error:
        rules_check(Type.CHECKIN, {"days_needed": 0, "makeups_allowed": 2})
    assert set(error.value.message_dict) == {"days_needed", "makeup_within_days", "reward"}
    assert "days_needed" in error.value.message_dict["days_needed"][0]

    with pytest.raises(ValidationError) as error:
        rules_check(Type.GROUP_BUY, {"size": 1, "hours": "24"})
    assert set(error.value.message_dict) == {"size", "hours", "price_fen"}

    with pytest.raises(ValidationError) as error:
        rules_check(
            Type.CONTEST, {"votes_per_day": 3, "draw_winners": 1, "reward": {"coupon_batch": 999}}
        )
    assert set(error.value.message_dict) == {"votes_per_day", "reward"}
    assert "999" in error.value.message_dict["reward"][0]

    rules_check(Type.CHECKIN, CHECKIN_RULES)
    rules_check(Type.GROUP_BUY, GROUP_BUY_RULES)
    rules_check(Type.CONTEST, CONTEST_RULES)


# --- check-in streak --------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_customer_checks_in_once_a_day_and_a_second_tap_is_refused():
    campaign, person = (
        running(Type.CHECKIN, {**CHECKIN_RULES, "points_per_checkin": 2}),
        ContactFactory(),
    )

    message = engagement.checkin(campaign, person, {}, now=NOW)

    assert "1 days in a row" in message
    assert refused(engagement.checkin, campaign, person, {}, now=NOW + timedelta(hours=3)) == (
        Reason.DUPLICATE
    )
    assert CheckIn.objects.filter(campaign=campaign, contact=person).count() == 1
    assert Event.objects.filter(type=EventType.CHECKED_IN, contact_id=person.pk).count() == 1
    assert Rejection.objects.get(campaign=campaign).reason == Reason.DUPLICATE
    assert balance(person) == 2  # the daily points, credited once


@pytest.mark.django_db
def test_a_streak_with_a_makeup_reaches_its_goal_and_rewards_once():
    campaign, person = running(Type.CHECKIN, CHECKIN_RULES), ContactFactory()
    engagement.checkin(campaign, person, {}, now=NOW - 2 * DAY)
    # NOW - 1 day is missed.
    assert "1 days in a row" in engagement.checkin(campaign, person, {}, now=NOW)

    missed = (NOW - DAY).date().isoformat()
    message = engagement.makeup(campaign, person, {"day": missed}, now=NOW)

    assert "reward given" in message
    participation = Participation.objects.get(campaign=campaign, contact=person)
    assert (participation.state, participation.progress) == (Participation.State.REWARDED, 3)
    assert balance(person) == 50
    # Tapping again, making up again or checking in the next day gives nothing twice.
    assert refused(engagement.makeup, campaign, person, {"day": missed}, now=NOW) in (
        Reason.DUPLICATE,
        Reason.LIMIT_REACHED,
    )
    assert refused(engagement.checkin, campaign, person, {}, now=NOW) == Reason.DUPLICATE
    engagement.checkin(campaign, person, {}, now=NOW + DAY)
    assert Reward.objects.filter(campaign=campaign, contact=person).count() == 1
    assert balance(person) == 50
    assert Participation.objects.get(pk=participation.pk).progress == 4


@pytest.mark.django_db
def test_makeups_are_limited_in_number_and_to_recent_days():
    rules = {**CHECKIN_RULES, "days_needed": 7}
    campaign, person = running(Type.CHECKIN, rules), ContactFactory()
    engagement.checkin(campaign, person, {}, now=NOW)

    too_old = (NOW - 4 * DAY).date().isoformat()
    assert refused(engagement.makeup, campaign, person, {"day": too_old}, now=NOW) == (
        Reason.EXPIRED
    )
    before_start = (NOW - 6 * DAY).date().isoformat()
    assert refused(engagement.makeup, campaign, person, {"day": before_start}, now=NOW) == (
        Reason.EXPIRED
    )
    engagement.makeup(campaign, person, {"day": (NOW - DAY).date().isoformat()}, now=NOW)
    second = (NOW - 2 * DAY).date().isoformat()
    assert refused(engagement.makeup, campaign, person, {"day": second}, now=NOW) == (
        Reason.LIMIT_REACHED
    )
    assert "day" in engagement.makeup(campaign, person, {"day": "yesterday"}, now=NOW)
    assert CheckIn.objects.filter(contact=person, makeup=True).count() == 1
    assert list(
        Rejection.objects.filter(campaign=campaign).order_by("pk").values_list("reason", flat=True)
    ) == [Reason.EXPIRED, Reason.EXPIRED, Reason.LIMIT_REACHED]


@pytest.mark.django_db
def test_a_missed_day_breaks_the_streak_and_a_yesterday_streak_is_still_alive():
    assert (
        engagement.checkin_streak({date(2026, 11, 8), date(2026, 11, 9)}, date(2026, 11, 10)) == 2
    )
    assert (
        engagement.checkin_streak({date(2026, 11, 7), date(2026, 11, 10)}, date(2026, 11, 10)) == 1
    )
    assert engagement.checkin_streak({date(2026, 11, 8)}, date(2026, 11, 10)) == 0


@pytest.mark.django_db
def test_no_checkin_after_the_campaign_ends():
    campaign, person = running(Type.CHECKIN, CHECKIN_RULES), ContactFactory()
    engagement.checkin(campaign, person, {}, now=NOW)
    assert refused(engagement.checkin, campaign, person, {}, now=NOW + 11 * DAY) == (
        Reason.NOT_RUNNING
    )


@pytest.mark.django_db
def test_the_checkin_page_shows_the_calendar_and_checks_in():
    now = timezone.now()
    campaign, person = running(Type.CHECKIN, CHECKIN_RULES, around=now), ContactFactory()
    engagement.checkin(campaign, person, {}, now=now - 2 * DAY)
    client, token = Client(), landing_token(campaign.pk, person.pk)
    client.cookies["django_language"] = "en"

    response = client.post(f"/c/{token}/checkin/", follow=True)

    page = response.content.decode()
    assert response.status_code == 200
    assert "Checked in: 1 days in a row" in page
    today = timezone.localdate(now, SH)
    assert f'data-day="{today - 2 * DAY:%Y-%m-%d}" data-state="checked"' in page
    assert f'data-day="{today - DAY:%Y-%m-%d}" data-state="missed"' in page
    assert f'data-day="{today:%Y-%m-%d}" data-state="checked"' in page
    assert f'data-day="{today + DAY:%Y-%m-%d}" data-state="upcoming"' in page
    assert "Make up" in page  # yesterday is within the window and one makeup is left


# --- group-buy --------------------------------------------------------------------------------


def opened(campaign: Campaign, leader: Contact, now: datetime = NOW) -> GroupBuy:
    engagement.group_buy_open(campaign, leader, {}, now=now)
    return GroupBuy.objects.get(campaign=campaign, leader=leader, state=GroupBuy.State.OPEN)


@pytest.mark.django_db
def test_a_full_group_unlocks_the_price_for_every_member():
    campaign = running(Type.GROUP_BUY, GROUP_BUY_RULES)
    leader, friend, other = ContactFactory(), ContactFactory(), ContactFactory()
    group_buy = opened(campaign, leader)

    assert "1 more" in engagement.group_buy_join(
        campaign, friend, {"group_buy": group_buy.pk}, now=NOW
    )
    message = engagement.group_buy_join(campaign, other, {"group_buy": str(group_buy.pk)}, now=NOW)

    assert "¥99.00" in message
    group_buy.refresh_from_db()
    assert group_buy.state == GroupBuy.State.SUCCEEDED
    gifts = Reward.objects.filter(campaign=campaign, kind=Reward.Kind.GIFT)
    assert sorted(gifts.values_list("contact_id", flat=True)) == sorted(
        [leader.pk, friend.pk, other.pk]
    )
    assert set(gifts.values_list("amount", flat=True)) == {0}
    assert all("¥99.00" in gift.description for gift in gifts)
    assert set(Participation.objects.values_list("state", flat=True)) == {
        Participation.State.REWARDED
    }


@pytest.mark.django_db
def test_group_buy_abuse_is_refused_with_its_reason():
    campaign = running(Type.GROUP_BUY, GROUP_BUY_RULES)
    leader, friend, other, late = (ContactFactory() for _ in range(4))
    group_buy = opened(campaign, leader)

    assert refused(engagement.group_buy_open, campaign, leader, {}, now=NOW) == Reason.DUPLICATE
    assert (
        refused(engagement.group_buy_join, campaign, leader, {"group_buy": group_buy.pk}, now=NOW)
        == Reason.DUPLICATE
    )
    engagement.group_buy_join(campaign, friend, {"group_buy": group_buy.pk}, now=NOW)
    assert (
        refused(engagement.group_buy_join, campaign, friend, {"group_buy": group_buy.pk}, now=NOW)
        == Reason.DUPLICATE
    )
    engagement.group_buy_join(campaign, other, {"group_buy": group_buy.pk}, now=NOW)
    assert (
        refused(engagement.group_buy_join, campaign, late, {"group_buy": group_buy.pk}, now=NOW)
        == Reason.SOLD_OUT
    )
    assert "group_buy" in engagement.group_buy_join(campaign, late, {"group_buy": "x"}, now=NOW)
    assert "group_buy" in engagement.group_buy_join(campaign, late, {"group_buy": 0}, now=NOW)
    assert GroupBuyMember.objects.filter(group_buy=group_buy).count() == 3
    assert GroupBuy.objects.filter(campaign=campaign).count() == 1


@pytest.mark.django_db
def test_a_group_past_its_deadline_fails_and_releases_its_seats():
    campaign = running(Type.GROUP_BUY, GROUP_BUY_RULES)
    leader, friend, late = ContactFactory(), ContactFactory(), ContactFactory()
    group_buy = opened(campaign, leader)
    engagement.group_buy_join(campaign, friend, {"group_buy": group_buy.pk}, now=NOW)
    after = NOW + timedelta(hours=24)

    assert engagement.group_buy_expire(after - timedelta(seconds=1)) == 0
    assert engagement.group_buy_expire(after) == 1
    assert engagement.group_buy_expire(after) == 0  # the minute tick may run it again

    group_buy.refresh_from_db()
    assert group_buy.state == GroupBuy.State.FAILED
    assert GroupBuyMember.objects.filter(group_buy=group_buy, released_at=after).count() == 2
    assert (
        refused(engagement.group_buy_join, campaign, late, {"group_buy": group_buy.pk}, now=after)
        == Reason.EXPIRED
    )
    assert not Reward.objects.filter(campaign=campaign).exists()
    assert opened(campaign, leader, after).pk != group_buy.pk  # the leader may try again


@pytest.mark.django_db(transaction=True)
def test_concurrent_joins_never_take_more_seats_than_the_group_has():
    size = 5
    campaign = running(Type.GROUP_BUY, {**GROUP_BUY_RULES, "size": size})
    group_buy = opened(campaign, ContactFactory())
    joiners = [ContactFactory() for _ in range(size + 5)]

    outcomes = race(
        len(joiners),
        lambda n: engagement.group_buy_join(
            campaign, joiners[n], {"group_buy": group_buy.pk}, now=NOW
        ),
    )

    joined = [o for o in outcomes if isinstance(o, str)]
    refusals = [o for o in outcomes if not isinstance(o, str)]
    assert len(joined) == size - 1  # the leader holds the first seat
    assert {getattr(o, "reason", o) for o in refusals} == {Reason.SOLD_OUT}
    assert (
        GroupBuyMember.objects.filter(group_buy=group_buy, released_at__isnull=True).count() == size
    )
    assert GroupBuy.objects.get(pk=group_buy.pk).state == GroupBuy.State.SUCCEEDED
    assert Reward.objects.filter(campaign=campaign, kind=Reward.Kind.GIFT).count() == size
    assert Rejection.objects.filter(campaign=campaign, reason=Reason.SOLD_OUT).count() == 6


@pytest.mark.django_db
def test_the_leader_sees_the_join_link_and_a_friend_joins_by_it():
    now = timezone.now()
    campaign = running(Type.GROUP_BUY, GROUP_BUY_RULES, around=now)
    leader, friend = ContactFactory(), ContactFactory()
    client = Client()
    client.cookies["django_language"] = "en"
    client.post(f"/c/{landing_token(campaign.pk, leader.pk)}/open/")
    group_buy = GroupBuy.objects.get(leader=leader)

    leader_page = client.get(f"/c/{landing_token(campaign.pk, leader.pk)}/").content.decode()
    assert f"?join={group_buy.pk}" in leader_page
    assert "needs 2 more" in leader_page

    friend_token = landing_token(campaign.pk, friend.pk)
    friend_page = client.get(f"/c/{friend_token}/?join={group_buy.pk}").content.decode()
    assert f'name="group_buy" inputmode="numeric" value="{group_buy.pk}"' in friend_page
    response = client.post(f"/c/{friend_token}/join/", {"group_buy": group_buy.pk}, follow=True)
    assert "You joined group" in response.content.decode()
    assert GroupBuyMember.objects.filter(group_buy=group_buy).count() == 2


# --- contest ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_entries_get_one_vote_per_person_per_day():
    campaign = running(Type.CONTEST, CONTEST_RULES)
    author, voter = ContactFactory(), ContactFactory()
    engagement.contest_enter(campaign, author, {"title": "我的花园", "content": "照片"}, now=NOW)
    entry = Entry.objects.get(campaign=campaign)
    other = Entry.objects.create(campaign=campaign, contact=ContactFactory(), title="第二")

    engagement.contest_vote(campaign, voter, {"entry": entry.pk}, now=NOW)

    assert refused(engagement.contest_vote, campaign, voter, {"entry": other.pk}, now=NOW) == (
        Reason.DUPLICATE
    )
    engagement.contest_vote(campaign, voter, {"entry": entry.pk}, now=NOW + DAY)
    entry.refresh_from_db()
    other.refresh_from_db()
    assert (entry.votes, other.votes) == (2, 0)
    assert Participation.objects.get(contact=author).state == Participation.State.COMPLETED


@pytest.mark.django_db
def test_contest_abuse_is_refused_with_its_reason():
    campaign = running(Type.CONTEST, CONTEST_RULES)
    author = ContactFactory()
    engagement.contest_enter(campaign, author, {"title": "一"}, now=NOW)
    entry = Entry.objects.get(campaign=campaign)

    assert refused(engagement.contest_vote, campaign, author, {"entry": entry.pk}, now=NOW) == (
        Reason.SELF_REFERRAL
    )
    assert refused(engagement.contest_enter, campaign, author, {"title": "二"}, now=NOW) == (
        Reason.DUPLICATE
    )
    assert "title" in engagement.contest_enter(campaign, ContactFactory(), {"title": " "}, now=NOW)
    assert "entry" in engagement.contest_vote(campaign, ContactFactory(), {"entry": "?"}, now=NOW)
    assert (
        refused(
            engagement.contest_vote,
            campaign,
            ContactFactory(),
            {"entry": entry.pk},
            now=NOW + 11 * DAY,
        )
        == Reason.NOT_RUNNING
    )
    entry.refresh_from_db()
    assert entry.votes == 0
    assert Entry.objects.filter(campaign=campaign).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_votes_are_all_counted():
    campaign = running(Type.CONTEST, CONTEST_RULES)
    entry = Entry.objects.create(campaign=campaign, contact=ContactFactory(), title="热门")
    voters = [ContactFactory() for _ in range(8)]

    outcomes = race(
        len(voters),
        lambda n: engagement.contest_vote(campaign, voters[n], {"entry": entry.pk}, now=NOW),
    )

    assert all(isinstance(o, str) for o in outcomes), outcomes
    assert Entry.objects.get(pk=entry.pk).votes == 8


@pytest.mark.django_db
def test_the_draw_after_the_end_rewards_the_top_entries_once():
    campaign = running(Type.CONTEST, CONTEST_RULES)
    authors = [ContactFactory() for _ in range(3)]
    entries = [
        Entry.objects.create(campaign=campaign, contact=author, title=f"作品{n}", votes=votes)
        for n, (author, votes) in enumerate(zip(authors, [5, 7, 5], strict=True))
    ]

    with pytest.raises(ValidationError) as error:
        engagement.contest_draw(campaign, now=NOW)
    assert "campaign" in error.value.message_dict

    after = campaign.ends_at + DAY
    rewards = engagement.contest_draw(campaign, now=after)
    again = engagement.contest_draw(campaign, now=after)

    # 7 votes first; of the two with 5, the earlier entry.
    assert [r.contact_id for r in rewards] == [authors[1].pk, authors[0].pk]
    assert [r.pk for r in again] == [r.pk for r in rewards]
    assert Reward.objects.filter(campaign=campaign).count() == 2
    assert (balance(authors[0]), balance(authors[1]), balance(authors[2])) == (100, 100, 0)
    assert entries[2].pk not in {int(r.key.rsplit(":", 1)[1]) for r in rewards}


@pytest.mark.django_db
def test_the_contest_page_lists_entries_and_takes_a_vote():
    now = timezone.now()
    campaign = running(Type.CONTEST, CONTEST_RULES, around=now)
    author, voter = ContactFactory(), ContactFactory()
    entry = Entry.objects.create(campaign=campaign, contact=author, title="Sunset")
    client = Client()
    client.cookies["django_language"] = "en"
    token = landing_token(campaign.pk, voter.pk)

    response = client.post(f"/c/{token}/vote/", {"entry": entry.pk}, follow=True)

    page = response.content.decode()
    assert "Your vote for “Sunset” counts" in page
    assert "1 vote" in page
    assert "You voted for “Sunset” today." in page
    own_page = client.get(f"/c/{landing_token(campaign.pk, author.pk)}/").content.decode()
    assert 'name="entry"' not in own_page  # no vote button on one's own entry


@pytest.mark.django_db
def test_a_coupon_reward_is_given_while_the_batch_lasts():
    campaign = running(Type.CHECKIN, {**CHECKIN_RULES, "days_needed": 1})
    batch = CouponBatch.objects.create(campaign=campaign, name="满100减20", value_fen=2000, stock=1)
    campaign.rules = {**campaign.rules, "reward": {"coupon_batch": batch.pk}}
    campaign.save(update_fields=["rules"])
    first, second = ContactFactory(), ContactFactory()

    assert "reward given" in engagement.checkin(campaign, first, {}, now=NOW)
    message = engagement.checkin(campaign, second, {}, now=NOW)

    assert "could not be given" in message
    reward = Reward.objects.get(campaign=campaign)
    assert (reward.contact_id, reward.kind, reward.coupon.contact_id) == (
        first.pk,
        Reward.Kind.COUPON,
        first.pk,
    )
    assert Rejection.objects.get(campaign=campaign, contact=second).reason == Reason.SOLD_OUT
    # The second customer's check-in stands; the reward waits for stock.
    assert CheckIn.objects.filter(contact=second).exists()
