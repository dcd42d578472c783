"""The groups REST API: the list with filters, a group's members, history, roles, stage
numbers and settings, auto-replies, members in several groups, and its permission lines."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from analytics.events import record
from analytics.models import EventType
from groups.models import AutoReply, Group, GroupMembership
from scrm.models import Role, User
from tests.factories import ContactFactory, GroupFactory, StaffFactory


@pytest.fixture
def manager(db) -> User:
    return User.objects.create_user("boss", role=Role.ADMIN)


@pytest.fixture
def operator(db) -> User:
    user = User.objects.create_user("xiaowang", role=Role.OPERATOR)
    StaffFactory(name="小王", user=user)
    return user


@pytest.fixture
def analyst(db) -> User:
    return User.objects.create_user("laoli", role=Role.ANALYST)


def join(group, contact, *, days_ago: float = 1, left_days_ago: float | None = None, **fields):
    now = timezone.now()
    return GroupMembership.objects.create(
        group=group,
        contact=contact,
        joined_at=now - timedelta(days=days_ago),
        left_at=now - timedelta(days=left_days_ago) if left_days_ago is not None else None,
        **fields,
    )


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [g["name"] for g in response.json()["results"]]


def test_the_list_filters_sorts_and_pages(client, manager):
    owner = StaffFactory()
    busy = GroupFactory(name="热闹群", owner=owner, type="acquisition")
    calm = GroupFactory(name="安静群", type="benefit")
    GroupFactory(name="散了的群", dismissed_at=timezone.now())
    people = ContactFactory.create_batch(3)
    for person in people:
        join(busy, person)
    join(calm, people[0])
    for i, person in enumerate(people):
        record(
            type=EventType.MESSAGE,
            occurred_at=timezone.now(),
            key=f"msg-{i}",
            contact=person,
            group=busy,
            amount=2,
        )
    client.force_login(manager)

    everything = client.get("/api/groups/").json()
    assert everything["count"] == 2
    first = everything["results"][0]
    assert (first["name"], first["member_count"], first["speakers_7d"], first["messages_7d"]) == (
        "热闹群",
        3,
        3,
        6,
    )
    assert first["owner"]["userid"] == owner.userid
    assert names(client.get("/api/groups/?sort=members")) == ["安静群", "热闹群"]
    assert names(client.get("/api/groups/?type=benefit")) == ["安静群"]
    assert names(client.get("/api/groups/?speakers_min=1")) == ["热闹群"]
    assert names(client.get("/api/groups/?dismissed=yes")) == ["散了的群"]
    assert names(client.get("/api/groups/?sort=-name")) == ["热闹群", "安静群"]
    summary = client.get("/api/groups/summary/").json()
    assert summary == {"people": 3, "stays": 4, "in_several": 1}


def test_bad_filters_are_a_400_naming_the_field(client, manager):
    client.force_login(manager)

    response = client.get("/api/groups/?stage=golden")

    assert response.status_code == 400
    assert list(response.json()) == ["stage"]
    assert client.get("/api/groups/?members_min=5&members_max=1").json() == {
        "members_max": ["Must be at least members_min."]
    }


def test_a_groups_members_history_and_stage_numbers(client, manager):
    group = GroupFactory(stage="founding")
    person = ContactFactory(name="老客")
    join(group, person, days_ago=30, left_days_ago=20, join_scene=3, quit_scene=0)
    join(group, person, days_ago=2, join_scene=1)
    client.force_login(manager)

    members = client.get(f"/api/groups/{group.pk}/members/").json()["results"]
    history = client.get(f"/api/groups/{group.pk}/history/").json()["results"]
    numbers = client.get(f"/api/groups/{group.pk}/stage-numbers/").json()
    detail = client.get(f"/api/groups/{group.pk}/").json()

    assert [(m["person"]["name"], m["role"]) for m in members] == [("老客", "member")]
    assert [(h["join_scene"], h["quit_scene"], h["left_at"] is None) for h in history] == [
        (GroupMembership.JoinScene.LINK, None, True),
        (GroupMembership.JoinScene.QR_CODE, GroupMembership.QuitScene.LEFT, False),
    ]
    assert all(h["join_scene_display"] for h in history)
    assert numbers["stage"] == "founding"
    assert (numbers["joins"], numbers["leaves"], numbers["members_at_start"]) == (1, 0, 0)
    assert numbers["leave_rate"] == 0
    assert detail["member_count"] == 1


def test_an_undefined_stage_number_is_null_not_zero(client, manager):
    group = GroupFactory(stage="retention")
    client.force_login(manager)

    numbers = client.get(f"/api/groups/{group.pk}/stage-numbers/").json()

    assert numbers["members_at_start"] == 0
    assert numbers["retention"] is None


def test_roles_change_through_the_api_with_at_most_three_admins(client, manager):
    group = GroupFactory()
    stays = [join(group, ContactFactory()) for _ in range(4)]
    client.force_login(manager)

    answers = [
        client.post(
            f"/api/groups/{group.pk}/members/{stay.pk}/role/",
            {"role": "admin"},
            content_type="application/json",
        )
        for stay in stays
    ]

    assert [a.status_code for a in answers] == [200, 200, 200, 400]
    assert answers[3].json() == {"role": ["一个群最多 3 名群管理员。"]}
    assert GroupMembership.objects.filter(group=group, role="admin").count() == 3
    koc = client.post(
        f"/api/groups/{group.pk}/members/{stays[3].pk}/role/",
        {"role": "koc"},
        content_type="application/json",
    )
    assert koc.json()["role"] == "koc"
    owner = client.post(
        f"/api/groups/{group.pk}/members/{stays[3].pk}/role/",
        {"role": "owner"},
        content_type="application/json",
    )
    assert owner.status_code == 400


def test_settings_change_through_the_api_and_bad_values_change_nothing(client, manager):
    group = GroupFactory(stage="founding")
    client.force_login(manager)

    changed = client.patch(
        f"/api/groups/{group.pk}/",
        {"stage": "monetization", "notice": "今晚8点秒杀", "rules": "禁止广告"},
        content_type="application/json",
    )
    refused = client.patch(
        f"/api/groups/{group.pk}/",
        {"stage": "golden", "notice": "不会保存"},
        content_type="application/json",
    )

    assert changed.status_code == 200
    assert changed.json()["stage"] == "monetization"
    assert refused.status_code == 400 and "stage" in refused.json()
    group.refresh_from_db()
    assert (group.stage, group.notice, group.rules) == ("monetization", "今晚8点秒杀", "禁止广告")


def test_auto_replies_through_the_api_use_a_keyword_once_per_group(client, manager):
    group, other = GroupFactory(), GroupFactory()
    client.force_login(manager)

    made = client.post(
        "/api/auto-replies/",
        {"group": group.pk, "keyword": "优惠券", "reply": "私聊领取"},
        content_type="application/json",
    )
    twice = client.post(
        "/api/auto-replies/",
        {"group": group.pk, "keyword": "优惠券", "reply": "again"},
        content_type="application/json",
    )
    elsewhere = client.post(
        "/api/auto-replies/",
        {"group": other.pk, "keyword": "优惠券", "reply": "别的群可以"},
        content_type="application/json",
    )
    changed = client.patch(
        f"/api/auto-replies/{made.json()['id']}/",
        {"reply": "找群主领取"},
        content_type="application/json",
    )
    listed = client.get(f"/api/auto-replies/?group={group.pk}").json()["results"]
    deleted = client.delete(f"/api/auto-replies/{made.json()['id']}/")

    assert made.status_code == 201
    assert twice.status_code == 400
    assert twice.json() == {"keyword": ["该群已有此关键词的自动回复。"]}
    assert elsewhere.status_code == 201
    assert changed.json()["reply"] == "找群主领取"
    assert [r["keyword"] for r in listed] == ["优惠券"]
    assert deleted.status_code == 204
    assert list(AutoReply.objects.values_list("group_id", flat=True)) == [other.pk]


def test_members_in_several_groups_through_the_api(client, manager):
    one, two, three = GroupFactory(name="A群"), GroupFactory(name="B群"), GroupFactory(name="C群")
    everywhere, twice, once = (ContactFactory(name=n) for n in ("三群客", "两群客", "一群客"))
    for group in (one, two, three):
        join(group, everywhere)
    join(one, twice)
    join(three, twice)
    join(two, once)
    join(two, twice, days_ago=9, left_days_ago=8)  # left: no longer counts
    client.force_login(manager)

    rows = client.get("/api/groups/overlap/").json()["results"]

    assert [(r["name"], r["group_count"]) for r in rows] == [("三群客", 3), ("两群客", 2)]
    assert [g["name"] for g in rows[1]["groups"]] == ["A群", "C群"]


# --- who may see and change what --------------------------------------------------------------


def test_an_operator_reads_and_changes_only_their_own_groups(client, operator):
    mine = GroupFactory(name="我的群", owner=operator.staff)
    theirs = GroupFactory(name="别人的群")
    client.force_login(operator)

    assert names(client.get("/api/groups/")) == ["我的群"]
    assert client.get(f"/api/groups/{theirs.pk}/").status_code == 404
    assert client.get(f"/api/groups/{theirs.pk}/members/").status_code == 404
    patch = client.patch(
        f"/api/groups/{theirs.pk}/", {"stage": "retention"}, content_type="application/json"
    )
    sneaky_reply = client.post(
        "/api/auto-replies/",
        {"group": theirs.pk, "keyword": "x", "reply": "y"},
        content_type="application/json",
    )
    own_patch = client.patch(
        f"/api/groups/{mine.pk}/", {"stage": "retention"}, content_type="application/json"
    )

    assert patch.status_code == 404
    assert sneaky_reply.status_code == 400 and "group" in sneaky_reply.json()
    assert own_patch.status_code == 200
    theirs.refresh_from_db()
    assert theirs.stage == Group.Stage.FOUNDING
    assert not AutoReply.objects.exists()


def test_an_analyst_reads_everything_and_may_change_nothing(client, analyst):
    group = GroupFactory()
    stay = join(group, ContactFactory())
    client.force_login(analyst)

    assert client.get(f"/api/groups/{group.pk}/").status_code == 200
    patch = client.patch(
        f"/api/groups/{group.pk}/", {"stage": "retention"}, content_type="application/json"
    )
    role = client.post(
        f"/api/groups/{group.pk}/members/{stay.pk}/role/",
        {"role": "koc"},
        content_type="application/json",
    )
    reply = client.post(
        "/api/auto-replies/",
        {"group": group.pk, "keyword": "x", "reply": "y"},
        content_type="application/json",
    )

    assert (patch.status_code, role.status_code, reply.status_code) == (403, 403, 403)
    group.refresh_from_db()
    assert group.stage == Group.Stage.FOUNDING


def test_the_api_needs_a_login_and_takes_a_token(client, operator):
    GroupFactory(name="我的群", owner=operator.staff)
    token = Token.objects.create(user=operator)

    assert client.get("/api/groups/").status_code in (401, 403)
    response = client.get("/api/groups/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert names(response) == ["我的群"]


def test_the_schema_describes_the_group_endpoints(client, manager):
    client.force_login(manager)

    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()

    for path in (
        "/api/groups/",
        "/api/groups/{id}/members/",
        "/api/groups/{id}/stage-numbers/",
        "/api/groups/overlap/",
        "/api/auto-replies/",
        "/api/channel-codes/",
        "/api/handovers/",
    ):
        assert path in schema
