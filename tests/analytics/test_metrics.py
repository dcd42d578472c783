"""Every metric against a small history worked out by hand (PRODUCT.md, "Metrics").

The history, Shanghai time, for the period P = 2026-11-02 and 2026-11-03:

    group A                                       group B
    p1  joined 10-20, stays                       p4  joined 10-28, stays
    p2  joined 10-25, left 11-02 09:00            p5  joined 11-04 00:10 (after P in Shanghai,
    p3  joined 11-02 10:00, left 11-03 20:00,         though 11-03 in UTC)
        back 11-03 21:00, stays
    p4  joined 11-03 23:30, left 11-04 10:00
    p6  joined 10-01, left 10-31

Members of A at the start of P: p1, p2. Joins in P: p3 (twice), p4. At the end: p1, p3, p4.
"""

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from analytics import metrics
from analytics.events import record
from analytics.metrics import Groups, Period, Ratio
from analytics.models import EventType
from campaigns.models import Campaign
from contacts.models import ChannelCode, Follow
from groups.models import GroupMembership
from tests.factories import ContactFactory, GroupFactory, StaffFactory

SH = ZoneInfo("Asia/Shanghai")
P = Period(date(2026, 11, 2), date(2026, 11, 3))


def at(month, day, hour=12, minute=0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SH)


@pytest.fixture
def world(db):
    staff = StaffFactory()
    a, b, empty = GroupFactory(owner=staff), GroupFactory(owner=staff), GroupFactory(owner=staff)
    p = {n: ContactFactory(name=f"p{n}") for n in range(1, 7)}

    def stay(group, person, joined, left=None):
        GroupMembership.objects.create(
            group=group, contact=p[person], joined_at=joined, left_at=left
        )

    stay(a, 1, at(10, 20))
    stay(a, 2, at(10, 25), at(11, 2, 9))
    stay(a, 3, at(11, 2, 10), at(11, 3, 20))
    stay(a, 3, at(11, 3, 21))
    stay(a, 4, at(11, 3, 23, 30), at(11, 4, 10))
    stay(a, 6, at(10, 1), at(10, 31))
    stay(b, 4, at(10, 28))
    stay(b, 5, at(11, 4, 0, 10))

    n = iter(range(1000))

    def event(type, when, person=None, group=None, **fields):
        record(
            type=type,
            occurred_at=when,
            key=f"t{next(n)}",
            contact=p[person] if person else None,
            group=group,
            **fields,
        )

    # Speech in A: 11-02 p1 three messages in one row, p2 one before leaving; 11-03 p3 two;
    # p1 at 00:30 on 11-04 (outside P though 11-03 in UTC).
    event(EventType.MESSAGE, at(11, 2, 8), 1, a, amount=3)
    event(EventType.MESSAGE, at(11, 2, 8, 30), 2, a)
    event(EventType.MESSAGE, at(11, 3, 12), 3, a)
    event(EventType.MESSAGE, at(11, 3, 12, 5), 3, a)
    event(EventType.MESSAGE, at(11, 4, 0, 30), 1, a)

    campaign = Campaign.objects.create(name="双11", type=Campaign.Type.COUPON)
    idle = Campaign.objects.create(name="无成本", type=Campaign.Type.COUPON)

    def order(person, when, fen, no, **fields):
        event(EventType.ORDER_PAID, when, person, amount=fen, payload={"order_no": no}, **fields)

    order(1, at(11, 2, 12), 10_000, "O1", campaign=campaign)  # p1, member of A
    order(1, at(11, 3, 12), 5_000, "O2")
    event(EventType.ORDER_REFUNDED, at(11, 3, 13), 1, amount=5_000, payload={"order_no": "O2"})
    order(1, at(11, 3, 14), 4_000, "O3")
    order(3, at(11, 3, 20, 30), 3_000, "O4")  # p3 between leaving A and coming back
    order(4, at(11, 3, 12), 2_000, "O5")  # p4, then only in B
    # 3,000 fen over 10-31 … 11-04 (5 days): 1,200 of it falls in P's 2 days.
    event(
        EventType.COST_RECORDED,
        at(10, 31, 0),
        amount=3_000,
        campaign=campaign,
        payload={"period_start": "2026-10-31", "period_end": "2026-11-04"},
    )

    event(EventType.REFERRAL, at(11, 2, 15), 1, payload={"referred_contact_id": p[5].pk})

    channel = ChannelCode.objects.create(name="门店海报", kind=ChannelCode.Kind.GROUP)
    event(EventType.CHANNEL_EXPOSURE, at(11, 2, 9), amount=200, channel=channel)
    event(EventType.CHANNEL_EXPOSURE, at(11, 4, 9), amount=50, channel=channel)
    event(EventType.GROUP_JOINED, at(11, 2, 10), 3, a, channel=channel)
    event(EventType.GROUP_JOINED, at(11, 3, 23, 30), 4, a, channel=channel)
    event(EventType.GROUP_JOINED, at(11, 4, 0, 10), 5, b, channel=channel)

    for person in (1, 2, 6):
        Follow.objects.create(contact=p[person], staff=staff, added_at=at(10, 1))
    Follow.objects.filter(contact=p[6]).update(deleted_by_contact_at=at(10, 31))
    Follow.objects.create(contact=p[5], staff=staff, added_at=at(11, 3))
    Follow.objects.filter(contact=p[2]).update(deleted_by_contact_at=at(11, 3, 10))
    event(EventType.CONTACT_BLOCKED, at(11, 3, 10), 2, staff=staff)

    return {
        "A": Groups((a.pk,)),
        "empty": Groups((empty.pk,)),
        "campaign": campaign,
        "idle": idle,
        "channel": channel,
        "staff": staff,
    }


def test_members_and_leavers_count_people_once(world):
    A = world["A"]
    assert metrics.members_at(A, P.start) == 2
    assert metrics.members_at(A, P.end) == 3
    assert metrics.members_during(A, P) == 4  # p1, p2, p3 (joined twice), p4
    # p2 left; p3 left and came back within P, so is no loss.
    assert metrics.leave_rate(A, P) == Ratio(1, 4)
    assert metrics.retention(A, P) == Ratio(1, 2)  # of p1, p2 only p1 is still there


def test_the_shanghai_day_decides_what_falls_in_the_period(world):
    everyone = metrics.ALL_GROUPS
    # p5 joined B at 00:10 on 11-04 Shanghai time (16:10 UTC on 11-03): after P.
    assert metrics.members_during(everyone, P) == 4
    assert metrics.join_rate(world["channel"].pk, P) == Ratio(2, 200)


def test_daily_speech_metrics_average_the_days(world):
    A = world["A"]
    interaction = metrics.interaction_rate(A, P)
    assert interaction.days == {date(2026, 11, 2): Ratio(2, 2), date(2026, 11, 3): Ratio(1, 3)}
    assert interaction.value == (1 + Decimal(1) / 3) / 2
    per_member = metrics.messages_per_member(A, P)
    assert per_member.days == {date(2026, 11, 2): Ratio(4, 2), date(2026, 11, 3): Ratio(2, 3)}
    assert per_member.value == (2 + Decimal(2) / 3) / 2


def test_orders_belong_to_a_group_while_the_buyer_is_a_member(world):
    A, everyone = world["A"], metrics.ALL_GROUPS
    # A's orders: p1's O1 and O3 (O2 fully refunded; p3 bought between stays; p4 in B only).
    assert metrics.conversion(A, P) == Ratio(1, 4)
    assert metrics.average_order_value(A, P) == Ratio(14_000, 1)
    assert metrics.repurchase_rate(A, P) == Ratio(1, 1)
    # All groups add p4's O5, bought as a member of B.
    assert metrics.conversion(everyone, P) == Ratio(2, 4)
    assert metrics.average_order_value(everyone, P) == Ratio(16_000, 2)
    assert metrics.repurchase_rate(everyone, P) == Ratio(1, 2)


def test_roi_spreads_a_cost_over_its_days(world):
    assert metrics.roi(P, campaign=world["campaign"].pk) == Ratio(10_000, Decimal(1_200))
    undefined = metrics.roi(P, campaign=world["idle"].pk)
    assert undefined.value is None and str(undefined) == "—"


def test_referral_cohort_and_block_rates(world):
    A = world["A"]
    # Active in A: p1, p2, p3 spoke (p1 also ordered); p1 brought someone.
    assert metrics.referral_rate(A, P) == Ratio(1, 3)
    # Joined A on 11-03: p3 (back) and p4; p4 left on 11-04.
    assert metrics.cohort_retention(A, date(2026, 11, 3), 0) == Ratio(2, 2)
    assert metrics.cohort_retention(A, date(2026, 11, 3), 1) == Ratio(1, 2)
    # Open follows at the start: p1, p2; p2 deleted the staff member in P.
    assert metrics.block_rate(P) == Ratio(1, 2)
    assert metrics.block_rate(P, staff=world["staff"].pk) == Ratio(1, 2)


def test_a_zero_denominator_is_undefined_never_zero(world):
    empty = world["empty"]
    assert metrics.leave_rate(empty, P).value is None
    assert metrics.conversion(empty, P).value is None
    assert metrics.interaction_rate(empty, P).value is None
    assert metrics.retention(empty, P).value is None
