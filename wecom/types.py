"""What the gateway hands back: WeCom's answers in our own plain types."""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Attachment:
    """An image, link or mini-program card attached to a message (WeCom's msgtype)."""

    kind: str  # "image" | "link" | "miniprogram"
    media_id: str = ""
    pic_url: str = ""
    title: str = ""
    url: str = ""
    description: str = ""
    appid: str = ""
    page: str = ""

    def as_wecom(self) -> dict:
        if self.kind == "image":
            image = {"media_id": self.media_id} if self.media_id else {"pic_url": self.pic_url}
            return {"msgtype": "image", "image": image}
        if self.kind == "link":
            return {
                "msgtype": "link",
                "link": {
                    "title": self.title,
                    "picurl": self.pic_url,
                    "desc": self.description,
                    "url": self.url,
                },
            }
        if self.kind == "miniprogram":
            return {
                "msgtype": "miniprogram",
                "miniprogram": {
                    "title": self.title,
                    "pic_media_id": self.media_id,
                    "appid": self.appid,
                    "page": self.page,
                },
            }
        raise ValueError(f"unknown attachment kind {self.kind!r}")


@dataclass(frozen=True)
class Content:
    text: str = ""
    attachments: tuple[Attachment, ...] = ()

    def as_wecom(self) -> dict:
        body: dict = {}
        if self.text:
            body["text"] = {"content": self.text}
        if self.attachments:
            body["attachments"] = [a.as_wecom() for a in self.attachments]
        return body


@dataclass(frozen=True)
class MassMessageTask:
    msgid: str
    failed: tuple[str, ...]  # receivers WeCom refused at once (not followed, unknown)


@dataclass(frozen=True)
class CreatedMassMessage:
    msgid: str
    creator: str
    created_at: datetime | None
    text: str
    attachments: tuple[dict, ...]


@dataclass(frozen=True)
class StaffConfirmation:
    userid: str
    sent: bool
    sent_at: datetime | None


@dataclass(frozen=True)
class SendResult:
    userid: str
    external_userid: str
    chat_id: str
    status: int  # 0 not sent, 1 sent, 2 not a friend, 3 over the receiver's limit
    sent_at: datetime | None


@dataclass(frozen=True)
class StaffInfo:
    userid: str
    name: str
    active: bool


@dataclass(frozen=True)
class FollowInfo:
    userid: str
    remark: str
    description: str
    added_at: datetime
    tag_ids: tuple[str, ...]
    state: str
    add_way: int


@dataclass(frozen=True)
class ContactInfo:
    external_userid: str
    name: str
    gender: int
    avatar: str
    unionid: str
    follow: FollowInfo


@dataclass(frozen=True)
class CorpTag:
    id: str
    name: str
    order: int


@dataclass(frozen=True)
class CorpTagGroup:
    id: str
    name: str
    order: int
    tags: tuple[CorpTag, ...]


@dataclass(frozen=True)
class GroupMember:
    userid: str  # an external_userid when is_external
    is_external: bool
    joined_at: datetime
    join_scene: int | None
    invitor_userid: str
    name: str


@dataclass(frozen=True)
class GroupInfo:
    chat_id: str
    name: str
    owner: str
    notice: str
    created_at: datetime | None
    admins: tuple[str, ...]
    members: tuple[GroupMember, ...]


@dataclass(frozen=True)
class GroupDayStatistics:
    owner: str
    new_chats: int
    chats: int
    chats_with_messages: int
    new_members: int
    members: int
    members_who_spoke: int
    messages: int


@dataclass(frozen=True)
class ChannelCodeResult:
    config_id: str
    qr_url: str


@dataclass(frozen=True)
class TransferResult:
    external_userid: str
    status: int  # 1 done, 2 waiting, 3 refused by the customer, 4 over the receiver's limit
    error_code: int = 0
    taken_over_at: datetime | None = None


@dataclass(frozen=True)
class FailedGroupTransfer:
    chat_id: str
    error_code: int
    message: str = ""
