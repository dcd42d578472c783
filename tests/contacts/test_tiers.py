"""Member tiers follow paid orders up and down, and every move is in the event log."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from analytics.events import record
from analytics.models import Event, EventType
from contacts.lifecycle import contact_order_totals, order_totals, orders_q
from contacts.models import Contact, MemberTier
from contacts.tiers import tier_for, tier_update, tiers_refresh
from scrm.models import Role, User
from tests.factories import ContactFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=SHANGHAI)

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiers():
    """The product's example: VIP1 on joining, VIP2 after a first order of at least 1 yuan,
    VIP3 with 3 orders and ¥1,000 spent."""
    return {
        "VIP1": MemberTier.objects.create(name="VIP1", level=1, rights=["入群福利"]),
        "VIP2": MemberTier.objects.create(
            name="VIP2", level=2, min_orders=1, min_order_fen=100, rights=["会员日 9 折"]
        ),
        "VIP3": MemberTier.objects.create(
            name="VIP3", level=3, min_orders=3, min_spend_fen=100_000, rights=["专属顾问"]
        ),
    }


def paid(contact: Contact, order_no: str, fen: int, at: datetime = T0) -> None:
    record(
        type=EventType.ORDER_PAID,
        occurred_at=at,
        key=f"test:paid:{order_no}",
        contact=contact,
        amount=fen,
        payload={"order_no": order_no},
    )


def refunded(contact: Contact, order_no: str, fen: int, at: datetime = T0) -> None:
    record(
        type=EventType.ORDER_REFUNDED,
        occurred_at=at,
        key=f"test:refund:{order_no}:{fen}",
        contact=contact,
        amount=fen,
        payload={"order_no": order_no},
    )


def tier_events(contact: Contact) -> list[dict]:
    return [
        e.payload
        for e in Event.objects.filter(type=EventType.TIER_CHANGED, contact=contact).order_by("id")
    ]


def test_a_contact_without_orders_reaches_the_tier_without_thresholds(tiers):
    contact = ContactFactory()

    assert tier_for(contact) == tiers["VIP1"]
    assert tier_update(contact, occurred_at=T0, key="joined") is True

    contact.refresh_from_db()
    assert contact.tier == tiers["VIP1"]
    assert contact.tier.rights == ["入群福利"]
    assert tier_events(contact) == [{"from": None, "to": "VIP1", "from_level": None, "to_level": 1}]


def test_a_first_order_of_one_yuan_lifts_a_contact_to_vip2_and_99_fen_does_not(tiers):
    contact = ContactFactory(tier=tiers["VIP1"])
    paid(contact, "A1", 99)

    assert tier_update(contact, occurred_at=T0, key="order:A1") is False
    assert tier_for(contact) == tiers["VIP1"]

    paid(contact, "A2", 100)
    assert tier_update(contact, occurred_at=T0, key="order:A2") is True

    contact.refresh_from_db()
    assert contact.tier == tiers["VIP2"]
    assert tier_events(contact) == [{"from": "VIP1", "to": "VIP2", "from_level": 1, "to_level": 2}]


def test_vip3_needs_every_one_of_its_thresholds(tiers):
    three_small_orders = ContactFactory()
    for n in range(3):
        paid(three_small_orders, f"S{n}", 1_000)
    one_big_order = ContactFactory()
    paid(one_big_order, "B1", 150_000)
    both = ContactFactory()
    for n in range(3):
        paid(both, f"C{n}", 40_000)

    assert tier_for(three_small_orders) == tiers["VIP2"]
    assert tier_for(one_big_order) == tiers["VIP2"]
    assert tier_for(both) == tiers["VIP3"]


def test_a_refund_takes_the_tier_back_down_and_the_move_is_recorded(tiers):
    contact = ContactFactory(tier=tiers["VIP1"])
    paid(contact, "A1", 500)
    tier_update(contact, occurred_at=T0, key="order:A1")
    assert Contact.objects.get(pk=contact.pk).tier == tiers["VIP2"]

    # A partial refund leaving less than 1 yuan: the order no longer reaches VIP2.
    refunded(contact, "A1", 450, at=T0 + timedelta(days=1))
    tier_update(contact, occurred_at=T0 + timedelta(days=1), key="refund:A1")

    contact.refresh_from_db()
    assert contact.tier == tiers["VIP1"]
    assert [(e["from"], e["to"]) for e in tier_events(contact)] == [
        ("VIP1", "VIP2"),
        ("VIP2", "VIP1"),
    ]


def test_a_fully_refunded_order_no_longer_counts_towards_vip3(tiers):
    contact = ContactFactory()
    for n in range(3):
        paid(contact, f"A{n}", 50_000)
    tier_update(contact, occurred_at=T0, key="orders")
    assert Contact.objects.get(pk=contact.pk).tier == tiers["VIP3"]

    refunded(contact, "A2", 50_000)
    tier_update(contact, occurred_at=T0, key="refund:A2")

    assert Contact.objects.get(pk=contact.pk).tier == tiers["VIP2"]


def test_checking_again_with_the_same_key_records_no_second_move(tiers):
    contact = ContactFactory()
    paid(contact, "A1", 100)

    assert tier_update(contact, occurred_at=T0, key="order:A1") is True
    assert tier_update(contact, occurred_at=T0, key="order:A1") is False

    assert len(tier_events(contact)) == 1


def test_without_any_tier_configured_a_contact_has_none(db):
    contact = ContactFactory()

    assert tier_for(contact) is None
    assert tier_update(contact, occurred_at=T0, key="k") is False


def test_changing_thresholds_re_tiers_every_contact_at_once(tiers):
    small = ContactFactory(tier=tiers["VIP1"])
    paid(small, "S1", 200)
    big = ContactFactory(tier=tiers["VIP1"])
    paid(big, "B1", 5_000)
    newcomer = ContactFactory()

    assert tiers_refresh(occurred_at=T0, key="first") == 3
    assert {c.pk: c.tier.name for c in Contact.objects.select_related("tier")} == {
        small.pk: "VIP2",
        big.pk: "VIP2",
        newcomer.pk: "VIP1",
    }

    MemberTier.objects.filter(name="VIP2").update(min_order_fen=1_000)
    assert tiers_refresh(occurred_at=T0, key="second") == 1
    assert Contact.objects.get(pk=small.pk).tier == tiers["VIP1"]
    assert tier_events(small)[-1] == {"from": "VIP2", "to": "VIP1", "from_level": 2, "to_level": 1}
    # Nothing left to move: a second run changes and records nothing.
    assert tiers_refresh(occurred_at=T0, key="third") == 0


def test_managers_define_tiers_with_rights_and_others_only_read_them(client, tiers):
    operator = User.objects.create_user("op", role=Role.OPERATOR)
    manager = User.objects.create_user("boss", role=Role.ADMIN)

    client.force_login(operator)
    listed = client.get("/api/tiers/").json()["results"]
    assert [(t["name"], t["rights"]) for t in listed] == [
        ("VIP1", ["入群福利"]),
        ("VIP2", ["会员日 9 折"]),
        ("VIP3", ["专属顾问"]),
    ]
    new_tier = {"name": "VIP4", "level": 4, "min_spend_fen": 500_000, "rights": ["年度礼盒"]}
    assert client.post("/api/tiers/", new_tier, content_type="application/json").status_code == 403

    client.force_login(manager)
    created = client.post("/api/tiers/", new_tier, content_type="application/json")
    assert created.status_code == 201
    assert MemberTier.objects.get(name="VIP4").rights == ["年度礼盒"]
    bad = client.post(
        "/api/tiers/",
        {"name": "VIP5", "level": 5, "rights": "all"},
        content_type="application/json",
    )
    assert bad.status_code == 400 and "rights" in bad.json()


def test_order_facts_agree_whether_read_per_contact_or_as_a_set(tiers):
    contact = ContactFactory()
    paid(contact, "A1", 500, at=T0)
    paid(contact, "A2", 3_000, at=T0 + timedelta(days=1))
    refunded(contact, "A2", 1_000, at=T0 + timedelta(days=2))
    paid(contact, "A3", 800, at=T0 + timedelta(days=3))
    refunded(contact, "A3", 800, at=T0 + timedelta(days=4))

    totals = contact_order_totals(contact)
    row = order_totals(contact_id=contact.pk).get()

    assert (totals.orders, totals.spend_fen, totals.biggest_fen) == (2, 2_500, 2_000)
    assert (row["orders"], row["spend_fen"], row["biggest_fen"]) == (2, 2_500, 2_000)
    assert totals.last_order_at == row["last_order_at"] == T0 + timedelta(days=1)
    wanted = [("orders", "==", 2), ("spend_fen", "==", 2_500), ("biggest_fen", "==", 2_000)]
    assert Contact.objects.filter(orders_q(wanted)).get() == contact
    # Before the refund of A2 landed, its whole 3,000 fen counted.
    before = T0 + timedelta(days=1, hours=1)
    assert contact_order_totals(contact, until=before).spend_fen == 3_500
    assert order_totals(contact_id=contact.pk, until=before).get()["spend_fen"] == 3_500
