"""Cohort triangles, lifecycle weeks, the customer-type split, RFM and lifetime value."""

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from analytics.activity import activity_rebuild
from analytics.cohorts import join_cohorts, lifecycle_weeks
from analytics.customers import channel_values, lifetime_value, rfm_layers, type_split
from analytics.events import record
from analytics.metrics import ALL_GROUPS, Groups, Ratio
from analytics.models import EventType
from contacts.models import ChannelCode
from groups.models import GroupMembership
from scrm.models import Role, User
from tests.contacts.test_contact_list import order
from tests.factories import ContactFactory, GroupFactory, StaffFactory

SH = ZoneInfo("Asia/Shanghai")
pytestmark = pytest.mark.django_db


def at(month, day, hour=12) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=SH)


def test_a_weekly_join_cohort_triangle():
    group = GroupFactory(owner=StaffFactory())
    people = ContactFactory.create_batch(5)

    def stay(person, joined, left=None):
        GroupMembership.objects.create(group=group, contact=person, joined_at=joined, left_at=left)

    # Week of 11-02 (Mon): three join; one leaves in week +1, one in week +2.
    stay(people[0], at(11, 2))
    stay(people[1], at(11, 3), at(11, 12))
    stay(people[2], at(11, 8, 23), at(11, 20))
    # Week of 11-09: one joins; a member from before 11-02 rejoins: no new cohort.
    stay(people[3], at(11, 10))
    stay(people[4], at(10, 1), at(10, 5))
    stay(people[4], at(11, 11))

    activity_rebuild()  # every group's triangle reads each person's stays from there
    window = dict(first=date(2026, 11, 2), last=date(2026, 11, 15), horizon=3, now=at(11, 24))
    rows = join_cohorts(ALL_GROUPS, **window)  # now: Tuesday of the week of 11-23
    # The one group as a slice of its own, read from the memberships: the same triangle.
    assert join_cohorts(Groups((group.pk,)), **window) == rows

    assert [(r.start, r.size) for r in rows] == [(date(2026, 11, 2), 3), (date(2026, 11, 9), 1)]
    assert rows[0].retained == [Ratio(3, 3), Ratio(2, 3), Ratio(1, 3), None]
    assert rows[1].retained == [Ratio(1, 1), Ratio(1, 1), None, None]


def test_lifecycle_weeks_tell_new_returning_resurrected_and_dormant():
    a, b, c = (ContactFactory(first_added_at=at(10, 1)) for _ in range(3))
    d = ContactFactory(first_added_at=at(11, 10))
    group = GroupFactory(owner=StaffFactory())
    n = iter(range(100))

    def spoke(person, when):
        record(
            type=EventType.MESSAGE,
            occurred_at=when,
            key=f"m{next(n)}",
            contact=person,
            group=group,
        )

    spoke(a, at(10, 20)), spoke(a, at(11, 3)), spoke(a, at(11, 10))  # returning in 11-09
    spoke(b, at(10, 20)), spoke(b, at(11, 11))  # quiet 11-02 week: resurrected in 11-09
    spoke(c, at(11, 4))  # active 11-02 week, quiet 11-09: dormant in 11-09
    spoke(d, at(11, 12))
    activity_rebuild()  # the weeks read who was active from there

    [week] = lifecycle_weeks(first=date(2026, 11, 9), last=date(2026, 11, 15))

    assert (week.week, week.new, week.returning, week.resurrected, week.dormant) == (
        date(2026, 11, 9),
        1,
        1,
        1,
        1,
    )


def test_the_type_split_counts_every_customer_once_and_links_to_the_list():
    manager = User.objects.create_user("boss", password="x", role=Role.ADMIN)
    ContactFactory.create_batch(4)  # no orders: low-need

    split = {s.type: s for s in type_split(user=manager)}

    assert split["low_need"].count == 4 and split["low_need"].share == Ratio(4, 4)
    assert sum(s.count for s in split.values()) == 4
    assert split["loyal"].share.value == 0
    assert split["low_need"].list_url == "/contacts/?customer_type=low_need"


def test_lifetime_value_is_revenue_minus_the_cost_of_acquiring():
    # The articles' example: acquired for 30, buys 100 → 70; buys again → 170.
    channel = ChannelCode.objects.create(name="地推", kind=ChannelCode.Kind.STAFF)
    buyer = ContactFactory(source_channel=channel)
    record(
        type=EventType.COST_RECORDED,
        occurred_at=at(10, 1),
        key="cost",
        channel=channel,
        amount=3_000,
        payload={"period_start": "2026-10-01", "period_end": "2026-10-01"},
    )
    record(
        type=EventType.ORDER_PAID,
        occurred_at=at(10, 2),
        key="o1",
        contact=buyer,
        amount=10_000,
        payload={"order_no": "A1"},
    )
    assert lifetime_value(buyer.pk) == Decimal(7_000)
    record(
        type=EventType.ORDER_PAID,
        occurred_at=at(10, 9),
        key="o2",
        contact=buyer,
        amount=10_000,
        payload={"order_no": "A2"},
    )
    assert lifetime_value(buyer.pk) == Decimal(17_000)

    [value] = [v for v in channel_values() if v.channel_id == channel.pk]
    assert value.acquisition_cost_fen == Ratio(Decimal(3_000), 1)
    assert value.lifetime_value_fen == Ratio(Decimal(17_000), 1)
    [cell] = rfm_layers()
    assert (cell.contacts, cell.revenue_fen) == (1, 20_000)


def test_buyers_who_are_alike_share_their_rfm_quintiles():
    # Four buyers with one ¥10 order each the same day: nothing sets one above another.
    paid = datetime(2026, 10, 9, 12, tzinfo=SH)
    for _ in range(4):
        order(ContactFactory(), 1_000, paid)
    best = ContactFactory()
    order(best, 5_000, paid + timedelta(days=1))
    order(best, 5_000, paid + timedelta(days=2))

    cells = {(c.recency, c.frequency, c.monetary): c.contacts for c in rfm_layers()}

    assert cells == {(1, 1, 1): 4, (5, 5, 5): 1}
