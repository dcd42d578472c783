"""Tag groups, tags and tagging go to WeCom's corp tags first, through the fake WeCom over HTTP;
a refusal there changes nothing here, and roles decide who may change what."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import PermissionDenied

from analytics.models import Event, EventType
from contacts.models import Contact, ContactTag, Follow, Staff, Tag, TagGroup, TagSource
from contacts.tags import (
    contact_tag_add,
    contact_tag_remove,
    contacts_tag,
    tag_create,
    tag_group_create,
)
from scrm.models import Role, User
from wecom.errors import WeComInvalidRequest

SHANGHAI = ZoneInfo("Asia/Shanghai")
ADDED = datetime(2026, 10, 1, 10, 0, tzinfo=SHANGHAI)
CREATETIME = int(ADDED.timestamp())

WORLD = {
    "staff": [{"userid": "alice", "name": "Alice"}, {"userid": "bob", "name": "Bob"}],
    "contacts": [
        {
            "external_userid": "wm-ann",
            "name": "Ann",
            "follow_users": [
                {"userid": "alice", "createtime": CREATETIME},
                {"userid": "bob", "createtime": CREATETIME},
            ],
        },
        {
            "external_userid": "wm-ben",
            "name": "Ben",
            "follow_users": [{"userid": "bob", "createtime": CREATETIME}],
        },
    ],
}


@pytest.fixture
def wecom(fake_wecom):
    fake_wecom.load_world(WORLD)
    return fake_wecom


@pytest.fixture
def cast(db):
    """Alice's and Bob's logins (operators), a manager, an analyst, and their customers as
    WeCom has them. Carol once followed Ann but was deleted, so WeCom no longer links them."""

    def user(username: str, role: str) -> User:
        return User.objects.create_user(username, role=role)

    alice = Staff.objects.create(userid="alice", name="Alice", user=user("alice", Role.OPERATOR))
    bob = Staff.objects.create(userid="bob", name="Bob", user=user("bob", Role.OPERATOR))
    carol = Staff.objects.create(userid="carol", name="Carol")
    ann = Contact.objects.create(external_userid="wm-ann", name="Ann")
    ben = Contact.objects.create(external_userid="wm-ben", name="Ben")
    Follow.objects.create(contact=ann, staff=alice, added_at=ADDED)
    Follow.objects.create(contact=ann, staff=bob, added_at=ADDED)
    Follow.objects.create(contact=ann, staff=carol, added_at=ADDED, deleted_by_staff_at=ADDED)
    Follow.objects.create(contact=ben, staff=bob, added_at=ADDED)
    return {
        "alice": alice.user,
        "bob": bob.user,
        "manager": user("boss", Role.ADMIN),
        "analyst": user("ana", Role.ANALYST),
        "ann": ann,
        "ben": ben,
    }


def wecom_tags(fake) -> dict[str, list[str]]:
    """WeCom's tag library as {group name: [tag names]}."""
    return {
        g["group_name"]: sorted(t["name"] for t in g["tags"])
        for g in fake.world_snapshot()["tag_groups"]
    }


def wecom_marks(fake, external_userid: str) -> dict[str, list[str]]:
    """The tag ids on each of the contact's follow relations in WeCom."""
    contact = next(
        c for c in fake.world_snapshot()["contacts"] if c["external_userid"] == external_userid
    )
    return {f["userid"]: sorted(f["tags"]) for f in contact["follow_users"]}


def post(client, url: str, data: dict):
    return client.post(url, data, content_type="application/json")


def test_a_tag_group_created_with_tags_is_created_in_wecom_with_its_ids_kept(client, wecom, cast):
    client.force_login(cast["alice"])

    response = post(client, "/api/tag-groups/", {"name": "兴趣", "tag_names": ["茶", "咖啡"]})

    assert response.status_code == 201
    assert wecom_tags(wecom) == {"兴趣": ["咖啡", "茶"]}
    snapshot = wecom.world_snapshot()["tag_groups"][0]
    group = TagGroup.objects.get(name="兴趣")
    assert group.wecom_group_id == snapshot["group_id"]
    assert {t.name: t.wecom_tag_id for t in group.tags.all()} == {
        t["name"]: t["id"] for t in snapshot["tags"]
    }
    assert [t["name"] for t in response.json()["tags"]] == ["茶", "咖啡"]


def test_an_empty_group_reaches_wecom_with_its_first_tag(client, wecom, cast):
    client.force_login(cast["manager"])
    group_id = post(client, "/api/tag-groups/", {"name": "地区"}).json()["id"]
    assert wecom_tags(wecom) == {}  # WeCom holds no empty group

    assert post(client, "/api/tags/", {"group": group_id, "name": "上海"}).status_code == 201
    assert post(client, "/api/tags/", {"group": group_id, "name": "杭州"}).status_code == 201

    assert wecom_tags(wecom) == {"地区": ["上海", "杭州"]}
    assert TagGroup.objects.get(pk=group_id).wecom_group_id is not None
    assert Tag.objects.filter(group_id=group_id, wecom_tag_id__isnull=True).count() == 0


def test_renaming_a_group_or_a_tag_renames_it_in_wecom(client, wecom, cast):
    group = tag_group_create(name="兴趣", tag_names=["茶"])
    tea = group.tags.get()
    client.force_login(cast["alice"])

    assert (
        client.patch(
            f"/api/tag-groups/{group.pk}/", {"name": "爱好"}, content_type="application/json"
        ).json()["name"]
        == "爱好"
    )
    assert (
        client.patch(
            f"/api/tags/{tea.pk}/", {"name": "红茶"}, content_type="application/json"
        ).json()["name"]
        == "红茶"
    )

    assert wecom_tags(wecom) == {"爱好": ["红茶"]}


def test_deleting_a_tag_removes_it_in_wecom_and_from_its_contacts_with_events(client, wecom, cast):
    group = tag_group_create(name="兴趣", tag_names=["茶", "咖啡"])
    tea, coffee = group.tags.get(name="茶"), group.tags.get(name="咖啡")
    ContactTag.objects.create(contact=cast["ann"], tag=tea)
    client.force_login(cast["alice"])

    assert client.delete(f"/api/tags/{tea.pk}/").status_code == 204

    assert wecom_tags(wecom) == {"兴趣": ["咖啡"]}
    assert not ContactTag.objects.exists()
    removed = Event.objects.get(type=EventType.TAG_REMOVED)
    assert (removed.contact_id, removed.payload["tag"]) == (cast["ann"].pk, "茶")

    # WeCom drops a group with its last tag; ours stays, to be recreated there later.
    assert client.delete(f"/api/tags/{coffee.pk}/").status_code == 204
    assert wecom_tags(wecom) == {}
    group.refresh_from_db()
    assert group.wecom_group_id is None
    tag_create(group=group, name="花茶")
    assert wecom_tags(wecom) == {"兴趣": ["花茶"]}


def test_deleting_a_group_deletes_it_in_wecom(client, wecom, cast):
    group = tag_group_create(name="兴趣", tag_names=["茶", "咖啡"])
    tag_group_create(name="地区", tag_names=["上海"])
    client.force_login(cast["manager"])

    assert client.delete(f"/api/tag-groups/{group.pk}/").status_code == 204

    assert wecom_tags(wecom) == {"地区": ["上海"]}
    assert list(TagGroup.objects.values_list("name", flat=True)) == ["地区"]


def test_when_wecom_refuses_the_answer_says_so_and_nothing_changes(client, wecom, cast):
    group = tag_group_create(name="兴趣", tag_names=["茶"])
    client.force_login(cast["alice"])
    wecom.fail_next("externalcontact/add_corp_tag", 40071)
    wecom.fail_next("externalcontact/edit_corp_tag", 40068)

    created = post(client, "/api/tags/", {"group": group.pk, "name": "咖啡"})
    renamed = client.patch(
        f"/api/tag-groups/{group.pk}/", {"name": "爱好"}, content_type="application/json"
    )

    assert created.status_code == 502
    assert created.json()["detail"].startswith("企业微信未接受此修改")  # Chinese first
    assert "40071" in created.json()["detail"]
    assert renamed.status_code == 502
    assert list(Tag.objects.values_list("name", flat=True)) == ["茶"]
    assert TagGroup.objects.get().name == "兴趣"
    assert wecom_tags(wecom) == {"兴趣": ["茶"]}


def test_a_duplicate_name_is_refused_before_asking_wecom(client, wecom, cast):
    group = tag_group_create(name="兴趣", tag_names=["茶"])
    client.force_login(cast["alice"])
    wecom.reset_calls()

    duplicate_tag = post(client, "/api/tags/", {"group": group.pk, "name": "茶"})
    duplicate_group = post(client, "/api/tag-groups/", {"name": "兴趣"})
    too_long = post(client, "/api/tags/", {"group": group.pk, "name": "长" * 31})

    assert duplicate_tag.status_code == 400
    assert duplicate_tag.json() == {"name": ["兴趣 has a tag named 茶 already"]}
    assert duplicate_group.status_code == 400 and "name" in duplicate_group.json()
    assert too_long.status_code == 400 and "name" in too_long.json()
    assert wecom.calls("externalcontact/add_corp_tag") == []


def test_tagging_a_contact_marks_the_tag_for_every_staff_member_following_them(wecom, cast):
    tea = tag_group_create(name="兴趣", tag_names=["茶"]).tags.get()
    ann = cast["ann"]

    assert contact_tag_add(ann, [tea], by_user=cast["alice"]) == [tea]

    # Carol's follow ended: she is not asked (WeCom would refuse her anyway).
    assert wecom_marks(wecom, "wm-ann") == {"alice": [tea.wecom_tag_id], "bob": [tea.wecom_tag_id]}
    assert ContactTag.objects.get(contact=ann).source == TagSource.MANUAL
    added = Event.objects.get(type=EventType.TAG_ADDED, contact=ann)
    assert added.payload["by_user"] == cast["alice"].pk

    assert contact_tag_remove(ann, [tea], by_user=cast["bob"]) == [tea]
    assert wecom_marks(wecom, "wm-ann") == {"alice": [], "bob": []}
    assert not ContactTag.objects.exists()
    assert Event.objects.filter(type=EventType.TAG_REMOVED, contact=ann).count() == 1


def test_a_manual_tag_given_to_a_rule_tagged_contact_stays_when_the_rule_stops_matching(
    wecom, cast
):
    tea = tag_group_create(name="兴趣", tag_names=["茶"]).tags.get()
    ContactTag.objects.create(contact=cast["ann"], tag=tea, source=TagSource.RULE)

    assert contact_tag_add(cast["ann"], [tea], by_user=cast["alice"]) == []

    assert ContactTag.objects.get().source == TagSource.MANUAL
    assert wecom_marks(wecom, "wm-ann")["alice"] == [tea.wecom_tag_id]


def test_if_wecom_refuses_one_follower_the_others_marks_are_undone_and_nothing_changes(wecom, cast):
    tea = tag_group_create(name="兴趣", tag_names=["茶"]).tags.get()
    ann = cast["ann"]
    # WeCom does not know Zed follows Ann (our copy is behind); Zed is asked after Bob.
    zed = Staff.objects.create(userid="zed", name="Zed")
    Follow.objects.create(contact=ann, staff=zed, added_at=ADDED)

    with pytest.raises(WeComInvalidRequest, match="84061"):
        contact_tag_add(ann, [tea], by_user=cast["manager"])

    assert wecom_marks(wecom, "wm-ann") == {"alice": [], "bob": []}
    assert not ContactTag.objects.exists()
    assert not Event.objects.filter(type=EventType.TAG_ADDED).exists()


def test_bulk_tagging_makes_one_call_per_follower_and_reports_refusals(wecom, cast):
    tea = tag_group_create(name="兴趣", tag_names=["茶"]).tags.get()
    stray = Contact.objects.create(external_userid="wm-unknown", name="Stray")
    Follow.objects.create(contact=stray, staff=Staff.objects.get(userid="bob"), added_at=ADDED)
    wecom.reset_calls()
    ids = [cast["ann"].pk, cast["ben"].pk, stray.pk]

    result = contacts_tag(ids, [tea], by_user=cast["manager"])

    assert result.changed == [cast["ann"].pk, cast["ben"].pk]
    assert list(result.failed) == [stray.pk] and "84061" in result.failed[stray.pk]
    assert len(wecom.calls("externalcontact/mark_tag")) == 4  # ann×2, ben, stray
    assert set(ContactTag.objects.values_list("contact_id", flat=True)) == set(ids[:2])
    assert wecom_marks(wecom, "wm-ben") == {"bob": [tea.wecom_tag_id]}

    again = contacts_tag(ids[:2], [tea], by_user=cast["manager"], remove=True)
    assert again.changed == ids[:2]
    assert wecom_marks(wecom, "wm-ben") == {"bob": []}


def test_an_operator_cannot_tag_another_operators_customer(wecom, cast):
    tea = tag_group_create(name="兴趣", tag_names=["茶"]).tags.get()
    wecom.reset_calls()

    with pytest.raises(PermissionDenied, match="not your customers"):
        contacts_tag([cast["ann"].pk, cast["ben"].pk], [tea], by_user=cast["alice"])
    with pytest.raises(PermissionDenied):
        contact_tag_add(cast["ann"], [tea], by_user=cast["analyst"])

    assert wecom.calls("externalcontact/mark_tag") == []
    assert not ContactTag.objects.exists()


def test_analysts_read_tags_but_cannot_create_change_or_delete_them(client, wecom, cast):
    group = tag_group_create(name="兴趣", tag_names=["茶"])
    tea = group.tags.get()
    client.force_login(cast["analyst"])

    listed = client.get("/api/tag-groups/").json()["results"]
    assert [(g["name"], [t["name"] for t in g["tags"]]) for g in listed] == [("兴趣", ["茶"])]
    assert [t["name"] for t in client.get(f"/api/tags/?group={group.pk}").json()["results"]] == [
        "茶"
    ]
    assert post(client, "/api/tag-groups/", {"name": "地区"}).status_code == 403
    assert post(client, "/api/tags/", {"group": group.pk, "name": "咖啡"}).status_code == 403
    assert client.delete(f"/api/tags/{tea.pk}/").status_code == 403
    assert wecom_tags(wecom) == {"兴趣": ["茶"]}


def test_the_api_needs_a_login(client, db):
    assert client.get("/api/tags/").status_code == 403
    assert client.get("/api/points-entries/").status_code == 403
