"""The grouped SQL paths the customer pages take for speed give the same answers as the
slower, plainer ones: the type split (customer_type_counts) as the contact list's filter and
CustomerFacts; the value page (customer_value) as rfm_layers and channel_values."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from analytics.customers import channel_values, customer_value, rfm_layers, type_split
from analytics.events import record
from analytics.models import EventType
from contacts.filters import CustomerType
from contacts.models import ChannelCode, Contact, Follow
from contacts.selectors import contacts_visible_to, customer_facts, customer_type_counts
from scrm.models import Role, User
from tests.contacts.test_contact_list import name_set, order, refund
from tests.factories import ContactFactory, StaffFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 15, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai, mid-month


def days_ago(days: int) -> datetime:
    return NOW - timedelta(days=days)


@pytest.fixture
def customers():
    """At least one customer of each type, some turned into another by a refund."""
    low = ContactFactory(name="low-need")
    order(low, 9_900, days_ago(10))
    ContactFactory(name="never-ordered")

    loyal = ContactFactory(name="loyal")
    for days in (1, 31, 61):
        order(loyal, 2_000, days_ago(days))
    brought = ContactFactory(name="brought", referrer=loyal)
    order(brought, 9_900, days_ago(2))

    # Monthly, but their only referral's order was refunded in full: not loyal.
    monthly = ContactFactory(name="monthly-referral-refunded")
    for days in (1, 31, 61):
        order(monthly, 20_000, days_ago(days))
    refunded_referral = ContactFactory(name="refunded-referral", referrer=monthly)
    gone = order(refunded_referral, 9_900, days_ago(3))
    refund(refunded_referral, 9_900, days_ago(2), order_no=gone)

    bargain = ContactFactory(name="bargain")
    order(bargain, 2_000, days_ago(200))
    order(bargain, 3_000, days_ago(150))

    # ¥60 and ¥300, the ¥300 cut to ¥20 by a partial refund: an average under ¥50.
    cut = ContactFactory(name="bargain-after-a-partial-refund")
    order(cut, 6_000, days_ago(150))
    trimmed = order(cut, 30_000, days_ago(140))
    refund(cut, 28_000, days_ago(130), order_no=trimmed)

    need = ContactFactory(name="need-driven")
    order(need, 30_000, days_ago(200))
    order(need, 40_000, days_ago(120))

    # A repeat buyer whose second order was refunded in full: one order left, low-need.
    undone = ContactFactory(name="repeat-undone-by-refund")
    order(undone, 30_000, days_ago(20))
    refund(undone, 40_000, days_ago(5), order_no=order(undone, 40_000, days_ago(10)))

    # A refund naming order 7 as a number does not touch the order "7" (JSON values differ).
    other_kind = ContactFactory(name="refund-of-another-order-no")
    order(other_kind, 30_000, days_ago(20), order_no="7")
    order(other_kind, 40_000, days_ago(10))
    record(
        type=EventType.ORDER_REFUNDED,
        occurred_at=days_ago(5),
        key="test-refund:numeric-7",
        contact=other_kind,
        amount=30_000,
        payload={"order_no": 7},
    )
    return Contact.objects.all()


def test_the_split_counts_each_type_as_the_list_filter_and_customer_facts_do(customers):
    manager = User.objects.create_user("boss", role=Role.ADMIN)

    counts = customer_type_counts(customers, now=NOW)

    by_filter = {kind: len(name_set(manager, f"customer_type={kind}")) for kind in CustomerType}
    facts = customer_facts(customers.values_list("pk", flat=True), now=NOW)
    by_facts = Counter(f.customer_type().value for f in facts.values())
    assert counts == by_filter == {kind: by_facts[kind] for kind in CustomerType}
    assert counts == {
        "low_need": 5,  # low-need, never-ordered, brought, refunded-referral, repeat-undone…
        "loyal": 1,
        "bargain": 2,
        "need_driven": 1,
        "unclassified": 2,  # monthly-referral-refunded, refund-of-another-order-no
    }
    split = {s.type: s.count for s in type_split(user=manager, now=NOW)}
    assert split == counts


def test_an_operator_split_counts_only_their_own_customers(customers):
    operator = User.objects.create_user("xiaowang", role=Role.OPERATOR)
    staff = StaffFactory(user=operator)
    for name in ("loyal", "bargain", "never-ordered"):
        Follow.objects.create(contact=customers.get(name=name), staff=staff, added_at=NOW)

    split = {s.type: s.count for s in type_split(user=operator, now=NOW)}

    assert split == {"low_need": 1, "loyal": 1, "bargain": 1, "need_driven": 0, "unclassified": 0}
    assert split == customer_type_counts(contacts_visible_to(operator), now=NOW)


def test_the_value_page_gives_the_same_layers_and_channel_values_as_each_alone(customers):
    channel = ChannelCode.objects.create(name="地推", kind=ChannelCode.Kind.STAFF, state="d")
    customers.filter(name__in=["loyal", "bargain", "never-ordered"]).update(source_channel=channel)
    record(
        type=EventType.COST_RECORDED,
        occurred_at=days_ago(30),
        key="speed-cost",
        channel=channel,
        amount=3_000,
        payload={"period_start": "2026-05-01", "period_end": "2026-05-31"},
    )

    layers, values = customer_value(now=NOW)

    assert layers == rfm_layers(now=NOW)
    assert values == channel_values(now=NOW)
    assert sum(cell.contacts for cell in layers) == 9  # everyone with an order left
    [ditui] = [v for v in values if v.channel_id == channel.pk]
    assert (ditui.contacts, ditui.revenue_fen) == (3, 6_000 + 5_000)
