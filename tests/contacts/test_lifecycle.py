"""Lifecycle stages follow orders and silence, read from the event log at a given moment."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction

from analytics.events import record
from analytics.models import Event, EventType
from contacts.lifecycle import (
    CHURNED_AFTER_DAYS,
    DORMANT_AFTER_DAYS,
    stage_for,
    stage_update,
    stages_refresh,
)
from contacts.loyalty_tasks import BEAT_SCHEDULE, contact_refresh, contact_refresh_soon
from contacts.models import Contact, ContactTag, Follow, MemberTier, Tag, TagGroup, TagRule
from scrm.celery import app
from tests.conftest import wait_for
from tests.factories import ContactFactory, StaffFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")
JOINED = datetime(2026, 9, 1, 10, 0, tzinfo=SHANGHAI)
DAY = timedelta(days=1)
Stage = Contact.Stage

pytestmark = pytest.mark.django_db


def paid(contact: Contact, order_no: str, at: datetime, fen: int = 9_900) -> None:
    record(
        type=EventType.ORDER_PAID,
        occurred_at=at,
        key=f"test:paid:{order_no}",
        contact=contact,
        amount=fen,
        payload={"order_no": order_no},
    )


def spoke(contact: Contact, at: datetime) -> None:
    record(
        type=EventType.MESSAGE, occurred_at=at, key=f"test:msg:{contact.pk}:{at}", contact=contact
    )


def test_a_contact_moves_from_new_to_first_order_to_repeat_buyer():
    contact = ContactFactory(first_added_at=JOINED)
    assert stage_for(contact, now=JOINED + DAY) == Stage.NEW

    paid(contact, "A1", JOINED + 2 * DAY)
    assert stage_for(contact, now=JOINED + 3 * DAY) == Stage.FIRST_ORDER
    # Judged at a moment: the order had not happened yet the day before.
    assert stage_for(contact, now=JOINED + DAY) == Stage.NEW

    paid(contact, "A2", JOINED + 5 * DAY)
    assert stage_for(contact, now=JOINED + 6 * DAY) == Stage.REPEAT


def test_silence_makes_a_contact_dormant_then_churned_and_speaking_wakes_them():
    contact = ContactFactory(first_added_at=JOINED)
    paid(contact, "A1", JOINED + DAY)
    last_order = JOINED + DAY

    assert stage_for(contact, now=last_order + (DORMANT_AFTER_DAYS - 1) * DAY) == Stage.FIRST_ORDER
    assert stage_for(contact, now=last_order + DORMANT_AFTER_DAYS * DAY) == Stage.DORMANT
    assert stage_for(contact, now=last_order + CHURNED_AFTER_DAYS * DAY) == Stage.CHURNED

    spoke(contact, last_order + 40 * DAY)
    assert stage_for(contact, now=last_order + 41 * DAY) == Stage.FIRST_ORDER


def test_a_newcomer_who_never_spoke_turns_dormant_only_a_full_window_after_joining():
    contact = ContactFactory(first_added_at=JOINED)

    assert stage_for(contact, now=JOINED + 29 * DAY) == Stage.NEW
    assert stage_for(contact, now=JOINED + 30 * DAY) == Stage.DORMANT


def test_a_contact_whose_every_follow_relation_ended_is_churned_even_if_recently_active():
    contact = ContactFactory(first_added_at=JOINED)
    alice, bob = StaffFactory(), StaffFactory()
    Follow.objects.create(contact=contact, staff=alice, added_at=JOINED)
    bob_follow = Follow.objects.create(contact=contact, staff=bob, added_at=JOINED)
    spoke(contact, JOINED + DAY)
    Follow.objects.filter(staff=alice).update(deleted_by_contact_at=JOINED + 2 * DAY)

    assert stage_for(contact, now=JOINED + 3 * DAY) == Stage.NEW

    bob_follow.deleted_by_staff_at = JOINED + 3 * DAY
    bob_follow.save()
    assert stage_for(contact, now=JOINED + 4 * DAY) == Stage.CHURNED


def test_stage_update_records_the_move_and_the_last_activity():
    contact = ContactFactory(first_added_at=JOINED)
    paid(contact, "A1", JOINED + DAY)
    now = JOINED + 2 * DAY

    assert stage_update(contact, now=now) is True
    assert stage_update(contact, now=now) is False

    contact.refresh_from_db()
    assert contact.stage == Stage.FIRST_ORDER
    assert contact.last_active_at == JOINED + DAY
    moves = Event.objects.filter(type=EventType.STAGE_CHANGED, contact=contact)
    assert [(e.payload["from"], e.payload["to"], e.occurred_at) for e in moves] == [
        ("new", "first_order", now)
    ]


def test_the_scheduled_refresh_moves_every_contact_whose_stage_changed_and_no_one_else():
    now = JOINED + 60 * DAY
    quiet = ContactFactory(first_added_at=JOINED, stage=Stage.NEW)
    buyer = ContactFactory(first_added_at=JOINED, stage=Stage.NEW)
    paid(buyer, "B1", now - 2 * DAY)
    already_right = ContactFactory(first_added_at=now - DAY, stage=Stage.NEW)
    gone = ContactFactory(first_added_at=JOINED, stage=Stage.REPEAT)
    Follow.objects.create(
        contact=gone, staff=StaffFactory(), added_at=JOINED, deleted_by_staff_at=JOINED + DAY
    )

    assert stages_refresh(now=now) == 3

    stages = dict(Contact.objects.values_list("pk", "stage"))
    assert stages == {
        quiet.pk: Stage.DORMANT,
        buyer.pk: Stage.FIRST_ORDER,
        already_right.pk: Stage.NEW,
        gone.pk: Stage.CHURNED,
    }
    assert Contact.objects.get(pk=buyer.pk).last_active_at == now - 2 * DAY
    assert Event.objects.filter(type=EventType.STAGE_CHANGED).count() == 3
    assert stages_refresh(now=now) == 0


def test_refreshing_one_contact_updates_tier_stage_and_rule_tags():
    MemberTier.objects.create(name="VIP1", level=1)
    MemberTier.objects.create(name="VIP2", level=2, min_orders=1, min_order_fen=100)
    tag = Tag.objects.create(group=TagGroup.objects.create(name="行为"), name="已购")
    TagRule.objects.create(
        tag=tag, conditions={"all": [{"field": "orders", "op": ">=", "value": 1}]}
    )
    contact = ContactFactory()
    bystander = ContactFactory()
    paid(contact, "A1", contact.first_added_at)

    assert contact_refresh(contact.pk) == "refreshed"

    contact.refresh_from_db()
    assert (contact.tier.name, contact.stage) == ("VIP2", Stage.FIRST_ORDER)
    assert list(ContactTag.objects.values_list("contact_id", "tag__name")) == [(contact.pk, "已购")]
    assert Contact.objects.get(pk=bystander.pk).tier is None
    assert contact_refresh(123_456_789) == "gone"


@pytest.mark.django_db(transaction=True)
def test_an_order_recorded_in_a_transaction_refreshes_the_contact_once_committed(
    celery_worker_thread,
):
    MemberTier.objects.create(name="VIP1", level=1)
    MemberTier.objects.create(name="VIP2", level=2, min_orders=1, min_order_fen=100)
    contact = ContactFactory()
    with transaction.atomic():
        paid(contact, "A1", contact.first_added_at)
        contact_refresh_soon(contact.pk, delay_seconds=0)
        contact_refresh_soon(contact.pk, delay_seconds=0)  # a burst asks once

    def vip2():
        """the contact to reach VIP2"""
        return Contact.objects.filter(pk=contact.pk, tier__name="VIP2").exists()

    wait_for(vip2)
    assert Event.objects.filter(type=EventType.TIER_CHANGED, contact=contact).count() == 1


def test_every_scheduled_job_names_a_registered_task():
    for entry in BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks
