"""The fake WeCom answers wechatpy over real HTTP the way WeCom does, and posts real callbacks."""

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import xmltodict
from wechatpy.enterprise import WeChatClient
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import APILimitedException, WeChatClientException

from wecom.fake import FakeWeCom

T0 = 1_767_232_800  # 2026-01-01 10:00 in Shanghai

WORLD = {
    "staff": [
        {"userid": "alice", "name": "Alice", "status": 1},
        {"userid": "bob", "name": "Bob", "status": 1},
    ],
    "tag_groups": [
        {
            "group_id": "etgrp-level",
            "group_name": "Level",
            "order": 1,
            "create_time": T0,
            "tags": [
                {"id": "ettag-vip", "name": "VIP", "order": 2, "create_time": T0},
                {"id": "ettag-new", "name": "New", "order": 1, "create_time": T0},
            ],
        },
    ],
    "contacts": [
        {
            "external_userid": f"wm-c{i}",
            "name": f"Customer {i}",
            "type": 1,
            "gender": 1,
            "follow_users": [
                {"userid": "alice", "createtime": T0 - 86400, "tags": [], "add_way": 1}
            ],
        }
        for i in range(3)
    ],
    "groups": [
        {
            "chat_id": "wr-group1",
            "name": "Spring buyers",
            "owner": "alice",
            "create_time": T0,
            "members": [{"userid": "alice", "type": 1, "join_time": T0, "join_scene": 1}],
        },
    ],
}


class Clock:
    """The fake's clock, moved by hand so welcome-code expiry needs no sleeping."""

    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def fake(clock):
    fake = FakeWeCom(clock=clock, rate_limits={"externalcontact/mark_tag": 5})
    fake.load_world(WORLD)
    with fake:
        yield fake


def client_for(
    fake: FakeWeCom,
    *,
    secret: str | None = None,
    corp_id: str | None = None,
    auto_retry: bool = True,
) -> WeChatClient:
    class FakeWeChatClient(WeChatClient):
        API_BASE_URL = fake.api_base

        def fetch_access_token(self):
            # wechatpy hard-codes the real gettoken URL.
            return self._fetch_access_token(
                url=fake.api_base + "gettoken",
                params={"corpid": self.corp_id, "corpsecret": self.secret},
            )

    return FakeWeChatClient(corp_id or fake.corp_id, secret or fake.secret, auto_retry=auto_retry)


@pytest.fixture
def client(fake):
    return client_for(fake)


def errcode_of(call) -> int:
    with pytest.raises(WeChatClientException) as raised:
        call()
    return raised.value.errcode


class CallbackReceiver:
    """A tiny app webhook: records each request and answers 'success'."""

    def __init__(self):
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                receiver.requests.append({"query": query, "body": body})
                self.send_response(200)
                self.send_header("Content-Length", "7")
                self.end_headers()
                self.wfile.write(b"success")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/wecom/callback"
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def decrypt(self, fake: FakeWeCom, index: int = -1) -> dict:
        request = self.requests[index]
        crypto = WeChatCrypto(fake.token, fake.aes_key, fake.corp_id)
        q = request["query"]
        plain = crypto.decrypt_message(
            request["body"], q["msg_signature"], q["timestamp"], q["nonce"]
        )
        return xmltodict.parse(plain)["xml"]


@pytest.fixture
def receiver(fake):
    receiver = CallbackReceiver()
    fake.callback_url = receiver.url
    yield receiver
    receiver.httpd.shutdown()
    receiver.httpd.server_close()


def test_it_issues_a_token_and_answers_42001_once_tokens_expire(fake):
    client = client_for(fake, auto_retry=False)
    assert client.external_contact.get_follow_user_list()["follow_user"] == ["alice", "bob"]

    fake.expire_tokens()

    assert errcode_of(client.external_contact.get_follow_user_list) == 42001
    # A client that refetches on 42001 recovers with one more gettoken.
    assert client_for(fake).external_contact.get_follow_user_list()["errcode"] == 0
    assert fake.gettoken_calls == 2


def test_it_refuses_a_missing_or_unknown_token(fake):
    url = fake.api_base + "externalcontact/get_follow_user_list"
    assert requests.get(url).json()["errcode"] == 41001
    assert requests.get(url, params={"access_token": "forged"}).json()["errcode"] == 40014


def test_a_wrong_secret_or_corp_id_is_refused(fake):
    assert (
        errcode_of(client_for(fake, secret="wrong").external_contact.get_follow_user_list) == 40001
    )
    assert (
        errcode_of(client_for(fake, corp_id="wwother").external_contact.get_follow_user_list)
        == 40013
    )


def test_batch_get_by_user_pages_through_250_contacts_with_cursors(fake, client):
    fake.load_world(
        {
            "staff": [{"userid": "alice", "name": "Alice"}],
            "contacts": [
                {
                    "external_userid": f"wm-{i:03d}",
                    "name": f"C{i}",
                    "follow_users": [{"userid": "alice", "createtime": T0}],
                }
                for i in range(250)
            ],
        }
    )
    seen, cursor, pages = [], "", 0
    while True:
        answer = client.post(
            "externalcontact/batch/get_by_user",
            data={"userid_list": ["alice"], "cursor": cursor, "limit": 100},
        )
        seen += [e["external_contact"]["external_userid"] for e in answer["external_contact_list"]]
        pages += 1
        cursor = answer["next_cursor"]
        if not cursor:
            break

    assert pages == 3
    assert sorted(seen) == [f"wm-{i:03d}" for i in range(250)]
    assert answer["external_contact_list"][0]["follow_info"]["userid"] == "alice"
    over_limit = {"userid_list": ["alice"], "limit": 101}
    assert (
        errcode_of(lambda: client.post("externalcontact/batch/get_by_user", data=over_limit))
        == 40058
    )


def test_mark_tag_changes_the_tags_externalcontact_get_shows(client):
    client.external_contact.mark_tag("alice", "wm-c0", add_tag=["ettag-vip"])

    follow = client.external_contact.get("wm-c0")["follow_user"][0]
    assert follow["tags"] == [
        {"group_name": "Level", "tag_name": "VIP", "tag_id": "ettag-vip", "type": 1}
    ]
    assert (
        errcode_of(
            lambda: client.external_contact.mark_tag("alice", "wm-c0", add_tag=["ettag-nope"])
        )
        == 40068
    )


def test_remark_longer_than_20_characters_is_refused(client):
    client.post(
        "externalcontact/remark",
        data={"userid": "alice", "external_userid": "wm-c1", "remark": "Big buyer"},
    )
    assert client.external_contact.get("wm-c1")["follow_user"][0]["remark"] == "Big buyer"
    assert (
        errcode_of(
            lambda: client.post(
                "externalcontact/remark",
                data={"userid": "alice", "external_userid": "wm-c1", "remark": "x" * 21},
            )
        )
        == 40058
    )


def send_result(client, msgid, userid="alice"):
    answer = client.post(
        "externalcontact/get_groupmsg_send_result", data={"msgid": msgid, "userid": userid}
    )
    return {r["external_userid"]: r["status"] for r in answer["send_list"]}


def test_a_mass_message_reaches_nobody_until_the_sender_confirms_it(fake, client):
    answer = client.external_contact.add_msg_template(
        {
            "chat_type": "single",
            "sender": "alice",
            "external_userid": ["wm-c0", "wm-c1", "wm-stranger"],
            "text": {"content": "Spring sale"},
            "attachments": [{"msgtype": "link", "link": {"title": "Sale", "url": "https://x.cn"}}],
        }
    )
    msgid = answer["msgid"]
    assert answer["fail_list"] == ["wm-stranger"]
    task = client.post("externalcontact/get_groupmsg_task", data={"msgid": msgid})
    assert [(t["userid"], t["status"]) for t in task["task_list"]] == [("alice", 0)]
    assert send_result(client, msgid) == {"wm-c0": 0, "wm-c1": 0}

    fake.confirm_mass_message(msgid, "alice")

    task = client.post("externalcontact/get_groupmsg_task", data={"msgid": msgid})
    assert task["task_list"][0]["status"] == 2
    assert send_result(client, msgid) == {"wm-c0": 1, "wm-c1": 1}
    listed = client.post(
        "externalcontact/get_groupmsg_list_v2",
        data={"chat_type": "single", "start_time": T0 - 3600, "end_time": T0 + 3600},
    )
    assert [m["msgid"] for m in listed["group_msg_list"]] == [msgid]


def test_a_second_mass_message_the_same_day_hits_the_receive_limit(fake, client):
    first = client.external_contact.add_msg_template(
        {"sender": "alice", "external_userid": ["wm-c0"], "text": {"content": "One"}}
    )["msgid"]
    fake.confirm_mass_message(first, "alice")
    second = client.external_contact.add_msg_template(
        {"sender": "alice", "external_userid": ["wm-c0", "wm-c2"], "text": {"content": "Two"}}
    )["msgid"]

    fake.confirm_mass_message(second, "alice")

    assert send_result(client, second) == {"wm-c0": 3, "wm-c2": 1}


def test_remind_groupmsg_send_refuses_the_fourth_reminder_in_a_day(client, clock):
    msgid = client.external_contact.add_msg_template(
        {"sender": "alice", "external_userid": ["wm-c0"], "text": {"content": "Hi"}}
    )["msgid"]
    for _ in range(3):
        client.post("externalcontact/remind_groupmsg_send", data={"msgid": msgid})

    assert (
        errcode_of(
            lambda: client.post("externalcontact/remind_groupmsg_send", data={"msgid": msgid})
        )
        == 41063
    )
    clock.advance(86401)
    assert (
        client.post("externalcontact/remind_groupmsg_send", data={"msgid": msgid})["errcode"] == 0
    )


def test_a_welcome_code_works_once_and_only_within_20_seconds(fake, client, clock):
    code = fake.driver.add_contact("alice", "wm-new", name="Newcomer").welcome_code
    welcome = {"welcome_code": code, "text": {"content": "Welcome!"}}

    client.external_contact.send_welcome_msg(welcome)

    assert errcode_of(lambda: client.external_contact.send_welcome_msg(welcome)) == 41051
    assert [m["text"]["content"] for m in fake.welcome_messages("wm-new")] == ["Welcome!"]
    late = fake.driver.add_contact("bob", "wm-late").welcome_code
    clock.advance(21)
    assert (
        errcode_of(
            lambda: client.external_contact.send_welcome_msg(
                {"welcome_code": late, "text": {"content": "Too late"}}
            )
        )
        == 41051
    )


def test_calls_over_the_rate_limit_answer_45009_and_are_counted(fake, client):
    limited = 0
    for _ in range(8):
        try:
            client.external_contact.mark_tag("alice", "wm-c0", add_tag=["ettag-new"])
        except APILimitedException:
            limited += 1

    assert limited == 3
    assert fake.max_calls_in_window("externalcontact/mark_tag", 1.0) == 8
    stats = requests.get(fake.url + "/_fake/stats").json()["apis"]["externalcontact/mark_tag"]
    assert (stats["total"], stats["rate_limited"]) == (8, 3)


def test_calls_over_the_concurrency_limit_answer_45033():
    slow = FakeWeCom(concurrency_limits={"externalcontact/remark": 2}, latency=0.2)
    slow.load_world(WORLD)
    data = {"userid": "alice", "external_userid": "wm-c0", "remark": "ok"}
    errcodes = []
    with slow:
        client = client_for(slow)
        client.fetch_access_token()  # once, not from four threads at a time

        def remark():
            try:
                errcodes.append(client.post("externalcontact/remark", data=data)["errcode"])
            except WeChatClientException as e:
                errcodes.append(e.errcode)

        threads = [threading.Thread(target=remark) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert sorted(errcodes) == [0, 0, 45033, 45033]


def test_injected_failures_answer_once(fake, client):
    fake.fail_next("externalcontact/remark", 45033)
    data = {"userid": "alice", "external_userid": "wm-c0", "remark": "ok"}

    assert errcode_of(lambda: client.post("externalcontact/remark", data=data)) == 45033
    assert client.post("externalcontact/remark", data=data)["errcode"] == 0


def test_groupchat_get_shows_the_members_who_joined(fake, client):
    before = client.external_contact_group_chat.get("wr-group1")["group_chat"]

    fake.driver.join_group("wr-group1", ["wm-c0", "wm-c1"], join_scene=3)

    group = client.external_contact_group_chat.get("wr-group1")["group_chat"]
    joined = [(m["userid"], m["type"], m["join_scene"]) for m in group["member_list"]]
    assert joined == [("alice", 1, 1), ("wm-c0", 2, 3), ("wm-c1", 2, 3)]
    assert group["member_version"] != before["member_version"]
    listed = client.external_contact_group_chat.list(owner_userid_list=["alice"])
    assert listed["group_chat_list"] == [{"chat_id": "wr-group1", "status": 0}]


def test_group_statistics_count_members_and_speech(fake, client):
    fake.driver.join_group("wr-group1", ["wm-c0", "wm-c1"])
    fake.driver.speak("wr-group1", "wm-c0", count=4)

    answer = client.external_contact_group_chat.statistic(T0, owner_userid_list=["alice"])

    data = answer["items"][0]["data"]
    assert answer["items"][0]["owner"] == "alice"
    assert (data["chat_total"], data["new_chat_cnt"], data["member_total"]) == (1, 1, 3)
    assert (data["chat_has_msg"], data["member_has_msg"], data["msg_total"]) == (1, 1, 4)


def test_a_join_way_state_reaches_the_member_who_scanned_it(fake, client):
    config_id = client.post(
        "externalcontact/groupchat/add_join_way",
        data={"scene": 2, "chat_id_list": ["wr-group1"], "state": "poster-7"},
    )["config_id"]
    way = client.post("externalcontact/groupchat/get_join_way", data={"config_id": config_id})[
        "join_way"
    ]
    assert way["qr_code"] and way["state"] == "poster-7"

    fake.driver.scan_join_way("poster-7", "wm-c2")

    members = client.external_contact_group_chat.get("wr-group1")["group_chat"]["member_list"]
    assert members[-1]["userid"] == "wm-c2" and members[-1]["state"] == "poster-7"
    assert (
        errcode_of(
            lambda: client.post(
                "externalcontact/groupchat/add_join_way",
                data={"scene": 2, "chat_id_list": ["wr-group1"] * 6},
            )
        )
        == 40058
    )


def test_a_transfer_moves_the_customer_only_once_it_completes(fake, client):
    answer = client.post(
        "externalcontact/transfer_customer",
        data={"handover_userid": "alice", "takeover_userid": "bob", "external_userid": ["wm-c0"]},
    )
    assert answer["customer"] == [{"external_userid": "wm-c0", "errcode": 0}]
    result = {"handover_userid": "alice", "takeover_userid": "bob"}
    assert client.post("externalcontact/transfer_result", data=result)["customer"][0]["status"] == 2

    fake.complete_transfers()

    assert client.post("externalcontact/transfer_result", data=result)["customer"][0]["status"] == 1
    followers = [f["userid"] for f in client.external_contact.get("wm-c0")["follow_user"]]
    assert followers == ["bob"]


def test_an_add_contact_callback_decrypts_to_the_event(fake, receiver):
    answer = fake.driver.add_contact("alice", "wm-new", name="Newcomer", state="spring-qr")

    assert (answer.status, answer.body) == (200, "success")
    envelope = xmltodict.parse(receiver.requests[0]["body"])["xml"]
    assert (envelope["ToUserName"], envelope["AgentID"]) == (fake.corp_id, fake.agent_id)
    event = receiver.decrypt(fake)
    assert event["Event"] == "change_external_contact"
    assert event["ChangeType"] == "add_external_contact"
    assert (event["UserID"], event["ExternalUserID"]) == ("alice", "wm-new")
    assert event["State"] == "spring-qr"
    assert event["WelcomeCode"] == answer.welcome_code


def test_an_add_member_callback_lists_each_joiner(fake, receiver):
    fake.driver.join_group("wr-group1", ["wm-c0", "wm-c1"], join_scene=3)

    event = receiver.decrypt(fake)
    assert (event["Event"], event["ChatId"], event["ChangeType"], event["UpdateDetail"]) == (
        "change_external_chat",
        "wr-group1",
        "update",
        "add_member",
    )
    assert event["JoinScene"] == "3" and event["MemChangeCnt"] == "2"
    assert event["MemChangeList"]["Item"] == ["wm-c0", "wm-c1"]
    assert event["LastMemVer"] != event["CurMemVer"]

    assert fake.driver.replay_last().status == 200
    assert receiver.requests[1] == receiver.requests[0]


def test_a_post_without_content_type_is_accepted(fake, client):
    token = client.access_token
    connection = http.client.HTTPConnection("127.0.0.1", int(fake.url.rsplit(":", 1)[1]))
    body = json.dumps({"tag_id": ["ettag-vip"]}).encode()
    connection.putrequest(
        "POST",
        f"/cgi-bin/externalcontact/get_corp_tag_list?access_token={token}",
        skip_accept_encoding=True,
    )
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)

    answer = json.loads(connection.getresponse().read())
    connection.close()
    assert answer["errcode"] == 0
    assert [t["id"] for t in answer["tag_group"][0]["tag"]] == ["ettag-vip"]


def test_another_process_can_drive_the_fake_over_http(fake, client, receiver):
    msgid = client.external_contact.add_msg_template(
        {"sender": "alice", "external_userid": ["wm-c0"], "text": {"content": "Hi"}}
    )["msgid"]

    confirmed = requests.post(
        fake.url + "/_fake/confirm", json={"msgid": msgid, "userid": "alice"}
    ).json()
    driven = requests.post(
        fake.url + "/_fake/drive/create_group",
        json={"chat_id": "wr-new", "owner": "bob", "name": "Autumn"},
    ).json()
    world = requests.get(fake.url + "/_fake/world").json()["world"]

    assert confirmed["send_list"] == [
        {"external_userid": "wm-c0", "userid": "alice", "status": 1, "send_time": T0}
    ]
    assert (driven["status"], driven["body"]) == (200, "success")
    assert receiver.decrypt(fake)["ChangeType"] == "create"
    assert "wr-new" in [g["chat_id"] for g in world["groups"]]
