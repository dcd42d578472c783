"""Plays customers and staff for the fake: changes the world, posts the encrypted callback."""

from __future__ import annotations

import hashlib
import itertools
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import xmltodict
from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto

from wecom.fake.api import channels, tags, transfers
from wecom.fake.state import (
    MEMBER_EXTERNAL,
    MEMBER_STAFF,
    TRANSFER_DONE,
    TRANSFER_REFUSED,
    Contact,
    FollowInfo,
    Group,
    GroupMember,
    Speech,
    Tag,
    TagGroup,
    WelcomeCode,
)

if TYPE_CHECKING:
    from wecom.fake.server import FakeWeCom

CALLBACK_TIMEOUT = 5  # seconds; WeCom gives up and retries after 5 s
GROUP_SIZE_FOR_JOIN_WAY = 200  # a QR-code join stops at 200 members


@dataclass
class DriveResult:
    """What the app answered to a callback; status is None when nothing was (or could be) sent."""

    status: int | None
    body: str
    xml: str  # the plaintext event, before encryption
    welcome_code: str | None = None
    chat_id: str | None = None
    error: str | None = None


@dataclass
class SentCallback:
    url: str
    body: bytes
    xml: str


def _xml_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "".join(f"<Item>{_xml_value(v)}</Item>" for v in value)
    return "<![CDATA[" + str(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def event_xml(corp_id: str, created: int, event: str, fields: list[tuple[str, Any]]) -> str:
    """The plaintext of a WeCom event; fields keep the order WeCom's documentation shows."""
    parts = [
        ("ToUserName", corp_id),
        ("FromUserName", "sys"),
        ("CreateTime", created),
        ("MsgType", "event"),
        ("Event", event),
        *fields,
    ]
    return (
        "<xml>"
        + "".join(
            f"<{name}>{_xml_value(value)}</{name}>" for name, value in parts if value is not None
        )
        + "</xml>"
    )


class Driver:
    """Each action changes the world under its lock, then posts the callback outside it
    (the app may call the fake back while it handles the callback)."""

    ACTIONS = (
        "add_contact",
        "edit_contact",
        "staff_deletes_contact",
        "contact_deletes_staff",
        "scan_contact_way",
        "create_group",
        "dismiss_group",
        "join_group",
        "leave_group",
        "scan_join_way",
        "change_owner",
        "change_name",
        "change_notice",
        "tag_event",
        "speak",
        "complete_transfers",
        "replay_last",
        "verify_url",
    )

    def __init__(self, fake: FakeWeCom):
        self.fake = fake
        self.world = fake.world
        self.sent: list[SentCallback] = []
        self._round_robin = itertools.count()

    # Customers and staff.

    def add_contact(
        self,
        userid: str,
        external_userid: str,
        name: str = "",
        state: str = "",
        with_welcome_code: bool = True,
        *,
        add_way: int | None = None,
        gender: int = 0,
        avatar: str = "",
        unionid: str = "",
    ) -> DriveResult:
        """The customer adds the staff member; the result carries the fresh welcome code."""
        with self.world.lock:
            self._staff(userid)
            now = self.world.now()
            contact = self.world.contacts.get(external_userid)
            if contact is None:
                contact = Contact(external_userid, name, 1, gender, avatar, unionid)
                self.world.contacts[external_userid] = contact
            elif name:
                contact.name = name
            old = contact.follow(userid)
            if old is not None:
                contact.follow_users.remove(old)
            add_way = add_way if add_way is not None else (1 if state else 0)
            contact.follow_users.append(
                FollowInfo(userid, createtime=now, state=state, add_way=add_way)
            )
            welcome_code = None
            if with_welcome_code:
                welcome_code = secrets.token_urlsafe(24)
                self.world.welcome_codes[welcome_code] = WelcomeCode(
                    welcome_code, userid, external_userid, self.world.clock()
                )
            xml = self._event(
                "change_external_contact",
                [
                    ("ChangeType", "add_external_contact"),
                    ("UserID", userid),
                    ("ExternalUserID", external_userid),
                    ("State", state or None),
                    ("WelcomeCode", welcome_code),
                ],
            )
        result = self._deliver(xml)
        result.welcome_code = welcome_code
        return result

    def edit_contact(
        self,
        userid: str,
        external_userid: str,
        *,
        remark: str | None = None,
        description: str | None = None,
        name: str | None = None,
    ) -> DriveResult:
        """The staff member edits the customer in the WeCom app."""
        with self.world.lock:
            contact, follow = self._follow(userid, external_userid)
            if remark is not None:
                follow.remark = remark
            if description is not None:
                follow.description = description
            if name is not None:
                contact.name = name
            xml = self._contact_event("edit_external_contact", userid, external_userid)
        return self._deliver(xml)

    def staff_deletes_contact(self, userid: str, external_userid: str) -> DriveResult:
        with self.world.lock:
            contact, follow = self._follow(userid, external_userid)
            contact.follow_users.remove(follow)
            xml = self._contact_event("del_external_contact", userid, external_userid)
        return self._deliver(xml)

    def contact_deletes_staff(self, userid: str, external_userid: str) -> DriveResult:
        with self.world.lock:
            contact, follow = self._follow(userid, external_userid)
            contact.follow_users.remove(follow)
            xml = self._contact_event("del_follow_user", userid, external_userid)
        return self._deliver(xml)

    def scan_contact_way(self, code: str, external_userid: str, name: str = "") -> DriveResult:
        """A customer scans a 'contact me' code (its config_id or state): they add one of its
        staff, and the add event carries the code's state."""
        with self.world.lock:
            way = self._way(self.world.contact_ways, code)
            if not way.get("user"):
                raise ValueError(f"contact way {code} has no users")
            users = way["user"]
            userid = users[next(self._round_robin) % len(users)]
            state = way.get("state", "")
        return self.add_contact(userid, external_userid, name, state)

    def complete_transfers(self, refuse: list[str] | tuple[str, ...] = ()) -> list[DriveResult]:
        """WeCom finishes waiting transfers (it takes 24 h); refused customers stay put."""
        with self.world.lock:
            finished = transfers.complete_transfers(self.world, tuple(refuse))
            events = []
            for t in finished:
                if t.status == TRANSFER_REFUSED:
                    events.append(
                        self._event(
                            "change_external_contact",
                            [
                                ("ChangeType", "transfer_fail"),
                                ("FailReason", "customer_refused"),
                                ("UserID", t.takeover_userid),
                                ("ExternalUserID", t.external_userid),
                            ],
                        )
                    )
                elif t.status == TRANSFER_DONE and t.kind == "onjob":
                    events.append(
                        self._contact_event(
                            "del_external_contact",
                            t.handover_userid,
                            t.external_userid,
                            source="DELETE_BY_TRANSFER",
                        )
                    )
        return [self._deliver(xml) for xml in events]

    # Customer groups.

    def create_group(
        self, chat_id: str, owner: str, name: str = "", *, notice: str = ""
    ) -> DriveResult:
        with self.world.lock:
            staff = self._staff(owner)
            if self.world.live_group(chat_id) is not None:
                raise ValueError(f"group exists: {chat_id}")
            now = self.world.now()
            self.world.groups[chat_id] = Group(
                chat_id,
                name,
                owner,
                notice,
                now,
                members=[GroupMember(owner, MEMBER_STAFF, now, 1, None, staff.name)],
            )
            xml = self._chat_event(chat_id, "create")
        result = self._deliver(xml)
        result.chat_id = chat_id
        return result

    def dismiss_group(self, chat_id: str) -> DriveResult:
        with self.world.lock:
            self._group(chat_id).dismissed = True
            xml = self._chat_event(chat_id, "dismiss")
        return self._deliver(xml)

    def join_group(
        self,
        chat_id: str,
        external_userids: list[str],
        join_scene: int = 3,
        *,
        invitor: str | None = None,
        state: str = "",
    ) -> DriveResult:
        """People join a group; staff user ids join as staff members (type 1)."""
        with self.world.lock:
            group = self._group(chat_id)
            last_version = group.member_version
            now = self.world.now()
            joined = [u for u in dict.fromkeys(external_userids) if group.member(u) is None]
            if not joined:
                raise ValueError(f"all of {external_userids} are already in {chat_id}")
            for userid in joined:
                staff = self.world.staff.get(userid)
                contact = self.world.contacts.get(userid)
                name = staff.name if staff else (contact.name if contact else "")
                group.members.append(
                    GroupMember(
                        userid,
                        MEMBER_STAFF if staff else MEMBER_EXTERNAL,
                        now,
                        join_scene,
                        invitor,
                        name,
                        state=state,
                    )
                )
            xml = self._chat_event(
                chat_id,
                "update",
                [
                    ("UpdateDetail", "add_member"),
                    ("JoinScene", join_scene),
                    ("MemChangeCnt", len(joined)),
                    ("MemChangeList", joined),
                    ("LastMemVer", last_version),
                    ("CurMemVer", group.member_version),
                ],
            )
        return self._deliver(xml)

    def leave_group(
        self, chat_id: str, external_userids: list[str], quit_scene: int = 0
    ) -> DriveResult:
        """People leave (quit_scene 0) or are removed (1) from a group."""
        with self.world.lock:
            group = self._group(chat_id)
            last_version = group.member_version
            left = [u for u in dict.fromkeys(external_userids) if group.member(u) is not None]
            if len(left) != len(set(external_userids)):
                raise ValueError(f"not all of {external_userids} are in {chat_id}")
            group.members = [m for m in group.members if m.userid not in left]
            xml = self._chat_event(
                chat_id,
                "update",
                [
                    ("UpdateDetail", "del_member"),
                    ("QuitScene", quit_scene),
                    ("MemChangeCnt", len(left)),
                    ("MemChangeList", left),
                    ("LastMemVer", last_version),
                    ("CurMemVer", group.member_version),
                ],
            )
        return self._deliver(xml)

    def scan_join_way(self, code: str, external_userid: str, name: str = "") -> DriveResult:
        """A customer scans a group join code (its config_id or state): they join its first
        group with room left, and groupchat/get shows the code's state on the member."""
        with self.world.lock:
            way = self._way(self.world.join_ways, code)
            groups = [self.world.live_group(c) for c in way.get("chat_id_list", [])]
            open_groups = [g for g in groups if g and len(g.members) < GROUP_SIZE_FOR_JOIN_WAY]
            if not open_groups:
                raise ValueError(f"every group of join way {code} is full")
            if name and external_userid not in self.world.contacts:
                self.world.contacts[external_userid] = Contact(external_userid, name)
            chat_id, state = open_groups[0].chat_id, way.get("state", "")
        result = self.join_group(chat_id, [external_userid], 3, state=state)
        result.chat_id = chat_id
        return result

    def change_owner(self, chat_id: str, new_owner: str) -> DriveResult:
        with self.world.lock:
            staff = self._staff(new_owner)
            group = self._group(chat_id)
            group.owner = new_owner
            if group.member(new_owner) is None:
                group.members.append(
                    GroupMember(new_owner, MEMBER_STAFF, self.world.now(), 1, None, staff.name)
                )
            xml = self._chat_event(chat_id, "update", [("UpdateDetail", "change_owner")])
        return self._deliver(xml)

    def change_name(self, chat_id: str, name: str) -> DriveResult:
        with self.world.lock:
            self._group(chat_id).name = name
            xml = self._chat_event(chat_id, "update", [("UpdateDetail", "change_name")])
        return self._deliver(xml)

    def change_notice(self, chat_id: str, notice: str) -> DriveResult:
        with self.world.lock:
            self._group(chat_id).notice = notice
            xml = self._chat_event(chat_id, "update", [("UpdateDetail", "change_notice")])
        return self._deliver(xml)

    def speak(
        self, chat_id: str, userid: str, count: int = 1, at: int | None = None
    ) -> DriveResult:
        """Someone says count messages in a group. WeCom pushes no callback for this;
        only groupchat/statistic sees it."""
        with self.world.lock:
            self._group(chat_id)
            when = at if at is not None else self.world.now()
            self.world.speeches.append(Speech(chat_id, userid, when, count))
        return DriveResult(None, "", "")

    # Tags edited in the admin console.

    def tag_event(
        self,
        kind: str = "tag",
        change_type: str = "create",
        id: str | None = None,
        *,
        name: str | None = None,
        group_id: str | None = None,
        order: int | None = None,
        orders: dict[str, int] | None = None,
        strategy_id: int | None = None,
    ) -> DriveResult:
        """Change the tag library as an admin would, then send change_external_tag.
        create/update/delete act on the tag or group `id`; shuffle applies `orders`."""
        if kind not in ("tag", "tag_group"):
            raise ValueError(f"kind must be tag or tag_group, not {kind}")
        with self.world.lock:
            world = self.world
            now = world.now()
            if change_type == "create" and kind == "tag":
                group = world.tag_groups.get(group_id or "")
                if group is None:
                    raise ValueError(f"unknown tag group: {group_id}")
                id = id or world.new_id("ettag")
                group.tags.append(Tag(id, name or id, order or 0, now))
            elif change_type == "create":
                id = id or world.new_id("etgroup")
                world.tag_groups[id] = TagGroup(id, name or id, order or 0, now)
            elif change_type in ("update", "delete"):
                self._apply_tag_change(kind, change_type, id, name, order)
            elif change_type == "shuffle":
                for item_id, new_order in (orders or {}).items():
                    self._apply_tag_change(
                        "tag_group" if item_id in world.tag_groups else "tag",
                        "update",
                        item_id,
                        None,
                        new_order,
                    )
            else:
                raise ValueError(f"unknown change_type: {change_type}")
            xml = self._event(
                "change_external_tag",
                [
                    ("Id", id or ""),
                    ("TagType", kind),
                    ("ChangeType", change_type),
                    ("StrategyId", strategy_id),
                ],
            )
        return self._deliver(xml)

    def _apply_tag_change(
        self, kind: str, change_type: str, id: str | None, name: str | None, order: int | None
    ) -> None:
        world = self.world
        if kind == "tag_group":
            item = world.tag_groups.get(id or "")
            if item is None:
                raise ValueError(f"unknown tag group: {id}")
            if change_type == "delete":
                tags.delete_tags(world, [], [item.group_id])
                return
            item.group_name = name if name is not None else item.group_name
        else:
            found = world.find_tag(id or "")
            if found is None:
                raise ValueError(f"unknown tag: {id}")
            item = found[1]
            if change_type == "delete":
                tags.delete_tags(world, [item.id], [])
                return
            item.name = name if name is not None else item.name
        if order is not None:
            item.order = order

    # Delivery.

    def replay_last(self) -> DriveResult:
        """Send the last callback again byte for byte, as WeCom does when the app was slow."""
        if not self.sent:
            raise ValueError("no callback sent yet")
        last = self.sent[-1]
        return self._post(last.url, last.body, last.xml)

    def verify_url(self) -> DriveResult:
        """WeCom's URL check: a GET with an encrypted echostr the app must answer decrypted."""
        url = self._callback_url()
        echo = secrets.token_hex(8)
        crypto = WeChatCrypto(self.fake.token, self.fake.aes_key, self.fake.corp_id)
        echostr = PrpCrypto(crypto.key).encrypt(echo, self.fake.corp_id).decode()
        timestamp, nonce = str(self.world.now()), secrets.token_hex(5)
        query = urllib.parse.urlencode(
            {
                "msg_signature": signature(self.fake.token, timestamp, nonce, echostr),
                "timestamp": timestamp,
                "nonce": nonce,
                "echostr": echostr,
            }
        )
        return self._post(f"{url}{'&' if '?' in url else '?'}{query}", None, echo)

    def _deliver(self, xml: str) -> DriveResult:
        url = self.fake.callback_url
        if not url:
            return DriveResult(None, "", xml)
        timestamp, nonce = str(self.world.now()), secrets.token_hex(5)
        crypto = WeChatCrypto(self.fake.token, self.fake.aes_key, self.fake.corp_id)
        # wechatpy gives a reply envelope; WeCom's POST carries the signature in the query string
        # and the body has ToUserName, AgentID and Encrypt.
        envelope = xmltodict.parse(crypto.encrypt_message(xml, nonce, timestamp))["xml"]
        body = (
            f"<xml><ToUserName><![CDATA[{self.fake.corp_id}]]></ToUserName>"
            f"<AgentID><![CDATA[{self.fake.agent_id}]]></AgentID>"
            f"<Encrypt><![CDATA[{envelope['Encrypt']}]]></Encrypt></xml>"
        ).encode()
        query = urllib.parse.urlencode(
            {"msg_signature": envelope["MsgSignature"], "timestamp": timestamp, "nonce": nonce}
        )
        sent = SentCallback(f"{url}{'&' if '?' in url else '?'}{query}", body, xml)
        self.sent.append(sent)
        return self._post(sent.url, sent.body, xml)

    def _post(self, url: str, body: bytes | None, xml: str) -> DriveResult:
        request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
        if body:
            request.add_header("Content-Type", "text/xml")
        try:
            with urllib.request.urlopen(request, timeout=CALLBACK_TIMEOUT) as response:
                return DriveResult(response.status, response.read().decode(errors="replace"), xml)
        except urllib.error.HTTPError as e:
            return DriveResult(e.code, e.read().decode(errors="replace"), xml)
        except (urllib.error.URLError, OSError) as e:
            return DriveResult(None, "", xml, error=str(e))

    # Helpers; call with the world lock held.

    def _callback_url(self) -> str:
        if not self.fake.callback_url:
            raise ValueError("the fake has no callback_url")
        return self.fake.callback_url

    def _event(self, event: str, fields: list[tuple[str, Any]]) -> str:
        return event_xml(self.fake.corp_id, self.world.now(), event, fields)

    def _contact_event(
        self, change_type: str, userid: str, external_userid: str, source: str | None = None
    ) -> str:
        return self._event(
            "change_external_contact",
            [
                ("ChangeType", change_type),
                ("UserID", userid),
                ("ExternalUserID", external_userid),
                ("Source", source),
            ],
        )

    def _chat_event(
        self, chat_id: str, change_type: str, fields: list[tuple[str, Any]] | None = None
    ) -> str:
        return self._event(
            "change_external_chat",
            [("ChatId", chat_id), ("ChangeType", change_type), *(fields or [])],
        )

    def _staff(self, userid: str):
        staff = self.world.staff.get(userid)
        if staff is None:
            raise ValueError(f"unknown staff member: {userid}")
        return staff

    @staticmethod
    def _way(ways: dict[str, dict[str, Any]], code: str) -> dict[str, Any]:
        way = ways.get(code) or channels.way_by_state(ways, code)
        if way is None:
            raise ValueError(f"no channel code with config_id or state {code!r}")
        return way

    def _group(self, chat_id: str) -> Group:
        group = self.world.live_group(chat_id)
        if group is None:
            raise ValueError(f"unknown group: {chat_id}")
        return group

    def _follow(self, userid: str, external_userid: str) -> tuple[Contact, FollowInfo]:
        contact = self.world.contacts.get(external_userid)
        follow = contact.follow(userid) if contact else None
        if follow is None:
            raise ValueError(f"{userid} does not follow {external_userid}")
        return contact, follow


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """WeCom's msg_signature: sha1 over the sorted concatenation."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()
