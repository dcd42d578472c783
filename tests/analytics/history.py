"""A small history worked out by hand, shared by the metric and rollup tests.

The history, Shanghai time, for the period P = 2026-11-02 and 2026-11-03:

    group A                                       group B
    p1  joined 10-20, stays                       p4  joined 10-28, stays
    p2  joined 10-25, left 11-02 09:00            p5  joined 11-04 00:10 (after P in Shanghai,
    p3  joined 11-02 10:00, left 11-03 20:00,         though 11-03 in UTC)
        back 11-03 21:00, stays
    p4  joined 11-03 23:30, left 11-04 10:00
    p6  joined 10-01, left 10-31

Members of A at the start of P: p1, p2. Joins in P: p3 (twice), p4. At the end: p1, p3, p4.
Every join and leave is in the event log too, as the product records them.
"""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from analytics.events import record
from analytics.metrics import Groups, Period
from analytics.models import EventType
from campaigns.models import Campaign
from contacts.models import ChannelCode, Follow
from groups.models import GroupMembership
from tests.factories import ContactFactory, GroupFactory, StaffFactory

SH = ZoneInfo("Asia/Shanghai")
P = Period(date(2026, 11, 2), date(2026, 11, 3))


def at(month, day, hour=12, minute=0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SH)


def build_history() -> tuple[dict, list[dict]]:
    """Create the people, groups, memberships and follows; return the world and the history's
    events as keyword arguments for `analytics.events.record`, in time order, unrecorded."""
    staff = StaffFactory()
    a, b, empty = GroupFactory(owner=staff), GroupFactory(owner=staff), GroupFactory(owner=staff)
    p = {n: ContactFactory(name=f"p{n}") for n in range(1, 7)}
    channel = ChannelCode.objects.create(name="门店海报", kind=ChannelCode.Kind.GROUP)
    events = []

    def event(type, when, person=None, group=None, **fields):
        events.append(
            dict(
                type=type,
                occurred_at=when,
                key=f"t{len(events)}",
                contact=p[person] if person else None,
                group=group,
                **fields,
            )
        )

    def stay(group, person, joined, left=None, via=None):
        GroupMembership.objects.create(
            group=group, contact=p[person], joined_at=joined, left_at=left, channel=via
        )
        event(EventType.GROUP_JOINED, joined, person, group, channel=via)
        if left:
            event(EventType.GROUP_LEFT, left, person, group)

    stay(a, 1, at(10, 20))
    stay(a, 2, at(10, 25), at(11, 2, 9))
    stay(a, 3, at(11, 2, 10), at(11, 3, 20), via=channel)
    stay(a, 3, at(11, 3, 21))
    stay(a, 4, at(11, 3, 23, 30), at(11, 4, 10), via=channel)
    stay(a, 6, at(10, 1), at(10, 31))
    stay(b, 4, at(10, 28))
    stay(b, 5, at(11, 4, 0, 10), via=channel)

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

    event(EventType.CHANNEL_EXPOSURE, at(11, 2, 9), amount=200, channel=channel)
    event(EventType.CHANNEL_EXPOSURE, at(11, 4, 9), amount=50, channel=channel)

    for person in (1, 2, 6):
        Follow.objects.create(contact=p[person], staff=staff, added_at=at(10, 1))
    Follow.objects.filter(contact=p[6]).update(deleted_by_contact_at=at(10, 31))
    Follow.objects.create(contact=p[5], staff=staff, added_at=at(11, 3))
    Follow.objects.filter(contact=p[2]).update(deleted_by_contact_at=at(11, 3, 10))
    event(EventType.CONTACT_BLOCKED, at(11, 3, 10), 2, staff=staff)

    events.sort(key=lambda e: e["occurred_at"])
    world = {
        "A": Groups((a.pk,)),
        "B": Groups((b.pk,)),
        "empty": Groups((empty.pk,)),
        "groups": {"A": a, "B": b, "empty": empty},
        "people": p,
        "campaign": campaign,
        "idle": idle,
        "channel": channel,
        "staff": staff,
    }
    return world, events


def build_recorded_history() -> dict:
    """The history with all its events in the log."""
    world, events = build_history()
    for fields in events:
        record(**fields)
    return world
