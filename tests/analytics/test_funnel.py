"""The funnel (exposure → join → speak → order → repurchase → refer) against a small history
worked out by hand.

Period P = 2026-11-02 and 2026-11-03, Shanghai time:

    code C (leads into A): 100 exposures in P, 30 on 11-04     code S (no group): 50 in P
    group A                                                    group B
    p1  member since 10-20; speaks twice 11-02; two orders;    p4  joins 11-02; speaks
        brings a new contact 11-03
    p2  joins 11-02 through C; speaks 11-03; one order
    p3  joins 11-03; one order, refunded in full; brings a new contact (never active)
    p5  joins 11-04 00:10 (after P); speaks 11-04
    p6  in no group: orders and brings a new contact
"""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from analytics import metrics
from analytics.activity import activity_rebuild
from analytics.events import record
from analytics.funnel import funnel, funnel_counts
from analytics.metrics import ALL_GROUPS, Groups, Period, Ratio
from analytics.models import Event, EventType, RollupWatermark
from analytics.rollups import OVERLAP_IDS, WATERMARK
from contacts.models import ChannelCode
from groups.models import GroupMembership
from tests.factories import ContactFactory, GroupFactory, StaffFactory

SH = ZoneInfo("Asia/Shanghai")
P = Period(date(2026, 11, 2), date(2026, 11, 3))


def at(month, day, hour=12, minute=0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SH)


@pytest.fixture
def history(db):
    staff = StaffFactory()
    a, b, empty = GroupFactory(owner=staff), GroupFactory(owner=staff), GroupFactory(owner=staff)
    code = ChannelCode.objects.create(name="门店海报", kind=ChannelCode.Kind.GROUP, state="c")
    a.join_codes.add(code)
    staff_code = ChannelCode.objects.create(name="导购名片", state="s")
    p = {n: ContactFactory(name=f"p{n}") for n in range(1, 7)}

    def stay(group, person, joined):
        GroupMembership.objects.create(group=group, contact=p[person], joined_at=joined)

    stay(a, 1, at(10, 20))
    stay(a, 2, at(11, 2, 10))
    stay(a, 3, at(11, 3, 9))
    stay(b, 4, at(11, 2, 11))
    stay(a, 5, at(11, 4, 0, 10))

    n = iter(range(1000))

    def event(type, when, person=None, group=None, **fields):
        record(
            type=type,
            occurred_at=when,
            key=f"funnel-{next(n)}",
            contact=p[person] if person else None,
            group=group,
            **fields,
        )

    event(EventType.CHANNEL_EXPOSURE, at(11, 2, 8), amount=100, channel=code)
    event(EventType.CHANNEL_EXPOSURE, at(11, 4, 8), amount=30, channel=code)
    event(EventType.CHANNEL_EXPOSURE, at(11, 3, 8), amount=50, channel=staff_code)
    event(EventType.GROUP_JOINED, at(11, 2, 10), 2, a, channel=code)

    event(EventType.MESSAGE, at(11, 2, 13), 1, a)
    event(EventType.MESSAGE, at(11, 2, 14), 1, a)
    event(EventType.MESSAGE, at(11, 3, 13), 2, a)
    event(EventType.MESSAGE, at(11, 2, 15), 4, b)
    event(EventType.MESSAGE, at(11, 4, 9), 5, a)

    def order(person, when, fen, no):
        event(EventType.ORDER_PAID, when, person, amount=fen, payload={"order_no": no})

    order(1, at(11, 2, 16), 9_900, "F1")
    order(1, at(11, 3, 16), 4_900, "F2")
    order(2, at(11, 3, 17), 2_000, "F3")
    order(3, at(11, 3, 18), 3_000, "F4")
    event(EventType.ORDER_REFUNDED, at(11, 3, 19), 3, amount=3_000, payload={"order_no": "F4"})
    order(6, at(11, 2, 18), 5_000, "F5")

    event(EventType.REFERRAL, at(11, 3, 20), 1, payload={"referred_contact_id": p[5].pk})
    event(EventType.REFERRAL, at(11, 3, 21), 3, payload={"referred_contact_id": p[5].pk})
    event(EventType.REFERRAL, at(11, 3, 22), 6, payload={"referred_contact_id": p[5].pk})
    return {"A": Groups((a.pk,)), "empty": Groups((empty.pk,))}


def test_the_funnel_counts_each_step_over_every_group(history):
    assert funnel_counts(ALL_GROUPS, P) == {
        "exposures": 150,  # both codes, only inside P
        "joins": 3,  # p2, p3, p4 (p5 came after P)
        "speakers": 3,  # p1, p2, p4
        "buyers": 2,  # p1, p2: p3's order was refunded, p6 is in no group
        "repeat_buyers": 1,  # p1
        "referrers": 1,  # p1: p3 was never active, p6 is no member
    }


def test_a_slice_counts_only_its_groups_and_the_codes_leading_into_them(history):
    assert funnel_counts(history["A"], P) == {
        "exposures": 100,
        "joins": 2,
        "speakers": 2,
        "buyers": 2,
        "repeat_buyers": 1,
        "referrers": 1,
    }


def test_the_funnel_agrees_with_the_metrics(history):
    counts = funnel_counts(ALL_GROUPS, P)
    assert counts["buyers"] == metrics.conversion(ALL_GROUPS, P).numerator
    assert counts["repeat_buyers"] == metrics.repurchase_rate(ALL_GROUPS, P).numerator
    assert counts["referrers"] == metrics.referral_rate(ALL_GROUPS, P).numerator


def test_each_step_carries_its_share_of_the_step_before_and_of_exposures(history):
    steps = funnel(ALL_GROUPS, P)

    assert [s.key for s in steps] == [
        "exposures",
        "joins",
        "speakers",
        "buyers",
        "repeat_buyers",
        "referrers",
    ]
    assert steps[0].from_previous is None and steps[0].from_first is None
    assert steps[1].from_previous == Ratio(3, 150)
    assert steps[4].from_previous == Ratio(1, 2)
    assert steps[5].from_first == Ratio(1, 150)


def test_an_empty_slice_has_zero_counts_and_undefined_shares(history):
    steps = funnel(history["empty"], P)

    assert [s.count for s in steps] == [0] * 6
    assert all(s.from_previous.value is None for s in steps[1:])


def _refreshed_up_to(event_id):
    """As if the rollups' refresh had read the log up to `event_id`."""
    activity_rebuild()
    RollupWatermark.objects.update_or_create(name=WATERMARK, defaults={"event_id": event_id})


def test_every_group_counts_the_same_speakers_from_the_refreshed_activity(history):
    expected = funnel_counts(ALL_GROUPS, P)
    # Far enough past the log that only the customers' spoken days are read, no message.
    _refreshed_up_to(Event.objects.latest("id").pk + OVERLAP_IDS)

    assert funnel_counts(ALL_GROUPS, P) == expected
    assert expected["speakers"] == 3  # p1, p2, p4: not p5 (11-04), not a non-member


def test_messages_after_the_last_refresh_still_count(history):
    _refreshed_up_to(Event.objects.latest("id").pk)
    p3 = GroupMembership.objects.get(contact__name="p3")  # joined A 11-03, never spoke

    record(type=EventType.MESSAGE, occurred_at=at(11, 3, 23), key="late", contact=p3.contact)
    assert funnel_counts(ALL_GROUPS, P)["speakers"] == 3  # not in a group: not speech there

    record(
        type=EventType.MESSAGE,
        occurred_at=at(11, 3, 23),
        key="later",
        contact=p3.contact,
        group=p3.group,
    )
    assert funnel_counts(ALL_GROUPS, P)["speakers"] == 4
