"""Sending through a real worker and the fake WeCom: once per target and slot, whatever
crashes, broker losses or retries happen, then followed up to delivery."""

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from analytics.models import Event, EventType
from groups.selectors import wecom_world
from sop import sending, tasks
from sop.conduct import SHANGHAI
from sop.models import Delivery, MassMessage
from sop.planner import plan_due
from tests.conftest import wait_for
from tests.factories import GroupFactory, StaffFactory
from tests.sop.builders import broadcast, customer, group_plan, make_content

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def any_hour(settings):
    # These tests run on the wall clock: quiet hours would hold a night-time run's sends.
    settings.SOP_QUIET_HOURS = ""
    settings.WECOM_MASS_MESSAGES_PER_DAY = 5


def _daily_plan_due_now(content):
    now = timezone.now()
    plan = group_plan(
        content,
        at=(now - timedelta(minutes=1)).astimezone(SHANGHAI).time(),
        activated_at=now - timedelta(minutes=2),
    )
    return plan, now


def _status(plan):
    return sorted(Delivery.objects.filter(plan=plan).values_list("status", flat=True))


def test_a_daily_step_reaches_every_group_once_and_is_followed_to_delivery(
    fake_wecom, celery_worker_thread
):
    content = make_content(text="早上好，今天记得打卡")  # no {name}: one task per owner
    owners = StaffFactory.create_batch(2)
    groups = [GroupFactory(owner=owners[i % 2]) for i in range(6)]
    fake_wecom.load_world(wecom_world())
    plan, now = _daily_plan_due_now(content)

    tasks.tick.delay()
    tasks.tick.delay()  # a duplicate tick changes nothing
    wait_for(lambda: _status(plan) == ["sent"] * 6)

    messages = fake_wecom.world.mass_messages
    assert len(messages) == 2  # one task per owner, each for that owner's three groups
    for message in messages.values():
        assert len(message.receipts) == 3
    for message in MassMessage.objects.all():
        fake_wecom.confirm_mass_message(message.msgid, message.sender.userid)
    tasks.follow_up.delay()
    wait_for(lambda: _status(plan) == ["delivered"] * 6)
    assert MassMessage.objects.filter(status="finished").count() == 2
    delivered = Event.objects.filter(type=EventType.DELIVERY_DELIVERED)
    assert sorted(delivered.values_list("group_id", flat=True)) == sorted(g.pk for g in groups)


def _worker_env(fake_wecom) -> dict:
    db = django_settings.DATABASES["default"]
    host = db["HOST"]
    auth = f"{db['USER']}:{db.get('PASSWORD') or ''}@"
    url = (
        f"postgresql://{auth}/{db['NAME']}?host={host}"
        if host.startswith("/")
        else f"postgresql://{auth}{host}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    return {**os.environ, "DATABASE_URL": url, "WECOM_API_BASE": fake_wecom.api_base}


def _start_worker(fake_wecom) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "scrm.celery",
            "worker",
            "-P",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "WARNING",
        ],
        cwd=ROOT,
        env=_worker_env(fake_wecom),
        start_new_session=True,
    )


def test_a_worker_killed_after_sending_does_not_send_twice(fake_wecom, redis_client):
    from scrm.celery import app

    content = make_content(text="双十一返场，会员专享")
    app.control.purge()
    staff = StaffFactory()
    people = [customer(staff) for _ in range(3)]
    fake_wecom.load_world(wecom_world())
    now = timezone.now()
    broadcast(
        content,
        people,
        send_at=now - timedelta(seconds=30),
        activated_at=now - timedelta(minutes=1),
    )
    plan_due(now=now)
    [message_id] = sending.dispatch_due(now=now)
    # WeCom creates the task, then answers slowly: the worker dies in between.
    fake_wecom.answer_delays["externalcontact/add_msg_template"] = 30
    tasks.queue_sends([message_id])
    worker = _start_worker(fake_wecom)
    try:
        wait_for(lambda: fake_wecom.world.mass_messages, timeout=60)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        assert MassMessage.objects.get().status == MassMessage.Status.SENDING  # no msgid

        # The next tick finds the message stuck and queues it again; a new worker asks
        # WeCom before sending and adopts the task it finds.
        tasks.queue_sends(sending.requeue_stuck(now=timezone.now() + timedelta(minutes=10)))
        worker = _start_worker(fake_wecom)
        message = wait_for(
            lambda: MassMessage.objects.filter(status=MassMessage.Status.SENT).first(), timeout=60
        )
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=20)

    assert len(fake_wecom.world.mass_messages) == 1
    assert message.msgid in fake_wecom.world.mass_messages
    assert sorted(Delivery.objects.values_list("status", flat=True)) == ["sent"] * 3
    # A late redelivery of the same task (acks_late after a crash past the commit) is a no-op.
    assert sending.message_send(message.pk) == "done"
    assert len(fake_wecom.world.mass_messages) == 1


def test_a_redis_flush_loses_no_plan_and_no_planned_delivery(
    content, fake_wecom, redis_client, celery_worker_thread
):
    owner = StaffFactory()
    GroupFactory.create_batch(4, owner=owner)
    fake_wecom.load_world(wecom_world())
    plan, now = _daily_plan_due_now(content)
    plan_due(now=now)
    celery_worker_thread.control.purge()
    # The broker loses everything just as the sends were queued.
    ids = sending.dispatch_due(now=now)
    redis_client.flushdb()
    tasks.queue_sends([])  # nothing to send: the queue is empty
    assert _status(plan) == ["queued"] * 4

    tasks.queue_sends(sending.requeue_stuck(now=timezone.now() + timedelta(minutes=10)))

    wait_for(lambda: _status(plan) == ["sent"] * 4)
    assert len(ids) == 4 and len(fake_wecom.world.mass_messages) == 4
    assert Delivery.objects.filter(plan=plan).count() == 4


def test_transient_wecom_errors_are_retried_and_permanent_ones_recorded(
    content, fake_wecom, celery_worker_thread
):
    staff = StaffFactory()
    alice, bob = customer(staff), customer(staff)
    fake_wecom.load_world(wecom_world())
    now = timezone.now()
    broadcast(
        content,
        [alice],
        send_at=now - timedelta(seconds=5),
        activated_at=now - timedelta(minutes=1),
    )
    plan_due(now=now)
    fake_wecom.fail_next("externalcontact/add_msg_template", -1)  # system busy, once
    tasks.queue_sends(sending.dispatch_due(now=now))
    wait_for(lambda: Delivery.objects.filter(contact=alice, status="sent").exists(), timeout=30)
    assert MassMessage.objects.get(deliveries__contact=alice).attempts == 2

    later = timezone.now()
    broadcast(
        content,
        [bob],
        send_at=later - timedelta(seconds=5),
        activated_at=later - timedelta(minutes=1),
    )
    plan_due(now=later)
    fake_wecom.fail_next("externalcontact/add_msg_template", 40003)  # invalid user: permanent
    tasks.queue_sends(sending.dispatch_due(now=later))
    failed = wait_for(
        lambda: Delivery.objects.filter(contact=bob, status="failed").first(), timeout=30
    )
    assert failed.reason == "wecom_refused"
    assert Event.objects.filter(type=EventType.DELIVERY_FAILED, contact_id=bob.pk).exists()


def test_unconfirmed_messages_get_at_most_three_reminders_a_day(fake_wecom, settings):
    content = make_content(text="会员日提醒")
    settings.SOP_REMIND_AFTER_MINUTES = 60
    staff = StaffFactory()
    people = [customer(staff) for _ in range(2)]
    fake_wecom.load_world(wecom_world())
    now = timezone.now()
    broadcast(
        content, people, send_at=now - timedelta(seconds=5), activated_at=now - timedelta(minutes=1)
    )
    plan_due(now=now)
    [message_id] = sending.dispatch_due(now=now)
    assert sending.message_send(message_id) == "sent"

    outcomes = [
        sending.message_follow_up(message_id, now=now + timedelta(minutes=minutes))
        for minutes in (30, 61, 90, 125, 190, 260, 330)
    ]

    assert outcomes == [
        "waiting",
        "reminded",
        "waiting",
        "reminded",
        "reminded",
        "waiting",
        "waiting",
    ]
    msgid = MassMessage.objects.get().msgid
    assert len(fake_wecom.world.mass_messages[msgid].reminders) == 3
    # Never confirmed within the window: the deliveries fail with that reason.
    assert sending.message_follow_up(message_id, now=now + timedelta(hours=73)) == "expired"
    assert set(Delivery.objects.values_list("reason", flat=True)) == {"not_confirmed"}
