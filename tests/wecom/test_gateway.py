"""The gateway speaks to WeCom over real HTTP (the fake) and answers in our own terms."""

import os
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis

from wecom import gateway
from wecom.client import WeComClient
from wecom.errors import (
    WeComAlreadyDone,
    WeComAuthError,
    WeComInvalidRequest,
    WeComRateLimited,
    WeComUnavailable,
)
from wecom.ratelimit import Limit, WeComLimiter
from wecom.types import Attachment, Content

WORLD = {
    "staff": [{"userid": "alice", "name": "Alice"}, {"userid": "bob", "name": "Bob"}],
    "contacts": [
        {
            "external_userid": f"wm{i:03d}",
            "name": f"客户{i}",
            "follow_users": [
                {"userid": "alice", "createtime": 1_760_000_000 + i, "state": "douyin"}
            ],
        }
        for i in range(130)
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
            "chat_id": "wr1",
            "name": "福利群1",
            "owner": "alice",
            "members": [
                {"userid": "alice", "type": 1, "join_time": 1_760_000_000, "join_scene": 0},
                {"userid": "wm001", "type": 2, "join_time": 1_760_000_100, "join_scene": 3},
            ],
        }
    ],
}


@pytest.fixture
def wecom(fake_wecom):
    fake_wecom.load_world(WORLD)
    return fake_wecom


def test_it_lists_staff_contacts_tags_and_groups_in_our_terms(wecom):
    assert [(s.userid, s.name) for s in gateway.staff_list()] == [
        ("alice", "Alice"),
        ("bob", "Bob"),
    ]
    contacts = list(gateway.contacts_by_staff(["alice", "bob"], page_size=50))
    assert len(contacts) == 130  # three pages of WeCom's cursor
    assert contacts[1].follow.state == "douyin" and contacts[1].follow.userid == "alice"
    assert [(g.name, [t.name for t in g.tags]) for g in gateway.corp_tags()] == [
        ("兴趣", ["茶", "咖啡"])
    ]
    group = gateway.group_get(next(gateway.group_ids()))
    assert group.owner == "alice"
    assert [(m.userid, m.is_external, m.join_scene) for m in group.members] == [
        ("alice", False, 0),
        ("wm001", True, 3),
    ]


def test_a_mass_message_task_waits_for_the_staff_members_confirmation(wecom):
    task = gateway.mass_message_send(
        sender="alice",
        content=Content(
            text="早安打卡",
            attachments=(
                Attachment(
                    kind="link",
                    title="新品",
                    url="https://example.com/p",
                    pic_url="https://example.com/a.png",
                ),
            ),
        ),
        chat_ids=["wr1"],
    )

    assert gateway.mass_message_confirmations(task.msgid)[0].sent is False
    assert [r.status for r in gateway.mass_message_results(task.msgid, "alice")] == [0]
    gateway.mass_message_remind(task.msgid)
    wecom.confirm_mass_message(task.msgid, "alice")
    assert gateway.mass_message_confirmations(task.msgid)[0].sent is True
    assert [(r.chat_id, r.status) for r in gateway.mass_message_results(task.msgid, "alice")] == [
        ("wr1", 1)
    ]


def test_a_welcome_code_is_used_once(wecom):
    code = wecom.driver.add_contact("alice", "wm900", name="新客").welcome_code
    gateway.welcome_message_send(welcome_code=code, content=Content(text="欢迎！"))

    with pytest.raises(WeComAlreadyDone):
        gateway.welcome_message_send(welcome_code=code, content=Content(text="欢迎！"))
    assert [m["text"]["content"] for m in wecom.welcome_messages("wm900")] == ["欢迎！"]


def test_tags_remarks_codes_and_transfers_reach_wecom(wecom):
    gateway.contact_mark_tags(userid="alice", external_userid="wm002", add=["t1"])
    gateway.contact_set_remark(
        userid="alice", external_userid="wm002", remark="老客户", description="爱喝茶"
    )
    way = gateway.contact_way_create(state="store-1", userids=["alice"])
    join = gateway.join_way_create(state="fission-1", chat_ids=["wr1"])
    results = gateway.customers_transfer(
        handover_userid="alice",
        takeover_userid="bob",
        external_userids=["wm003", "wm004"],
        resigned=True,
    )
    failed = gateway.groups_transfer(chat_ids=["wr1"], new_owner="bob")

    [info] = gateway.contact_get("wm002")
    assert (info.follow.tag_ids, info.follow.remark) == (("t1",), "老客户")
    assert way.config_id and way.qr_url and join.config_id and join.qr_url
    assert [(r.external_userid, r.error_code) for r in results] == [("wm003", 0), ("wm004", 0)]
    assert failed == [] and gateway.group_get("wr1").owner == "bob"


def test_wecom_refusals_become_our_errors(wecom):
    with pytest.raises(WeComInvalidRequest) as raised:
        gateway.contact_set_remark(userid="alice", external_userid="wm002", remark="太长" * 11)
    assert raised.value.code == 40058 and raised.value.api == "externalcontact/remark"


def test_an_expired_token_is_refreshed_once_and_the_call_goes_through(wecom):
    gateway.staff_list()
    tokens_before = wecom.gettoken_calls
    wecom.expire_tokens()

    assert len(gateway.staff_list()) == 2
    assert wecom.gettoken_calls == tokens_before + 1


def test_a_wecom_that_keeps_rejecting_the_token_gets_one_retry_not_a_loop(wecom):
    wecom.fail_next("externalcontact/get_follow_user_list", 42001, times=50)

    with pytest.raises(WeComAuthError):
        gateway.staff_list()
    assert len(wecom.calls("externalcontact/get_follow_user_list")) == 2


def test_45009_pauses_the_api_for_every_process_without_calling_again(wecom):
    wecom.fail_next("externalcontact/groupchat/list", 45009)
    with pytest.raises(WeComRateLimited):
        list(gateway.group_ids())

    with pytest.raises(WeComRateLimited) as raised:  # a later caller backs off at once
        list(gateway.group_ids())
    assert raised.value.retry_after > 50
    assert len(wecom.calls("externalcontact/groupchat/list")) == 1
    assert len(gateway.staff_list()) == 2  # other APIs go on


def test_an_unreachable_wecom_is_a_transient_error(settings, wecom):
    settings.WECOM_API_BASE = "http://127.0.0.1:9/cgi-bin/"
    gateway.client.cache_clear()

    with pytest.raises(WeComUnavailable) as raised:
        gateway.staff_list()
    assert raised.value.transient


def test_eight_workers_hammering_one_api_never_exceed_the_configured_rate(wecom):
    rate, seconds, api = 40, 3.0, "externalcontact/get_follow_user_list"
    stop = time.monotonic() + seconds
    refused = []

    def worker():
        # Each worker has its own client, connection and limiter object, as separate
        # processes would; only Redis is shared.
        connection = redis.Redis.from_url(os.environ["REDIS_URL"])
        client = WeComClient(
            corp_id=wecom.corp_id,
            secret=wecom.secret,
            api_base=wecom.api_base,
            redis_client=connection,
            limiter=WeComLimiter(connection, default=Limit(per_second=rate, concurrency=8)),
        )
        while time.monotonic() < stop:
            try:
                client.get(api)
            except WeComRateLimited:
                refused.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    calls = len(wecom.calls(api))
    assert not refused
    assert wecom.max_calls_in_window(api, seconds=1.0) <= rate + 1
    assert calls >= rate * (seconds - 1)  # and the workers did use the rate they had


def test_many_processes_with_an_expired_token_fetch_one_new_token_between_them(wecom):
    gateway.staff_list()
    wecom.expire_tokens()
    tokens_before = wecom.gettoken_calls

    def worker():
        connection = redis.Redis.from_url(os.environ["REDIS_URL"])
        client = WeComClient(
            corp_id=wecom.corp_id,
            secret=wecom.secret,
            api_base=wecom.api_base,
            redis_client=connection,
            limiter=WeComLimiter(connection, default=Limit(per_second=1000, burst=100)),
        )
        client.get("externalcontact/get_follow_user_list")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert wecom.gettoken_calls == tokens_before + 1


def test_group_statistics_count_a_shanghai_day_of_speech_per_owner(wecom):
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    wecom.driver.speak("wr1", "wm001", count=3)
    wecom.driver.speak("wr1", "alice", count=2)

    [alice] = gateway.group_statistics(day=today, owners=["alice"])

    assert (alice.owner, alice.chats, alice.messages) == ("alice", 1, 5)
    assert alice.members_who_spoke >= 1
