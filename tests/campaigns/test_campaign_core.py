"""The campaign engine under every type: states by hand and by the clock, audience, taking
part once, rewards once and within budget, every refusal recorded with its reason, the
signed landing link, reaching people through the SOP budgets, funnel and ROI."""

import threading
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client

from analytics.costs import cost_record
from analytics.events import record
from analytics.models import Event, EventType
from campaigns import services
from campaigns.models import Campaign, Order, Participation, Rejection, Reward
from campaigns.tokens import BadToken, landing_read, landing_token
from contacts.models import ContactTag, PointsEntry, Tag, TagGroup
from scrm.models import Role, User
from sop.models import ContentItem, Plan
from tests.factories import ContactFactory

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 10, 12, tzinfo=SH)


def running(**fields) -> Campaign:
    fields.setdefault("name", "老带新")
    fields.setdefault("type", Campaign.Type.INVITE_TASK)
    return Campaign.objects.create(
        state=Campaign.State.RUNNING,
        starts_at=NOW - timedelta(days=1),
        ends_at=NOW + timedelta(days=7),
        **fields,
    )


@pytest.mark.django_db
def test_the_clock_starts_and_ends_campaigns():
    soon = Campaign.objects.create(
        name="下周",
        type=Campaign.Type.CHECKIN,
        state=Campaign.State.SCHEDULED,
        starts_at=NOW + timedelta(hours=1),
        ends_at=NOW + timedelta(days=3),
    )
    assert services.campaigns_tick(NOW) == (0, 0)
    assert services.campaigns_tick(NOW + timedelta(hours=1)) == (1, 0)
    soon.refresh_from_db()
    assert soon.state == Campaign.State.RUNNING
    assert services.campaigns_tick(NOW + timedelta(days=3)) == (0, 1)
    soon.refresh_from_db()
    assert soon.state == Campaign.State.ENDED


@pytest.mark.django_db
def test_an_ended_campaign_cannot_be_started_again():
    campaign = running()
    services.campaign_move(campaign, Campaign.State.ENDED, now=NOW)
    with pytest.raises(ValidationError) as error:
        services.campaign_move(campaign, Campaign.State.RUNNING, now=NOW)
    assert "state" in error.value.message_dict


@pytest.mark.django_db
def test_joining_twice_is_one_participation_and_one_event():
    campaign, person = running(), ContactFactory()
    first = services.participate(campaign, person, now=NOW)
    again = services.participate(campaign, person, now=NOW)
    assert first.pk == again.pk
    assert Participation.objects.count() == 1
    assert Event.objects.filter(type=EventType.CAMPAIGN_JOINED).count() == 1


@pytest.mark.django_db
def test_refusals_are_recorded_with_their_reason():
    vip = Tag.objects.create(name="VIP", group=TagGroup.objects.create(name="等级"))
    campaign, outsider, insider = running(), ContactFactory(), ContactFactory()
    campaign.audience_tags.add(vip)
    ContactTag.objects.create(contact=insider, tag=vip)

    with pytest.raises(services.CampaignRefused) as refused:
        services.participate(campaign, outsider, now=NOW)
    assert refused.value.reason == Rejection.Reason.NOT_IN_AUDIENCE
    assert services.participate(campaign, insider, now=NOW).contact == insider

    with pytest.raises(services.CampaignRefused):
        services.participate(campaign, ContactFactory(), now=NOW + timedelta(days=8))
    # Joining by one's own link: taking part is fine, the referral is not.
    me = ContactFactory()
    campaign.audience_tags.clear()
    assert services.participate(campaign, me, referrer=me, now=NOW).referrer is None
    reasons = sorted(Rejection.objects.values_list("reason", flat=True))
    assert reasons == ["not_in_audience", "not_running", "self_referral"]


@pytest.mark.django_db
def test_a_reward_is_given_once_and_points_reach_the_ledger():
    campaign, person = running(), ContactFactory()
    participation = services.participate(campaign, person, now=NOW)
    assert services.complete(participation, now=NOW) is True
    assert services.complete(participation, now=NOW) is False
    for _ in range(2):
        services.reward(campaign, person, kind=Reward.Kind.POINTS, amount=50, key="done", now=NOW)
    person.refresh_from_db()
    participation.refresh_from_db()
    assert person.points_balance == 50
    assert PointsEntry.objects.filter(contact=person).count() == 1
    assert participation.state == Participation.State.REWARDED
    assert Event.objects.filter(type=EventType.CAMPAIGN_REWARDED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_money_rewards_never_exceed_the_budget_even_at_once():
    campaign = running(budget_fen=5_000)
    people = ContactFactory.create_batch(8)
    given, refused = [], []

    def claim(person):
        try:
            given.append(
                services.reward(
                    campaign, person, kind=Reward.Kind.GIFT, amount=1_000, key=f"gift:{person.pk}"
                )
            )
        except services.CampaignRefused as error:
            refused.append(error.reason)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(given) == 5 and services.money_spent(campaign) == 5_000
    assert refused == [Rejection.Reason.BUDGET_SPENT] * 3
    assert Rejection.objects.filter(reason=Rejection.Reason.BUDGET_SPENT).count() == 3


@pytest.mark.django_db
def test_the_landing_link_is_signed():
    campaign, person = running(), ContactFactory()
    token = landing_token(campaign.pk, person.pk)
    assert landing_read(token) == (campaign.pk, person.pk)
    forged = token.replace(token[-3:], "abc") if not token.endswith("abc") else token[:-3] + "xyz"
    with pytest.raises(BadToken):
        landing_read(forged)
    client = Client()
    assert client.get(f"/c/{forged}/").status_code == 404
    assert client.get(f"/c/{campaign.pk}-{person.pk}/").status_code == 404


@pytest.mark.django_db
def test_announcements_go_through_the_sop_engine():
    campaign, people = running(), ContactFactory.create_batch(2)
    content = ContentItem.objects.create(
        title="开团啦", purpose=ContentItem.Purpose.ACTIVATION, text="老朋友带新朋友，各得积分"
    )
    plan = services.announce(
        campaign, content=content, send_at=NOW + timedelta(hours=1), contacts=people
    )
    assert plan.kind == Plan.Kind.BROADCAST and plan.campaign == campaign
    assert set(plan.contacts.all()) == set(people)


@pytest.mark.django_db
def test_funnel_and_roi_on_a_hand_made_case():
    manager = User.objects.create_user("boss", role=Role.ADMIN)
    campaign = running()
    reached, joined, done, rewarded = ContactFactory.create_batch(4)
    record(
        type=EventType.CAMPAIGN_REACHED,
        occurred_at=NOW,
        key="reach-1",
        contact=reached,
        campaign=campaign,
    )
    for person in (joined, done, rewarded):
        services.participate(campaign, person, now=NOW)
    for person in (done, rewarded):
        services.complete(Participation.objects.get(contact=person), now=NOW)
    services.reward(campaign, rewarded, kind=Reward.Kind.POINTS, amount=10, key="r", now=NOW)
    # One paid order of ¥250 attributed to the campaign; ¥100 of cost recorded against it.
    Order.objects.create(
        order_no="A1", contact=rewarded, amount_fen=25_000, ordered_at=NOW, campaign=campaign
    )
    record(
        type=EventType.ORDER_PAID,
        occurred_at=NOW,
        key="order-A1",
        contact=rewarded,
        campaign=campaign,
        amount=25_000,
        payload={"order_no": "A1"},
    )
    cost_record(
        target_kind="campaign",
        target_id=campaign.pk,
        amount_fen=10_000,
        first=date(2026, 11, 9),
        last=date(2026, 11, 17),
        note="海报",
        user=manager,
    )

    funnel = {step.key: step.count for step in services.campaign_funnel(campaign)}
    assert funnel == {"reached": 4, "joined": 3, "completed": 2, "rewarded": 1, "ordered": 1}
    roi = services.campaign_roi(campaign)
    assert (roi.numerator, roi.denominator) == (25_000, 10_000)
    assert roi.value == 2.5
