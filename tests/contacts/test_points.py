"""Points are earned once per fact, within daily caps, and never spent below zero, even by
concurrent redemptions; the ledger shows operators only their own customers."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from analytics.models import Event, EventType
from contacts.models import Contact, Follow, MallItem, PointsEntry, PointsRule, Redemption
from contacts.points import (
    NotEnoughPoints,
    OutOfStock,
    PointsError,
    mall_redeem,
    points_adjust,
    points_earn,
    points_spend,
)
from scrm.models import Role, User
from tests.concurrency import race
from tests.factories import ContactFactory, StaffFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=SHANGHAI)
Reason = PointsEntry.Reason


def balance(contact: Contact) -> int:
    return Contact.objects.values_list("points_balance", flat=True).get(pk=contact.pk)


@pytest.mark.django_db
def test_an_action_earns_what_its_rule_gives_with_a_ledger_line_and_an_event():
    PointsRule.objects.create(reason=Reason.CHECKIN, points=5)
    contact = ContactFactory()

    entry = points_earn(contact, reason=Reason.CHECKIN, key="checkin:1:2026-11-02", occurred_at=T0)

    assert (entry.delta, entry.balance_after, entry.reason) == (5, 5, Reason.CHECKIN)
    assert balance(contact) == 5
    event = Event.objects.get(type=EventType.POINTS_CHANGED, contact=contact)
    assert event.amount == 5
    assert event.payload["balance_after"] == 5


@pytest.mark.django_db
def test_an_action_without_an_active_rule_earns_nothing():
    PointsRule.objects.create(reason=Reason.SPEAK, points=1, is_active=False)
    contact = ContactFactory()

    assert points_earn(contact, reason=Reason.SPEAK, key="s1", occurred_at=T0) is None
    assert points_earn(contact, reason=Reason.INVITE, key="i1", occurred_at=T0) is None

    assert balance(contact) == 0
    assert not PointsEntry.objects.exists()


@pytest.mark.django_db
def test_a_retried_job_earns_once():
    PointsRule.objects.create(reason=Reason.ORDER, points=20)
    contact = ContactFactory()

    first = points_earn(contact, reason=Reason.ORDER, key="order:A1", occurred_at=T0)
    again = points_earn(contact, reason=Reason.ORDER, key="order:A1", occurred_at=T0)

    assert again == first
    assert balance(contact) == 20
    assert PointsEntry.objects.count() == 1
    assert Event.objects.filter(type=EventType.POINTS_CHANGED).count() == 1


@pytest.mark.django_db
def test_the_daily_cap_counts_per_contact_per_shanghai_day():
    PointsRule.objects.create(reason=Reason.SPEAK, points=2, daily_cap=5)
    contact, other = ContactFactory(), ContactFactory()
    late_evening = datetime(2026, 11, 2, 23, 30, tzinfo=SHANGHAI)

    earned = [
        points_earn(contact, reason=Reason.SPEAK, key=f"speak:{n}", occurred_at=late_evening)
        for n in range(4)
    ]
    # 2 + 2 + 1 (filling the cap of 5) + nothing.
    assert [e.delta if e else None for e in earned] == [2, 2, 1, None]
    assert points_earn(other, reason=Reason.SPEAK, key="other:1", occurred_at=late_evening)
    # 00:30 in Shanghai is still the same UTC day, but a new day for the cap.
    after_midnight = late_evening + timedelta(hours=1)
    assert points_earn(contact, reason=Reason.SPEAK, key="speak:5", occurred_at=after_midnight)

    assert balance(contact) == 7
    assert balance(other) == 2


@pytest.mark.django_db
def test_spending_more_than_the_balance_is_refused_and_changes_nothing():
    PointsRule.objects.create(reason=Reason.CHECKIN, points=10)
    contact = ContactFactory()
    points_earn(contact, reason=Reason.CHECKIN, key="c1", occurred_at=T0)

    with pytest.raises(NotEnoughPoints, match="not enough points: the balance is 10, 11 needed"):
        points_spend(contact, points=11, key="spend:1", occurred_at=T0)
    with pytest.raises(NotEnoughPoints):
        points_adjust(contact, delta=-50, key="adj:1", occurred_at=T0, note="typo")

    assert balance(contact) == 10
    assert PointsEntry.objects.count() == 1
    spent = points_spend(contact, points=10, key="spend:2", occurred_at=T0)
    assert spent.balance_after == 0


@pytest.mark.django_db
def test_redeeming_takes_points_and_one_unit_of_stock_and_a_retry_redeems_once():
    contact = ContactFactory(points_balance=100)
    item = MallItem.objects.create(name="保温杯", points_cost=30, stock=2)

    first = mall_redeem(contact, item, key="redeem:abc", occurred_at=T0)
    again = mall_redeem(contact, item, key="redeem:abc", occurred_at=T0)

    assert again == first
    assert balance(contact) == 70
    assert MallItem.objects.get(pk=item.pk).stock == 1
    assert first.entry.balance_after == 70 and first.entry.note == "保温杯"


@pytest.mark.django_db
def test_a_key_already_used_for_another_change_redeems_nothing():
    contact = ContactFactory(points_balance=100)
    item = MallItem.objects.create(name="保温杯", points_cost=30, stock=2)
    points_spend(contact, points=5, key="shared-key", occurred_at=T0)

    with pytest.raises(PointsError, match="already used for another points change"):
        mall_redeem(contact, item, key="shared-key")

    assert balance(contact) == 95
    assert MallItem.objects.get(pk=item.pk).stock == 2


@pytest.mark.django_db
def test_an_item_out_of_stock_keeps_the_points():
    contact = ContactFactory(points_balance=100)
    item = MallItem.objects.create(name="帆布袋", points_cost=30, stock=0)

    with pytest.raises(OutOfStock, match="帆布袋 is out of stock"):
        mall_redeem(contact, item, key="r1")

    assert balance(contact) == contact.points_balance == 100
    assert not PointsEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_redemptions_never_take_a_balance_below_zero():
    contact = ContactFactory(points_balance=100)
    item = MallItem.objects.create(name="保温杯", points_cost=30, stock=50)

    outcomes = race(20, lambda n: mall_redeem(contact, item, key=f"race:{n}"))

    redeemed = [o for o in outcomes if isinstance(o, Redemption)]
    refused = [o for o in outcomes if not isinstance(o, Redemption)]
    assert len(redeemed) == 3
    assert all(isinstance(o, NotEnoughPoints) for o in refused), refused
    assert all("not enough points" in str(o) for o in refused)
    assert balance(contact) == 10
    assert MallItem.objects.get(pk=item.pk).stock == 47
    assert sorted(e.balance_after for e in PointsEntry.objects.all()) == [10, 40, 70]


@pytest.mark.django_db(transaction=True)
def test_twenty_contacts_racing_for_five_items_get_exactly_five():
    contacts = [ContactFactory(points_balance=50) for _ in range(20)]
    item = MallItem.objects.create(name="限量礼盒", points_cost=30, stock=5)

    outcomes = race(20, lambda n: mall_redeem(contacts[n], item, key=f"box:{n}"))

    assert sum(isinstance(o, Redemption) for o in outcomes) == 5
    assert sum(isinstance(o, OutOfStock) for o in outcomes) == 15
    assert MallItem.objects.get(pk=item.pk).stock == 0
    balances = sorted(Contact.objects.values_list("points_balance", flat=True))
    assert balances == [20] * 5 + [50] * 15


# --- the API: the ledger, redemption and adjustments, by role ---------------------------


@pytest.fixture
def cast(db):
    """Two operators with a customer each, a manager and an analyst."""

    def operator(username: str):
        user = User.objects.create_user(username, role=Role.OPERATOR)
        staff = StaffFactory(user=user)
        contact = ContactFactory(points_balance=100)
        Follow.objects.create(contact=contact, staff=staff, added_at=T0)
        return user, contact

    wang, wang_customer = operator("xiaowang")
    li, li_customer = operator("xiaoli")
    for contact in (wang_customer, li_customer):
        PointsEntry.objects.create(
            contact=contact,
            delta=100,
            balance_after=100,
            reason=Reason.REWARD,
            idempotency_key=f"seed:{contact.pk}",
        )
    return {
        "wang": wang,
        "wang_customer": wang_customer,
        "li": li,
        "li_customer": li_customer,
        "manager": User.objects.create_user("boss", role=Role.ADMIN),
        "analyst": User.objects.create_user("laoli", role=Role.ANALYST),
    }


def test_an_operator_sees_their_customers_ledger_but_not_another_operators(client, cast):
    client.force_login(cast["wang"])

    own = client.get(f"/api/points-entries/?contact={cast['wang_customer'].pk}")
    assert own.status_code == 200
    assert [e["balance_after"] for e in own.json()["results"]] == [100]
    assert client.get(f"/api/points-entries/?contact={cast['li_customer'].pk}").status_code == 404
    everything = client.get("/api/points-entries/").json()["results"]
    assert {e["contact"] for e in everything} == {cast["wang_customer"].pk}


def test_managers_and_analysts_read_every_ledger(client, cast):
    for who in ("manager", "analyst"):
        client.force_login(cast[who])
        rows = client.get("/api/points-entries/").json()["results"]
        assert {e["contact"] for e in rows} == {cast["wang_customer"].pk, cast["li_customer"].pk}


def test_an_operator_redeems_for_their_own_customer_only(client, cast):
    item = MallItem.objects.create(name="保温杯", points_cost=30, stock=5)
    client.force_login(cast["wang"])
    url = f"/api/mall-items/{item.pk}/redeem/"

    done = client.post(url, {"contact": cast["wang_customer"].pk, "key": "k1"}, "application/json")
    assert done.status_code == 201
    assert done.json()["balance_after"] == 70
    retried = client.post(
        url, {"contact": cast["wang_customer"].pk, "key": "k1"}, "application/json"
    )
    assert retried.json()["id"] == done.json()["id"]
    assert balance(cast["wang_customer"]) == 70

    others = client.post(url, {"contact": cast["li_customer"].pk}, "application/json")
    assert others.status_code == 404
    assert balance(cast["li_customer"]) == 100


def test_redeeming_without_enough_points_answers_with_the_reason(client, cast):
    item = MallItem.objects.create(name="按摩仪", points_cost=500, stock=5)
    client.force_login(cast["wang"])

    response = client.post(
        f"/api/mall-items/{item.pk}/redeem/",
        {"contact": cast["wang_customer"].pk},
        "application/json",
    )

    assert response.status_code == 409
    assert response.json()["detail"] == "not enough points: the balance is 100, 500 needed"
    assert MallItem.objects.get(pk=item.pk).stock == 5


def test_only_managers_change_the_mall_rules_and_balances(client, cast):
    adjustment = {"contact": cast["li_customer"].pk, "delta": -40, "note": "退货扣回"}
    for who in ("wang", "analyst"):
        client.force_login(cast[who])
        assert (
            client.post("/api/points-entries/adjust/", adjustment, "application/json").status_code
            == 403
        )
        item = {"name": "伞", "points_cost": 10, "stock": 1}
        assert client.post("/api/mall-items/", item, "application/json").status_code == 403
        rule = {"reason": "checkin", "points": 5}
        assert client.post("/api/points-rules/", rule, "application/json").status_code == 403

    client.force_login(cast["manager"])
    adjusted = client.post("/api/points-entries/adjust/", adjustment, "application/json")
    assert adjusted.status_code == 201
    assert adjusted.json()["balance_after"] == 60
    zero = client.post(
        "/api/points-entries/adjust/", {**adjustment, "delta": 0}, "application/json"
    )
    assert zero.status_code == 400 and "delta" in zero.json()
    assert (
        client.post(
            "/api/points-rules/",
            {"reason": "checkin", "points": 5, "daily_cap": 5},
            "application/json",
        ).status_code
        == 201
    )
