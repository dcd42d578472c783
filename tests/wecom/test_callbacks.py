"""WeCom's callbacks: verified, stored once, applied to contacts and groups exactly once."""

import pytest
from wechatpy.enterprise.crypto import WeChatCrypto

from analytics.models import Event, EventType
from contacts.models import ChannelCode, Contact, Follow, Tag
from groups.models import Group, GroupMembership
from tests.conftest import wait_for
from wecom import services
from wecom.models import Callback

WORLD = {
    "staff": [{"userid": "alice", "name": "Alice"}, {"userid": "bob", "name": "Bob"}],
    "contacts": [],
    "tag_groups": [],
    "groups": [],
}


@pytest.fixture
def wecom(fake_wecom, live_server):
    fake_wecom.load_world(WORLD)
    fake_wecom.callback_url = live_server.url + "/wecom/callback"
    return fake_wecom


def apply_pending() -> list[str]:
    """What a worker does with each stored callback."""
    return [
        services.callback_apply(pk)
        for pk in Callback.objects.filter(status="pending")
        .order_by("pk")
        .values_list("pk", flat=True)
    ]


def events(*types) -> list[int]:
    return list(Event.objects.filter(type__in=types).order_by("id").values_list("type", flat=True))


def test_the_url_check_gets_the_decrypted_echostr_back(wecom):
    result = wecom.driver.verify_url()

    assert result.status == 200
    assert result.body == result.xml  # the echo the fake encrypted


@pytest.mark.django_db
def test_bad_signature_wrong_corp_or_garbage_is_refused_and_nothing_is_stored(client, settings):
    crypto = WeChatCrypto(settings.WECOM_TOKEN, settings.WECOM_AES_KEY, settings.WECOM_CORP_ID)
    stranger = WeChatCrypto(settings.WECOM_TOKEN, settings.WECOM_AES_KEY, "wwsomeoneelse")
    inner = "<xml><MsgType>event</MsgType><Event>change_external_chat</Event></xml>"

    def post(crypto, *, signature=None, body=None):
        envelope = crypto.encrypt_message(inner, "nonce1", "1760000000")
        if body is None:
            encrypted = envelope.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
            body = (
                f"<xml><ToUserName>x</ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
            )
        sig = signature or envelope.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
        return client.post(
            f"/wecom/callback?msg_signature={sig}&timestamp=1760000000&nonce=nonce1",
            data=body,
            content_type="text/xml",
        )

    assert post(crypto, signature="0" * 40).status_code == 403
    assert post(stranger).status_code == 403
    assert post(crypto, body="not xml at all").status_code == 400
    assert client.post("/wecom/callback", data="<xml/>", content_type="text/xml").status_code == 400
    assert post(crypto).status_code == 200  # the same message, properly signed, is taken
    assert Callback.objects.count() == 1


def test_a_callback_is_stored_once_however_often_wecom_retries_it(wecom):
    first = wecom.driver.add_contact("alice", "wm001", name="小王")
    replays = [wecom.driver.replay_last() for _ in range(3)]

    assert [first.status, *[r.status for r in replays]] == [200] * 4
    assert {first.body, *[r.body for r in replays]} == {"success"}
    assert Callback.objects.count() == 1
    assert apply_pending() == ["applied"]
    wecom.driver.replay_last()
    assert apply_pending() == []
    assert events(EventType.CONTACT_ADDED) == [EventType.CONTACT_ADDED]


def test_contact_callbacks_add_delete_and_block(wecom):
    code = ChannelCode.objects.create(name="抖音直播", state="douyin-live")
    wecom.driver.add_contact("alice", "wm001", name="小王", state="douyin-live")
    wecom.driver.add_contact("bob", "wm001")
    wecom.driver.contact_deletes_staff("alice", "wm001")  # 拉黑
    wecom.driver.staff_deletes_contact("bob", "wm001")
    apply_pending()

    contact = Contact.objects.get(external_userid="wm001")
    assert contact.source_channel == code
    alice, bob = Follow.objects.get(staff__userid="alice"), Follow.objects.get(staff__userid="bob")
    assert alice.channel == code and alice.deleted_by_contact_at and not alice.deleted_by_staff_at
    assert bob.deleted_by_staff_at and not bob.deleted_by_contact_at
    assert events(
        EventType.CONTACT_ADDED, EventType.CONTACT_BLOCKED, EventType.CONTACT_DELETED
    ) == [
        EventType.CONTACT_ADDED,
        EventType.CONTACT_ADDED,
        EventType.CONTACT_BLOCKED,
        EventType.CONTACT_DELETED,
    ]
    assert Event.objects.get(type=EventType.CONTACT_ADDED, staff__userid="alice").channel == code


def drive(wecom, acts, *, backlog: bool):
    """Run the driver's acts a minute apart; apply each callback at once, or all at the end."""
    for act in acts:
        act()
        wecom.clock.advance(60)
        if not backlog:
            assert apply_pending() == ["applied"]
    if backlog:
        assert set(apply_pending()) == {"applied"}


def membership_story(wecom):
    return [
        lambda: wecom.driver.create_group("wr1", "alice", "福利群"),
        lambda: wecom.driver.join_group("wr1", ["wm001", "wm002"], join_scene=3),
        lambda: wecom.driver.leave_group("wr1", ["wm001"], quit_scene=1),
        lambda: wecom.driver.join_group("wr1", ["wm001"], join_scene=0),
    ]


def test_group_callbacks_keep_members_and_their_history(wecom):
    drive(
        wecom,
        [
            *membership_story(wecom),
            lambda: wecom.driver.change_owner("wr1", "bob"),
            lambda: wecom.driver.change_name("wr1", "福利群·十一月"),
        ],
        backlog=False,
    )

    group = Group.objects.get(chat_id="wr1")
    assert (group.owner.userid, group.name) == ("bob", "福利群·十一月")
    stays = GroupMembership.objects.filter(group=group, contact__external_userid="wm001")
    assert [(s.join_scene, s.quit_scene, s.left_at is None) for s in stays.order_by("pk")] == [
        (3, 1, False),
        (0, None, True),
    ]
    open_stays = GroupMembership.objects.filter(group=group, left_at__isnull=True)
    assert sorted(str(s.contact or s.staff) for s in open_stays) == ["alice", "wm001", "wm002"]
    joined = Event.objects.filter(type=EventType.GROUP_JOINED, group=group)
    assert sorted(e.payload["scene"] for e in joined) == [0, 3, 3]
    assert events(
        EventType.GROUP_CREATED,
        EventType.GROUP_LEFT,
        EventType.GROUP_OWNER_CHANGED,
        EventType.GROUP_UPDATED,
    ) == [
        EventType.GROUP_CREATED,
        EventType.GROUP_LEFT,
        EventType.GROUP_OWNER_CHANGED,
        EventType.GROUP_UPDATED,
    ]

    wecom.driver.dismiss_group("wr1")
    apply_pending()
    assert Group.objects.get(chat_id="wr1").dismissed_at is not None
    assert not GroupMembership.objects.filter(group=group, left_at__isnull=True).exists()
    assert GroupMembership.objects.filter(group=group).count() == 4  # the history is all kept


def test_a_backlog_of_group_callbacks_still_gives_the_right_history(wecom):
    # WeCom's member list is of now; the create callback must not take later joins as its own.
    drive(wecom, membership_story(wecom), backlog=True)

    stays = GroupMembership.objects.filter(contact__external_userid="wm001").order_by("joined_at")
    assert [(s.join_scene, s.left_at is None) for s in stays] == [(3, False), (0, True)]
    assert GroupMembership.objects.filter(contact__isnull=False, left_at__isnull=True).count() == 2
    assert events(EventType.GROUP_JOINED, EventType.GROUP_LEFT).count(EventType.GROUP_JOINED) == 3


def test_a_replayed_callback_adds_no_event(wecom):
    wecom.driver.create_group("wr1", "alice", "福利群")
    wecom.driver.join_group("wr1", ["wm001"], join_scene=3)
    apply_pending()
    before = Event.objects.count()

    wecom.driver.replay_last()
    Callback.objects.update(status="pending")  # even if a worker applied it all again
    apply_pending()

    assert Event.objects.count() == before
    assert GroupMembership.objects.filter(contact__external_userid="wm001").count() == 1


def test_a_new_contact_gets_the_channels_welcome_message_within_wecoms_window(
    wecom, celery_worker_thread
):
    ChannelCode.objects.create(name="门店", state="store-1", welcome_message="欢迎光临，{name}！")
    result = wecom.driver.add_contact("alice", "wm777", name="小李", state="store-1")

    def welcomed():
        """the welcome message to reach WeCom"""
        return wecom.welcome_messages("wm777")

    [message] = wait_for(welcomed, timeout=15)
    assert message["text"]["content"] == "欢迎光临，小李！"
    assert result.status == 200
    wait_for(lambda: Contact.objects.filter(external_userid="wm777", name="小李").exists())


def test_tag_changes_in_wecom_are_mirrored(wecom, celery_worker_thread):
    wecom.driver.tag_event("tag_group", "create", "g1", name="兴趣")
    wecom.driver.tag_event("tag", "create", "t1", name="茶", group_id="g1")

    wait_for(lambda: Tag.objects.filter(wecom_tag_id="t1", name="茶", group__name="兴趣").exists())
    wecom.driver.tag_event("tag", "delete", "t1")
    wait_for(lambda: not Tag.objects.filter(wecom_tag_id="t1").exists())
