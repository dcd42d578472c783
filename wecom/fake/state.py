"""The fake WeCom's in-memory world: staff, customers, tags, groups and what the APIs recorded."""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

STAFF_ACTIVE = 1
MEMBER_STAFF = 1
MEMBER_EXTERNAL = 2
SHANGHAI_UTC_OFFSET = 8 * 3600  # WeCom counts calendar days in China time

# Mass message receipt statuses, as get_groupmsg_send_result reports them.
RECEIPT_UNSENT = 0
RECEIPT_SENT = 1
RECEIPT_NOT_FRIEND = 2
RECEIPT_RECEIVE_LIMIT = 3
TASK_UNSENT = 0
TASK_SENT = 2

# Transfer statuses, as transfer_result reports them.
TRANSFER_DONE = 1
TRANSFER_WAITING = 2
TRANSFER_REFUSED = 3


@dataclass
class Staff:
    userid: str
    name: str = ""
    status: int = STAFF_ACTIVE  # 1 active, 2 disabled, 4 not activated, 5 left


@dataclass
class FollowInfo:
    """One staff member's relation to a customer (WeCom's follow_user entry)."""

    userid: str
    remark: str = ""
    description: str = ""
    createtime: int = 0
    tags: list[str] = field(default_factory=list)
    state: str = ""
    add_way: int = 0


@dataclass
class Contact:
    external_userid: str
    name: str = ""
    type: int = 1  # 1 WeChat user, 2 WeCom user
    gender: int = 0
    avatar: str = ""
    unionid: str = ""
    follow_users: list[FollowInfo] = field(default_factory=list)

    def follow(self, userid: str) -> FollowInfo | None:
        return next((f for f in self.follow_users if f.userid == userid), None)


@dataclass
class Tag:
    id: str
    name: str
    order: int = 0
    create_time: int = 0


@dataclass
class TagGroup:
    group_id: str
    group_name: str
    order: int = 0
    create_time: int = 0
    tags: list[Tag] = field(default_factory=list)


@dataclass
class GroupMember:
    userid: str
    type: int = MEMBER_EXTERNAL
    join_time: int = 0
    join_scene: int = 1  # 1 invited directly, 2 via link, 3 scanned a QR code
    invitor: str | None = None
    name: str = ""
    group_nickname: str = ""
    state: str = ""  # the join way's state, when the member came through one


@dataclass
class Group:
    chat_id: str
    name: str = ""
    owner: str = ""
    notice: str = ""
    create_time: int = 0
    admin_list: list[str] = field(default_factory=list)
    members: list[GroupMember] = field(default_factory=list)
    status: int = 0  # 0 normal, 1 owner left, 2 being inherited, 3 inherited
    dismissed: bool = False

    def member(self, userid: str) -> GroupMember | None:
        return next((m for m in self.members if m.userid == userid), None)

    @property
    def member_version(self) -> str:
        # WeCom's versions are opaque hex strings that change with the membership.
        ids = ",".join(sorted(m.userid for m in self.members))
        return hashlib.md5(ids.encode()).hexdigest()


@dataclass
class WelcomeCode:
    code: str
    userid: str
    external_userid: str
    issued_at: float
    used: bool = False


@dataclass
class WelcomeMessage:
    """A welcome message the app sent with send_welcome_msg, kept so tests can assert it."""

    welcome_code: str
    userid: str
    external_userid: str
    text: dict | None
    attachments: list
    sent_at: int


@dataclass
class MassTask:
    """One sender's share of a mass message; the sender confirms it in the WeCom app."""

    userid: str
    status: int = TASK_UNSENT
    send_time: int = 0


@dataclass
class MassReceipt:
    sender: str
    target: str  # external_userid for chat_type single, chat_id for group
    status: int = RECEIPT_UNSENT
    send_time: int = 0


@dataclass
class MassMessage:
    msgid: str
    chat_type: str
    creator: str
    create_time: int
    text: dict | None
    attachments: list
    tasks: dict[str, MassTask] = field(default_factory=dict)
    receipts: list[MassReceipt] = field(default_factory=list)
    reminders: list[float] = field(default_factory=list)
    cancelled: bool = False
    create_type: int = 0  # 0 created by the corp (API), 1 by a staff member


@dataclass
class Transfer:
    kind: str  # "onjob" or "resigned"
    handover_userid: str
    takeover_userid: str
    external_userid: str
    requested_at: int
    status: int = TRANSFER_WAITING
    takeover_time: int = 0


@dataclass
class Speech:
    """Messages someone said in a group; only group statistics see them."""

    chat_id: str
    userid: str
    at: int
    count: int


class World:
    """Everything the fake knows. Hold `lock` while reading or changing any of it."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        mass_message_cap: int = 1,
        mass_message_cap_period: str = "day",
        welcome_code_ttl: float = 20,
    ):
        self.lock = threading.RLock()
        self.clock = clock
        self.welcome_code_ttl = welcome_code_ttl
        self.mass_message_cap = mass_message_cap
        self.mass_message_cap_period = mass_message_cap_period
        self._ids = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        self.staff: dict[str, Staff] = {}
        self.contacts: dict[str, Contact] = {}
        self.tag_groups: dict[str, TagGroup] = {}
        self.groups: dict[str, Group] = {}
        self.contact_ways: dict[str, dict[str, Any]] = {}
        self.join_ways: dict[str, dict[str, Any]] = {}
        self.mass_messages: dict[str, MassMessage] = {}
        # (receiver, period) -> mass messages delivered, for the per-receiver cap
        self.mass_deliveries: dict[tuple[str, int], int] = {}
        self.transfers: list[Transfer] = []
        self.welcome_codes: dict[str, WelcomeCode] = {}
        self.welcome_messages: list[WelcomeMessage] = []
        self.speeches: list[Speech] = []

    def now(self) -> int:
        return int(self.clock())

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    # Lookups shared by the API handlers and the driver.

    def find_tag(self, tag_id: str) -> tuple[TagGroup, Tag] | None:
        for group in self.tag_groups.values():
            for tag in group.tags:
                if tag.id == tag_id:
                    return group, tag
        return None

    def follows_of(self, userid: str) -> list[tuple[Contact, FollowInfo]]:
        pairs = []
        for contact in self.contacts.values():
            follow = contact.follow(userid)
            if follow is not None:
                pairs.append((contact, follow))
        return pairs

    def live_group(self, chat_id: str) -> Group | None:
        group = self.groups.get(chat_id)
        return group if group is not None and not group.dismissed else None

    def cap_period(self, timestamp: int) -> int:
        """The number of the day, week or month (China time) a delivery counts against."""
        day = (timestamp + SHANGHAI_UTC_OFFSET) // 86400
        if self.mass_message_cap_period == "week":
            return (day + 3) // 7  # 1970-01-01 was a Thursday: weeks start on Monday
        if self.mass_message_cap_period == "month":
            t = time.gmtime(timestamp + SHANGHAI_UTC_OFFSET)
            return t.tm_year * 12 + t.tm_mon
        return day

    # Seeding and snapshots, in the dict shape documented on FakeWeCom.load_world.

    def load(self, data: dict[str, Any]) -> None:
        self.reset()
        now = self.now()
        for row in data.get("staff", []):
            staff = Staff(row["userid"], row.get("name", ""), row.get("status", STAFF_ACTIVE))
            self.staff[staff.userid] = staff
        for row in data.get("tag_groups", []):
            group = TagGroup(
                row["group_id"],
                row["group_name"],
                row.get("order", 0),
                row.get("create_time", now),
                [
                    Tag(t["id"], t["name"], t.get("order", 0), t.get("create_time", now))
                    for t in row.get("tags", [])
                ],
            )
            self.tag_groups[group.group_id] = group
        for row in data.get("contacts", []):
            contact = Contact(
                row["external_userid"],
                row.get("name", ""),
                row.get("type", 1),
                row.get("gender", 0),
                row.get("avatar", ""),
                row.get("unionid", ""),
                [
                    FollowInfo(
                        f["userid"],
                        f.get("remark", ""),
                        f.get("description", ""),
                        f.get("createtime", now),
                        list(f.get("tags", [])),
                        f.get("state", ""),
                        f.get("add_way", 0),
                    )
                    for f in row.get("follow_users", [])
                ],
            )
            self.contacts[contact.external_userid] = contact
        for row in data.get("groups", []):
            group = Group(
                row["chat_id"],
                row.get("name", ""),
                row["owner"],
                row.get("notice", ""),
                row.get("create_time", now),
                list(row.get("admin_list", [])),
                [
                    GroupMember(
                        m["userid"],
                        m.get("type", MEMBER_EXTERNAL),
                        m.get("join_time", now),
                        m.get("join_scene", 1),
                        m.get("invitor"),
                        m.get("name", ""),
                        m.get("group_nickname", ""),
                        m.get("state", ""),
                    )
                    for m in row.get("members", [])
                ],
                row.get("status", 0),
            )
            if group.member(group.owner) is None:  # a WeCom group always holds its owner
                owner = self.staff.get(group.owner)
                group.members.insert(
                    0,
                    GroupMember(
                        group.owner,
                        MEMBER_STAFF,
                        group.create_time,
                        1,
                        None,
                        owner.name if owner else "",
                    ),
                )
            self.groups[group.chat_id] = group

    def snapshot(self) -> dict[str, Any]:
        return {
            "staff": [
                {"userid": s.userid, "name": s.name, "status": s.status}
                for s in self.staff.values()
            ],
            "contacts": [
                {
                    "external_userid": c.external_userid,
                    "name": c.name,
                    "type": c.type,
                    "gender": c.gender,
                    "avatar": c.avatar,
                    "unionid": c.unionid,
                    "follow_users": [
                        {
                            "userid": f.userid,
                            "remark": f.remark,
                            "description": f.description,
                            "createtime": f.createtime,
                            "tags": list(f.tags),
                            "state": f.state,
                            "add_way": f.add_way,
                        }
                        for f in c.follow_users
                    ],
                }
                for c in self.contacts.values()
            ],
            "tag_groups": [
                {
                    "group_id": g.group_id,
                    "group_name": g.group_name,
                    "order": g.order,
                    "create_time": g.create_time,
                    "tags": [
                        {"id": t.id, "name": t.name, "order": t.order, "create_time": t.create_time}
                        for t in g.tags
                    ],
                }
                for g in self.tag_groups.values()
            ],
            "groups": [
                {
                    "chat_id": g.chat_id,
                    "name": g.name,
                    "owner": g.owner,
                    "notice": g.notice,
                    "create_time": g.create_time,
                    "admin_list": list(g.admin_list),
                    "status": g.status,
                    "members": [
                        {
                            "userid": m.userid,
                            "type": m.type,
                            "join_time": m.join_time,
                            "join_scene": m.join_scene,
                            "invitor": m.invitor,
                            "name": m.name,
                            "group_nickname": m.group_nickname,
                            "state": m.state,
                        }
                        for m in g.members
                    ],
                }
                for g in self.groups.values()
                if not g.dismissed
            ],
        }
