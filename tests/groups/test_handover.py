"""Leaver transfer (离职继承): a manager marks a staff member resigned, WeCom passes their
customers and groups to successors, the poll applies WeCom's results, and history stays."""

import re

import pytest
from django.conf import settings
from django.utils import timezone

from analytics.models import Event, EventType
from contacts.models import Follow, Staff
from groups import tasks
from groups.models import Group, GroupMembership, Handover
from groups.sync import full_sync
from scrm.models import Role, User
from tests.conftest import wait_for
from tests.factories import GroupFactory

T = 1_760_000_000
CUSTOMERS = 150  # more than WeCom's 100 per call


def world(customers: int = CUSTOMERS) -> dict:
    return {
        "staff": [
            {"userid": "alice", "name": "Alice"},
            {"userid": "bob", "name": "Bob"},
            {"userid": "carol", "name": "Carol"},
        ],
        "contacts": [
            {
                "external_userid": f"wm{i:03d}",
                "name": f"客户{i}",
                "follow_users": [
                    {
                        "userid": "alice",
                        "remark": f"王姐{i}",
                        "description": "爱喝茶",
                        "createtime": T + i,
                        "tags": [],
                        "state": "",
                    }
                ],
            }
            for i in range(customers)
        ],
        "groups": [
            {
                "chat_id": chat_id,
                "name": name,
                "owner": "alice",
                "create_time": T,
                "members": [
                    {"userid": "alice", "type": 1, "join_time": T, "join_scene": 0},
                    {"userid": "wm000", "type": 2, "join_time": T + 5, "join_scene": 3},
                ],
            }
            for chat_id, name in [("wr1", "福利群"), ("wr2", "快闪群")]
        ],
    }


@pytest.fixture
def wecom(fake_wecom, db):
    fake_wecom.load_world(world())
    full_sync()
    return fake_wecom


@pytest.fixture
def manager(db) -> User:
    return User.objects.create_user("boss", role=Role.ADMIN)


def log_in(client, user: User):
    client.force_login(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"


def staff(userid: str) -> Staff:
    return Staff.objects.get(userid=userid)


def start(client, *, leaver="alice", successor="bob", group_successor=""):
    return client.post(
        "/groups/handovers/new/",
        {
            "handover_staff": staff(leaver).pk,
            "takeover_staff": staff(successor).pk,
            "group_takeover_staff": staff(group_successor).pk if group_successor else "",
        },
    )


def figure(page: str, key: str) -> str:
    match = re.search(rf'data-figure="{key}">([^<]*)<', page)
    assert match, f"no figure {key!r}"
    return match.group(1).strip()


def test_a_leavers_customers_and_groups_move_to_successors_and_the_history_stays(
    client, wecom, manager
):
    log_in(client, manager)

    response = start(client, group_successor="carol")

    handover = Handover.objects.get()
    assert response.status_code == 302 and response.url == f"/groups/handovers/{handover.pk}/"
    alice = staff("alice")
    assert alice.status == Staff.Status.RESIGNED and alice.resigned_at is not None
    assert Event.objects.filter(type=EventType.STAFF_RESIGNED, staff=alice).count() == 1
    # WeCom takes 100 customers per call; the groups move at once.
    assert len(wecom.calls("externalcontact/resigned/transfer_customer")) == 2
    assert {e["status"] for e in handover.customers.values()} == {"waiting"}
    assert len(handover.customers) == CUSTOMERS
    assert sorted(Group.objects.values_list("chat_id", "owner__userid")) == [
        ("wr1", "carol"),
        ("wr2", "carol"),
    ]
    assert {g["chat_id"]: g["owner"] for g in wecom.world_snapshot()["groups"]} == {
        "wr1": "carol",
        "wr2": "carol",
    }
    assert Event.objects.filter(type=EventType.GROUP_OWNER_CHANGED).count() == 2
    new_owner = GroupMembership.objects.get(
        group__chat_id="wr1", staff__userid="carol", left_at__isnull=True
    )
    assert new_owner.role == "owner"
    assert handover.status == Handover.Status.PENDING
    # Until WeCom has moved them, the customers stay with the leaver.
    assert Follow.objects.filter(staff__userid="bob").count() == 0

    wecom.complete_transfers(refuse=["wm007"])
    tasks.poll_handover(handover.pk)

    handover.refresh_from_db()
    assert handover.status == Handover.Status.PARTLY
    moved = Follow.objects.filter(staff__userid="bob", deleted_by_staff_at__isnull=True)
    assert moved.count() == CUSTOMERS - 1
    assert moved.get(contact__external_userid="wm003").remark == "王姐3"
    assert moved.get(contact__external_userid="wm003").description == "爱喝茶"
    # The leaver's relations are ended, not removed: the history is kept.
    old = Follow.objects.filter(staff__userid="alice")
    assert old.count() == CUSTOMERS
    assert old.filter(deleted_by_staff_at__isnull=False).count() == CUSTOMERS - 1
    assert old.get(contact__external_userid="wm007").is_active
    assert handover.customers["wm007"]["status"] == "refused"
    assert Event.objects.filter(type=EventType.CONTACT_TRANSFERRED).count() == CUSTOMERS - 1

    page = client.get(f"/groups/handovers/{handover.pk}/").content.decode()
    assert figure(page, "done") == str(CUSTOMERS - 1)
    assert figure(page, "refused") == "1"
    assert figure(page, "status") == "Partly done"
    refused = client.get(f"/groups/handovers/{handover.pk}/?status=refused").content.decode()
    assert re.search(r'data-customer="wm007">.*The customer refused the transfer\.', refused, re.S)


def test_polling_again_changes_nothing(client, wecom, manager):
    log_in(client, manager)
    start(client)
    handover = Handover.objects.get()
    wecom.complete_transfers()
    tasks.poll_handover(handover.pk)
    events = Event.objects.count()
    follows = sorted(Follow.objects.values_list("pk", "staff_id", "deleted_by_staff_at"))

    tasks.poll_handover(handover.pk)
    tasks.poll_pending_handovers()

    handover.refresh_from_db()
    assert handover.status == Handover.Status.DONE and handover.finished_at is not None
    assert Event.objects.count() == events
    assert sorted(Follow.objects.values_list("pk", "staff_id", "deleted_by_staff_at")) == follows


def test_while_wecom_has_not_finished_the_customers_keep_waiting(client, wecom, manager):
    log_in(client, manager)
    start(client)
    handover = Handover.objects.get()

    tasks.poll_handover(handover.pk)

    handover.refresh_from_db()
    assert handover.status == Handover.Status.PENDING
    assert handover.checked_at is not None
    assert Follow.objects.filter(staff__userid="bob").count() == 0


def test_wecom_refusing_the_first_call_saves_nothing_and_says_why(client, wecom, manager):
    log_in(client, manager)
    wecom.fail_next("externalcontact/resigned/transfer_customer", 60111)

    response = start(client)

    assert response.status_code == 200
    page = response.content.decode()
    assert re.search(r'class="alert alert-error".*WeCom refused the handover', page, re.S)
    assert staff("alice").status == Staff.Status.ACTIVE
    assert not Handover.objects.exists()
    assert not Event.objects.filter(type=EventType.STAFF_RESIGNED).exists()
    assert set(Group.objects.values_list("owner__userid", flat=True)) == {"alice"}


def test_a_group_wecom_refuses_stays_with_the_leaver_and_shows_why(client, wecom, manager):
    gone = GroupFactory(chat_id="wr-gone", name="已解散群", owner=staff("alice"))
    log_in(client, manager)

    start(client)

    handover = Handover.objects.get()
    assert handover.groups["wr-gone"]["status"] == "failed"
    assert handover.groups["wr1"]["status"] == "done"
    gone.refresh_from_db()
    assert gone.owner.userid == "alice"
    page = client.get(f"/groups/handovers/{handover.pk}/").content.decode()
    assert re.search(r'data-group="wr-gone">.*invalid chat_id', page, re.S)


def test_the_successor_must_be_active_and_someone_else(client, wecom, manager):
    bob = staff("bob")
    bob.status = Staff.Status.RESIGNED
    bob.save()
    log_in(client, manager)

    same = start(client, successor="alice", group_successor="carol")
    inactive = start(client, successor="carol", group_successor="bob")

    assert re.search(
        r'id="id_takeover_staff_error">\s*<li>The successor must be someone other than the leaver',
        same.content.decode(),
    )
    assert "Select a valid choice" in inactive.content.decode()  # resigned staff are not offered
    assert not Handover.objects.exists()
    assert staff("alice").status == Staff.Status.ACTIVE


def test_a_second_handover_waits_for_the_first(client, wecom, manager):
    log_in(client, manager)
    start(client)

    again = start(client, successor="carol")

    assert "still waiting for WeCom" in again.content.decode()
    assert Handover.objects.count() == 1


def test_an_operator_may_neither_start_nor_see_a_handover(client, wecom):
    operator = User.objects.create_user("xiaowang", role=Role.OPERATOR)
    log_in(client, operator)

    assert client.get("/groups/handovers/").status_code == 403
    assert client.get("/groups/handovers/new/").status_code == 403
    assert start(client).status_code == 403
    assert client.post("/api/handovers/", {"handover_staff": staff("alice").pk}).status_code == 403
    assert not Handover.objects.exists()
    assert staff("alice").status == Staff.Status.ACTIVE


def test_an_analyst_reads_handovers_but_cannot_start_one(client, wecom, manager):
    log_in(client, manager)
    start(client)
    analyst = User.objects.create_user("laoli", role=Role.ANALYST)
    log_in(client, analyst)

    assert client.get("/groups/handovers/").status_code == 200
    assert client.get(f"/groups/handovers/{Handover.objects.get().pk}/").status_code == 200
    assert client.get("/groups/handovers/new/").status_code == 403
    assert start(client, leaver="bob", successor="carol").status_code == 403
    assert staff("bob").status == Staff.Status.ACTIVE


def test_the_api_starts_a_handover_and_reports_progress(client, wecom, manager):
    log_in(client, manager)

    created = client.post(
        "/api/handovers/",
        {"handover_staff": staff("alice").pk, "takeover_staff": staff("bob").pk},
        content_type="application/json",
    )
    handover_id = created.json()["id"]
    wecom.complete_transfers(refuse=["wm001", "wm002"])
    tasks.poll_handover(handover_id)
    detail = client.get(f"/api/handovers/{handover_id}/").json()

    assert created.status_code == 201
    assert created.json()["counts"]["customers"]["waiting"] == CUSTOMERS
    assert created.json()["group_takeover_staff"]["userid"] == "bob"
    assert detail["status"] == "partly"
    assert detail["counts"]["customers"] == {
        "waiting": 0,
        "done": CUSTOMERS - 2,
        "refused": 2,
        "failed": 0,
    }
    assert detail["customers"]["wm001"]["status"] == "refused"
    assert detail["counts"]["groups"] == {"done": 2, "failed": 0}
    refused = client.post(
        "/api/handovers/",
        {"handover_staff": staff("bob").pk, "takeover_staff": staff("bob").pk},
        content_type="application/json",
    )
    assert refused.status_code == 400
    assert "takeover_staff" in refused.json()


def test_the_periodic_check_moves_customers_once_wecom_is_done(
    client, fake_wecom, transactional_db, celery_worker_thread
):
    fake_wecom.load_world(world(customers=3))
    full_sync()
    manager = User.objects.create_user("boss", role=Role.ADMIN)
    log_in(client, manager)
    start(client)
    handover = Handover.objects.get()
    fake_wecom.complete_transfers()

    tasks.poll_pending_handovers.delay()

    def finished():
        """the handover to be done"""
        handover.refresh_from_db()
        return handover.status == Handover.Status.DONE

    wait_for(finished)
    assert Follow.objects.filter(staff__userid="bob", deleted_by_staff_at__isnull=True).count() == 3
    assert handover.checked_at <= timezone.now()
