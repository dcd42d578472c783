"""A full sync brings WeCom's staff, tags, contacts and groups in; a second one is a no-op."""

import pytest

from analytics.models import Event, EventType
from contacts.models import Contact, ContactTag, Follow, Staff, Tag
from groups.models import Group, GroupMembership
from groups.selectors import wecom_world
from groups.sync import full_sync

T = 1_760_000_000
WORLD = {
    "staff": [{"userid": "alice", "name": "Alice"}, {"userid": "bob", "name": "Bob"}],
    "contacts": [
        {
            "external_userid": f"wm{i:03d}",
            "name": f"客户{i}",
            "gender": 2,
            "follow_users": [
                {
                    "userid": "alice",
                    "createtime": T + i,
                    "tags": ["t1"] if i % 2 else [],
                    "state": "",
                }
            ]
            + ([{"userid": "bob", "createtime": T + 500 + i, "tags": ["t2"]}] if i < 10 else []),
        }
        for i in range(120)
    ],
    "tag_groups": [
        {
            "group_id": "g1",
            "group_name": "兴趣",
            "tags": [{"id": "t1", "name": "茶"}, {"id": "t2", "name": "咖啡"}],
        }
    ],
    "groups": [
        {
            "chat_id": f"wr{g}",
            "name": f"福利群{g}",
            "owner": "alice",
            "admin_list": ["bob"],
            "members": [{"userid": "alice", "type": 1, "join_time": T, "join_scene": 0}]
            + [
                {"userid": f"wm{i:03d}", "type": 2, "join_time": T + 1000 + i, "join_scene": 3}
                for i in range(g * 10, g * 10 + 30)
            ],
        }
        for g in range(3)
    ],
}


@pytest.fixture
def wecom(fake_wecom):
    fake_wecom.load_world(WORLD)
    return fake_wecom


def snapshot() -> dict:
    return {
        "staff": sorted(Staff.objects.values_list("userid", "name")),
        "contacts": sorted(
            Contact.objects.values_list("external_userid", "name", "gender", "updated_at")
        ),
        "follows": sorted(
            Follow.objects.values_list("contact__external_userid", "staff__userid", "added_at")
        ),
        "tags": sorted(ContactTag.objects.values_list("contact__external_userid", "tag__name")),
        "groups": sorted(Group.objects.values_list("chat_id", "name", "owner__userid")),
        "memberships": list(
            GroupMembership.objects.order_by("pk").values_list(
                "group__chat_id", "contact_id", "staff_id", "joined_at", "left_at"
            )
        ),
        "events": Event.objects.count(),
    }


@pytest.mark.django_db
def test_a_full_sync_brings_wecom_in(wecom):
    report = full_sync()

    assert report["follows"] == 130 and report["follows_added"] == 130
    assert Contact.objects.count() == 120
    assert Contact.objects.get(external_userid="wm003").name == "客户3"
    assert set(Tag.objects.values_list("name", flat=True)) == {"茶", "咖啡"}
    assert ContactTag.objects.filter(tag__name="茶").count() == 60
    assert ContactTag.objects.filter(tag__name="咖啡").count() == 10
    assert Group.objects.get(chat_id="wr1").admins.get().userid == "bob"
    assert GroupMembership.objects.filter(contact__isnull=False, left_at__isnull=True).count() == 90
    assert Event.objects.filter(type=EventType.CONTACT_ADDED).count() == 130
    assert Event.objects.filter(type=EventType.GROUP_JOINED).count() == 90


@pytest.mark.django_db
def test_a_second_sync_against_an_unchanged_wecom_changes_nothing(wecom):
    full_sync()
    before = snapshot()

    report = full_sync()

    assert snapshot() == before
    assert (report["follows_added"], report["follows_ended"], report["tag_changes"]) == (0, 0, 0)
    assert (
        report["staff"],
        report["tags"],
        report["groups_changed"],
        report["groups_dismissed"],
    ) == (0, 0, 0, 0)


@pytest.mark.django_db
def test_a_later_sync_applies_exactly_what_changed_in_wecom(wecom):
    full_sync()
    world = wecom.world_snapshot()
    contact = next(c for c in world["contacts"] if c["external_userid"] == "wm001")
    contact["name"] = "王女士"
    contact["follow_users"][0]["tags"] = []  # 茶 removed in WeCom
    world["groups"][0]["members"] = [
        m for m in world["groups"][0]["members"] if m["userid"] != "wm005"
    ]
    world["groups"] = world["groups"][:2]  # wr2 was dismissed
    wecom.load_world(world)
    events_before = Event.objects.count()

    full_sync()

    assert Contact.objects.get(external_userid="wm001").name == "王女士"
    tags = ContactTag.objects.filter(contact__external_userid="wm001")
    assert list(tags.values_list("tag__name", flat=True)) == ["咖啡"]  # still tagged by bob
    left = GroupMembership.objects.get(group__chat_id="wr0", contact__external_userid="wm005")
    assert left.left_at is not None
    assert Group.objects.get(chat_id="wr2").dismissed_at is not None
    new_types = sorted(Event.objects.order_by("id")[events_before:].values_list("type", flat=True))
    assert new_types.count(EventType.TAG_REMOVED) == 1
    assert new_types.count(EventType.GROUP_DISMISSED) == 1
    assert new_types.count(EventType.GROUP_LEFT) == 1 + 30  # wm005, and everyone in wr2


@pytest.mark.django_db
def test_the_world_the_demo_gives_the_fake_wecom_agrees_with_our_data(wecom):
    full_sync()
    before = snapshot()

    wecom.load_world(wecom_world())
    full_sync()

    assert snapshot() == before
