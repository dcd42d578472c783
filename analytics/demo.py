"""Demo data: a deterministic, realistic private-domain history loaded into the database."""

import bisect
import heapq
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import accumulate, islice
from random import Random
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Count, Q, Sum

from analytics.events import EventRow, event_key, record_many
from analytics.models import Event, EventType
from campaigns.models import Campaign, Cost, Order
from contacts.models import (
    ChannelCode,
    Contact,
    ContactTag,
    Follow,
    MemberTier,
    PointsEntry,
    Staff,
    Tag,
    TagGroup,
    TagSource,
)
from groups.models import Group, GroupMembership

SHANGHAI = ZoneInfo("Asia/Shanghai")
MINUTE = 60
HOUR = 3600
DAY = 86_400
NEVER = 10**12  # seconds; later than any simulated instant
ENTITY_BATCH_SIZE = 5_000
EVENT_BATCH_SIZE = 50_000
PROGRESS_EVERY_DAYS = 10

CONTACT_PREFIX = "wm-demo-"
GROUP_PREFIX = "wr-demo-"
STAFF_PREFIX = "demo-staff-"

# Tier thresholds (the product's examples): VIP1 on joining; VIP2 after a first order of at
# least 1 yuan; VIP3 after 3 orders and ¥300 spent (a tier needs all of its thresholds, as
# contacts.tiers applies them).
VIP2_MIN_ORDER_FEN = 100
VIP3_MIN_ORDERS = 3
VIP3_MIN_SPEND_FEN = 30_000
DORMANT_AFTER = 30 * DAY  # the articles' wake-up rule: 30 days without activity
REFERRAL_ATTRIBUTION = 30 * DAY  # a referred contact's orders credit the referrer this long
EARLY_EXIT_SHARE = 0.08  # newcomers who take the welcome gift and leave the group at once

# Talk classes: who speaks how often (per day in a group) and how much when they do.
LURKER, OCCASIONAL, REGULAR, KOC, KOL = range(5)
TALK_RANGES = {
    OCCASIONAL: (0.03, 0.14),
    REGULAR: (0.15, 0.40),
    KOC: (0.55, 0.85),
    KOL: (0.30, 0.55),
}
# (minimum, mean extra) messages on a day someone speaks.
MESSAGES_PER_DAY = {OCCASIONAL: (1, 0.7), REGULAR: (1, 3.0), KOC: (3, 12.0), KOL: (2, 6.0)}


@dataclass(frozen=True)
class DemoConfig:
    """What to generate. The default preset is real life; --scale is a load test."""

    seed: int
    end_date: date  # the history ends at 00:00 (Shanghai) of this day
    days: int
    contacts: int
    groups: int
    staff: int
    # Shares of lurker / occasional / regular / KOC / KOL talkers.
    talk_shares: tuple[float, float, float, float, float]
    chattiness: float  # multiplies everyone's daily chance to speak
    launch_share: float  # share of contacts arriving in the first week (an opening push)
    early_group_share: float  # share of acquisition/benefit groups open from day one
    acquisition_invite_rate: float  # contacts invited into an acquisition group on arrival
    benefit_invite_rate: float  # buyers invited into a benefit (VIP) group the next day
    benefit_without_order_rate: float  # non-buyers invited to a benefit group anyway
    flash_join_rate: float  # contacts joining a flash group when a flash campaign runs
    rejoin_rate: float  # leavers who come back
    # One MESSAGE row per message (as the chat archive, 会话存档, would feed the log) instead
    # of one per member, group and day carrying the day's count (as groupchat/statistic).
    row_per_message: bool = False


DEFAULT_PRESET = {
    "contacts": 2_000,
    "groups": 40,
    "staff": 12,
    "talk_shares": (0.62, 0.28, 0.08, 0.015, 0.005),
    "chattiness": 1.6,
    "launch_share": 0.08,
    "early_group_share": 0.25,
    "acquisition_invite_rate": 0.75,
    "benefit_invite_rate": 0.75,
    "benefit_without_order_rate": 0.15,
    "flash_join_rate": 0.25,
    "rejoin_rate": 0.2,
}
# A load test, not a demo: members far chattier than real life, and speech logged a row per
# message (the chat-archive source), which brings 100,000 contacts to ~10M events.
SCALE_PRESET = {
    "contacts": 100_000,
    "groups": 1_000,
    "staff": 48,
    "talk_shares": (0.35, 0.2, 0.35, 0.07, 0.03),
    "chattiness": 0.9,
    "launch_share": 0.35,
    "early_group_share": 0.5,
    "acquisition_invite_rate": 0.97,
    "benefit_invite_rate": 0.95,
    "benefit_without_order_rate": 0.7,
    "flash_join_rate": 0.6,
    "rejoin_rate": 0.3,
    "row_per_message": True,
}


def demo_config(
    *,
    seed: int = 42,
    scale: bool = False,
    contacts: int | None = None,
    days: int = 90,
    end_date: date | None = None,
) -> DemoConfig:
    """The preset (default or --scale), resized proportionally when `contacts` is given."""
    preset = SCALE_PRESET if scale else DEFAULT_PRESET
    if contacts is not None and contacts < 20:
        raise ValueError("a demo needs at least 20 contacts")
    if days < 7:
        raise ValueError("a demo needs at least 7 days")
    count = contacts or preset["contacts"]
    ratio = count / preset["contacts"]
    return DemoConfig(
        seed=seed,
        end_date=end_date or datetime.now(SHANGHAI).date(),
        days=days,
        contacts=count,
        groups=max(6, round(preset["groups"] * ratio)),
        staff=max(12, round(preset["staff"] * ratio)),
        talk_shares=preset["talk_shares"],
        chattiness=preset["chattiness"],
        launch_share=preset["launch_share"],
        early_group_share=preset["early_group_share"],
        acquisition_invite_rate=preset["acquisition_invite_rate"],
        benefit_invite_rate=preset["benefit_invite_rate"],
        benefit_without_order_rate=preset["benefit_without_order_rate"],
        flash_join_rate=preset["flash_join_rate"],
        rejoin_rate=preset["rejoin_rate"],
        row_per_message=preset.get("row_per_message", False),
    )


# ---------------------------------------------------------------------------------------------
# Catalogues (the demo brand: 花漾, a skincare and make-up brand)

STAFF_NAMES = [
    "林小夏", "王芳", "李静", "张敏", "刘婷", "陈磊",
    "杨洋", "赵倩", "黄悦", "周杰", "吴晨", "徐娜",
]  # fmt: skip
SURNAMES = "王李张刘陈杨黄赵周吴徐孙马朱胡郭何林罗高"
GIVEN_NAMES = ["佳", "琳", "雪", "宁", "欣", "然", "瑶", "凯", "涛", "雯", "露", "晴"]

# state, name, kind, short label (for remarks), join rate, arrival weight, cost per arrival (fen)
CHANNELS = [
    ("douyin-live", "抖音直播间引流码", ChannelCode.Kind.STAFF, "抖音", 0.06, 22, 2_500),
    ("taobao-card", "淘宝包裹卡", ChannelCode.Kind.STAFF, "淘宝", 0.04, 18, 300),
    ("jd-card", "京东包裹卡", ChannelCode.Kind.STAFF, "京东", 0.03, 8, 300),
    ("offline-store", "门店地推码", ChannelCode.Kind.STAFF, "门店", 0.22, 14, 1_000),
    ("xhs-note", "小红书笔记引流码", ChannelCode.Kind.STAFF, "小红书", 0.05, 10, 1_800),
    ("old-friend-invite", "老带新专属海报", ChannelCode.Kind.STAFF, "老带新", 0.18, 0, 0),
    ("mp-article-group", "公众号文章群活码", ChannelCode.Kind.GROUP, "公众号", 0.08, 10, 0),
    ("fission-poster", "裂变海报群活码", ChannelCode.Kind.GROUP, "裂变", 0.12, 6, 0),
]
REFERRAL_CHANNELS = ("old-friend-invite", "fission-poster")
# Staff codes that staff 01 (the demo operator) answers.
STAFF_01_CHANNELS = ("douyin-live", "taobao-card", "offline-store", "old-friend-invite")

TIERS = [
    # name, level, min orders, min single order (fen), min spend (fen), rights
    ("VIP1", 1, 0, 0, 0, ["入群福利", "生日礼"]),
    ("VIP2", 2, 1, VIP2_MIN_ORDER_FEN, 0, ["入群福利", "生日礼", "会员日 9 折"]),
    (
        "VIP3",
        3,
        VIP3_MIN_ORDERS,
        0,
        VIP3_MIN_SPEND_FEN,
        ["入群福利", "生日礼", "会员日 8 折", "新品优先试用", "专属顾问"],
    ),
]

BASIC, BEHAVIOUR, INTEREST = "基础属性", "行为", "兴趣"
TAG_CATALOGUE = [
    (BASIC, ["男", "女", "18-24岁", "25-34岁", "35-44岁", "45岁以上"]
     + ["华东", "华南", "华北", "华中", "西南"]),
    (BEHAVIOUR, ["已购", "复购客户", "参加过活动", "沉睡"]),
    (INTEREST, ["简约风", "国潮风", "轻奢风", "护肤", "彩妆", "香氛", "身体护理"]),
]  # fmt: skip
AGE_TAGS = ["18-24岁", "25-34岁", "35-44岁", "45岁以上"]
AGE_WEIGHTS = [0.22, 0.45, 0.23, 0.10]
REGION_TAGS = ["华东", "华南", "华北", "华中", "西南"]
REGION_WEIGHTS = [0.34, 0.24, 0.18, 0.13, 0.11]
INTEREST_TAGS = ["简约风", "国潮风", "轻奢风", "护肤", "彩妆", "香氛", "身体护理"]

PRODUCTS = [
    ("焕颜精华液 30ml", 29_900),
    ("修护面霜 50g", 25_900),
    ("氨基酸洁面乳", 8_900),
    ("清透防晒乳 SPF50", 12_900),
    ("补水面膜 10片", 9_900),
    ("丝绒口红", 15_900),
    ("紧致眼霜", 32_900),
    ("香氛身体乳", 11_900),
    ("卸妆水 500ml", 7_900),
    ("旅行装套盒", 5_900),
]
TRIAL_PRODUCTS = [("体验装小样", 99), ("9.9元体验装", 990)]

NICK_HEADS = ["小", "阿", "大", "", "", "Miss ", ""]
NICK_BODIES = [
    "雨", "桃", "鱼", "米", "糖", "柚", "橙", "兔", "喵", "熊", "鹿", "星", "月", "云", "晴", "夏",
    "Coco", "Lily", "Amy", "Vivi", "Momo", "Kiki", "Yoyo", "Nana", "Summer", "Cherry", "Lucy",
    "岁月静好", "向日葵", "追光者", "小确幸", "慢半拍", "橘子汽水", "一颗柠檬", "山茶花",
]  # fmt: skip
NICK_TAILS = ["", "", "", "酱", "呀", "🌸", "_", "同学", "妈妈", "2023", "🍑"]

GROUP_NOTICE = {
    Group.Type.ACQUISITION: "欢迎来到花漾新人福利群!每天 07:30 早打卡,12:00 护肤小课堂,"
    "20:30 晚间答疑。新人首单立减 20 元,私聊群主领取。",
    Group.Type.BENEFIT: "花漾 VIP 会员群:周一种草,周三会员日,周五老带新有礼。"
    "积分可在积分商城兑换小样。",
    Group.Type.FLASH: "限时活动群:活动结束后 7 天解散,请及时下单。",
}
GROUP_RULES = "1. 禁止发广告、链接和二维码;2. 友善交流,不刷屏;3. 违规者将被移出群聊。"
GROUP_WELCOME = "欢迎加入花漾大家庭!回复「福利」领取新人礼包~"


@dataclass(frozen=True)
class CampaignPlan:
    name: str
    type: str
    start_frac: float | None  # of the history; None: after the history (scheduled)
    length_days: int | None  # None: runs past the end of the history
    budget_yuan: int
    rules: dict
    flash_share: float = 0.0  # share of the flash groups run for it
    order_rate: float = 0.0  # chance that a participant orders during it


CAMPAIGNS = [
    CampaignPlan("新人首单立减券", Campaign.Type.COUPON, 0.0, None, 6_000,
                 {"discount_fen": 2_000, "min_spend_fen": 9_900, "valid_days": 7}),
    CampaignPlan("老带新分销计划", Campaign.Type.REFERRAL, 0.10, 40, 10_000,
                 {"commission_rate": 0.1, "reward_points": 50}),
    CampaignPlan("限时秒杀快闪", Campaign.Type.FLASH_SALE, 0.30, 3, 4_000,
                 {"discount": 0.7}, flash_share=0.6, order_rate=0.45),
    CampaignPlan("21天打卡挑战", Campaign.Type.CHECKIN, 0.15, 21, 8_000,
                 {"days": 21, "points_per_checkin": 5}),
    CampaignPlan("三人成团拼团", Campaign.Type.GROUP_BUY, 0.60, 4, 5_000,
                 {"group_size": 3, "discount": 0.8}, flash_share=0.4, order_rate=0.25),
    CampaignPlan("幸运抽奖送正装", Campaign.Type.LOTTERY, 0.78, 5, 6_000,
                 {"prize": "焕颜精华液 正装", "reward_points": 200}, order_rate=0.01),
    CampaignPlan("周年庆满赠", Campaign.Type.SPEND_AND_GET, None, 5, 12_000,
                 {"threshold_fen": 29_900, "gift": "旅行装套盒"}),
]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Time-of-day tables and a counter-based hash, so message details need no stored state


def _time_table(peaks, start_minute: int, end_minute: int, size: int = 4096) -> list[int]:
    """Seconds of the day, quantiles of an intensity curve: table[random index] samples it."""
    weights = [
        1.0 + sum(h * math.exp(-0.5 * ((m - c) / w) ** 2) for c, w, h in peaks)
        for m in range(start_minute, end_minute)
    ]
    cumulative = list(accumulate(weights))
    total = cumulative[-1]
    return [
        (start_minute + bisect.bisect_left(cumulative, (k + 0.5) * total / size)) * MINUTE
        for k in range(size)
    ]


# People speak 07:00-23:00, peaking at the SOP slots 07:30, 12:00 and 20:30.
SPEECH_SECONDS = _time_table(((450, 15, 5.0), (720, 25, 6.0), (1230, 30, 8.0)), 7 * 60, 23 * 60)
# People scan codes and shop 08:00-23:30, most at lunch and in the evening.
ACTIVE_SECONDS = _time_table(((750, 40, 1.5), (1260, 60, 3.0)), 8 * 60, 23 * 60 + 30)
_MASK64 = (1 << 64) - 1


def _mix64(x: int) -> int:
    """splitmix64: a well-spread 64-bit hash, the same on every platform and Python."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _count_table(minimum: int, mean_extra: float, size: int = 256) -> list[int]:
    q = 1.0 / (1.0 + mean_extra)
    return [
        minimum + min(200, int(math.log(1 - (k + 0.5) / size) / math.log(1 - q)))
        for k in range(size)
    ]


COUNT_TABLES = {cls: _count_table(*spec) for cls, spec in MESSAGES_PER_DAY.items()}


# ---------------------------------------------------------------------------------------------
# The world: everything generated in memory, entities referring to each other by index


@dataclass(slots=True)
class StaffPlan:
    userid: str
    name: str
    weight: float


@dataclass(slots=True)
class ChannelPlan:
    state: str
    name: str
    kind: str
    label: str
    join_rate: float
    weight: float
    cost_fen: int
    staff: list[int] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)  # group codes: the groups it rotates through


@dataclass(slots=True)
class CampaignRun:
    plan: CampaignPlan
    start: int
    end: int
    budget_fen: int
    state: str
    flash_groups: list[int] = field(default_factory=list)


@dataclass(slots=True)
class GroupPlan:
    chat_id: str
    name: str
    type: str
    model: str
    owner: int
    admins: list[int]
    created: int
    death: int | None = None  # the operator stops: speech fades, members drift away
    dismissed: int | None = None
    campaign: int | None = None
    stage: str = Group.Stage.FOUNDING
    cap: int = 500
    members: int = 0  # open stays during the simulation (staff included: WeCom counts them)
    vitality: list[float] = field(default_factory=list)


@dataclass(slots=True)
class ContactPlan:
    external_userid: str
    name: str
    gender: int
    added: int
    channel: int
    staff: int = 0
    referrer: int | None = None
    talk_class: int = LURKER
    talk: float = 0.0
    buy: float = 0.0
    advocacy: int = 0
    age_band: int = 0
    region: int = 0
    interests: tuple[int, ...] = ()
    churned_at: int | None = None  # deleted every staff member (拉黑)
    removed_at: int | None = None  # an ad account the staff removed
    opted_out_at: int | None = None
    follows: list[int] = field(default_factory=list)
    stays: list[int] = field(default_factory=list)
    orders: list[int] = field(default_factory=list)
    flash_joins: list[tuple[int, int]] = field(default_factory=list)  # (campaign, time)
    open_groups: set[int] = field(default_factory=set)
    checkins: int = 0
    first_campaign_at: int | None = None
    last_active: int | None = None
    tier: int = 1
    stage: str = Contact.Stage.NEW
    points_balance: int = 0

    @property
    def gone_at(self) -> int:
        return self.churned_at or self.removed_at or NEVER

    @property
    def influence(self) -> str:
        return {KOC: Contact.Influence.KOC, KOL: Contact.Influence.KOL}.get(
            self.talk_class, Contact.Influence.NONE
        )


@dataclass(slots=True)
class FollowPlan:
    contact: int
    staff: int
    added: int
    channel: int | None
    blocked_at: int | None = None
    deleted_at: int | None = None


@dataclass(slots=True)
class StayPlan:
    group: int
    contact: int | None
    staff: int | None
    role: str
    joined: int
    join_scene: int | None
    ordinal: int  # the person's n-th stay in this group: part of the event key
    channel: int | None = None
    invitor: str = ""
    left: int | None = None
    quit_scene: int | None = None
    speech: int = 0  # bit d set: spoke on day d


@dataclass(slots=True)
class OrderPlan:
    contact: int
    at: int
    amount_fen: int
    items: list[dict]
    used_coupon: bool
    campaign: int | None
    order_no: str = ""
    group: int | None = None
    referrer: int | None = None


@dataclass(slots=True)
class PointsPlan:
    contact: int
    at: int
    delta: int
    reason: str
    note: str
    key: str
    balance_after: int = 0


@dataclass(slots=True)
class CostPlan:
    amount_fen: int
    start: date
    end: date
    channel: int | None
    campaign: int | None
    note: str
    key: str


@dataclass(slots=True)
class World:
    config: DemoConfig
    origin: datetime  # 00:00 Shanghai of the first day
    end: int  # seconds from origin: the end of the history
    staff: list[StaffPlan] = field(default_factory=list)
    channels: list[ChannelPlan] = field(default_factory=list)
    campaigns: list[CampaignRun] = field(default_factory=list)
    groups: list[GroupPlan] = field(default_factory=list)
    contacts: list[ContactPlan] = field(default_factory=list)
    follows: list[FollowPlan] = field(default_factory=list)
    stays: list[StayPlan] = field(default_factory=list)
    orders: list[OrderPlan] = field(default_factory=list)
    points: list[PointsPlan] = field(default_factory=list)
    tags: list[tuple[int, str, str, int]] = field(default_factory=list)  # contact, group, tag, at
    tier_changes: list[tuple[int, int, int, int]] = field(default_factory=list)  # c, from, to, at
    checkins: list[tuple[int, int, int, int]] = field(default_factory=list)  # c, campaign, at, n
    costs: list[CostPlan] = field(default_factory=list)
    exposures: list[list[int]] = field(default_factory=list)  # [channel][day]

    @property
    def days(self) -> int:
        return self.config.days

    def at(self, seconds: int) -> datetime:
        return self.origin + timedelta(seconds=seconds)

    def day_label(self, day: int) -> str:
        return (self.config.end_date - timedelta(days=self.days - day)).strftime("%Y%m%d")

    def weekday(self, day: int) -> int:
        return (self.origin.weekday() + day) % 7

    def campaign_of_type(self, campaign_type: str) -> int | None:
        for index, run in enumerate(self.campaigns):
            if run.plan.type == campaign_type and run.start < self.end:
                return index
        return None


def build_world(config: DemoConfig) -> World:
    """Generate the whole history in memory; the same config always gives the same world."""
    start_date = config.end_date - timedelta(days=config.days)
    world = World(
        config=config,
        origin=datetime(start_date.year, start_date.month, start_date.day, tzinfo=SHANGHAI),
        end=config.days * DAY,
    )
    _plan_staff(world)
    _plan_channels(world)
    _plan_campaigns(world)
    _plan_groups(world)
    _plan_contacts(world)
    _plan_journeys(world)
    _simulate_memberships(world)
    _plan_speech(world)
    _finish_orders(world)
    _plan_checkins_and_rewards(world)
    _plan_points(world)
    _plan_tiers_tags_and_stages(world)
    _plan_exposures_and_costs(world)
    return world


def _rng(world: World, section: str) -> Random:
    # One stream per section: tuning one part of the story leaves the others' draws alone.
    return Random(f"{world.config.seed}:{section}")


def _plan_staff(world: World) -> None:
    rng = _rng(world, "staff")
    for index in range(world.config.staff):
        if index < len(STAFF_NAMES):
            name = STAFF_NAMES[index]
        else:
            k = index - len(STAFF_NAMES)
            name = SURNAMES[k % len(SURNAMES)] + GIVEN_NAMES[k // len(SURNAMES) % 12] * 2
        # Staff 01 is the demo operator: they answer a large share of the new contacts.
        weight = 4.0 if index == 0 else rng.uniform(0.6, 1.4)
        world.staff.append(StaffPlan(f"{STAFF_PREFIX}{index + 1:02d}", name, weight))


def _plan_channels(world: World) -> None:
    rng = _rng(world, "channels")
    others = list(range(1, len(world.staff)))
    for state, name, kind, label, join_rate, weight, cost in CHANNELS:
        channel = ChannelPlan(state, name, kind, label, join_rate, weight, cost)
        if kind == ChannelCode.Kind.STAFF:
            crew = rng.sample(others, max(2, len(others) // 4))
            if state in STAFF_01_CHANNELS:
                crew.append(0)
            channel.staff = sorted(crew)
        world.channels.append(channel)


def _plan_campaigns(world: World) -> None:
    days, end = world.days, world.end
    size = world.config.contacts / DEFAULT_PRESET["contacts"]
    for plan in CAMPAIGNS:
        if plan.start_frac is None:
            start = end + 7 * DAY + 10 * HOUR
        else:
            start = round(plan.start_frac * days) * DAY + (9 if plan.start_frac == 0 else 10) * HOUR
        stop = end + 30 * DAY if plan.length_days is None else start + plan.length_days * DAY
        if start > end:
            state = Campaign.State.SCHEDULED
        elif stop > end:
            state = Campaign.State.RUNNING
        else:
            state = Campaign.State.ENDED
        budget = round(plan.budget_yuan * 100 * max(size, 0.1))
        world.campaigns.append(CampaignRun(plan, start, stop, budget, state))


def _plan_groups(world: World) -> None:
    rng = _rng(world, "groups")
    config, days, end = world.config, world.days, world.end
    flash_count = max(1, round(config.groups * 0.2))
    acquisition_count = max(2, round(config.groups * 0.35))
    benefit_count = config.groups - flash_count - acquisition_count

    specs: list[tuple[int, str, int | None]] = []  # created, type, campaign
    for kind, count, later_from, later_to in (
        (Group.Type.ACQUISITION, acquisition_count, 1.5, 0.8 * days),
        (Group.Type.BENEFIT, benefit_count, 0.08 * days, 0.85 * days),
    ):
        # A few groups open on day one; later ones open as the earlier ones fill up.
        first = max(1, round(count * config.early_group_share))
        for k in range(first):
            specs.append((9 * HOUR + k * 10 * MINUTE + rng.randrange(600), kind, None))
        later = count - first
        for k in range(later):
            day = later_from + (later_to - later_from) * (k + 0.5) / later
            specs.append((int(day * DAY) + 9 * HOUR + rng.randrange(10 * HOUR), kind, None))
    flash_runs = [
        i for i, run in enumerate(world.campaigns) if run.plan.flash_share and run.start < end
    ]
    shares = [world.campaigns[i].plan.flash_share for i in flash_runs]
    for k in range(flash_count):
        # Fill the campaigns in proportion to their share, the biggest first.
        campaign = flash_runs[_share_slot(k, flash_count, shares)]
        start = world.campaigns[campaign].start
        specs.append((max(0, start - 14 * HOUR + k * 5 * MINUTE), Group.Type.FLASH, campaign))
    specs.sort(key=lambda spec: (spec[0], spec[1]))

    owners_pool = list(range(1, len(world.staff)))
    owner_weights = [world.staff[i].weight for i in owners_pool]
    numbers = {Group.Type.ACQUISITION: 0, Group.Type.BENEFIT: 0, Group.Type.FLASH: 0}
    for index, (created, kind, campaign) in enumerate(specs):
        numbers[kind] += 1
        # Staff 01 owns every fourth group, so the demo operator has several of each kind.
        if index % 4 == 0:
            owner = 0
        else:
            owner = rng.choices(owners_pool, owner_weights)[0]
        admins = rng.sample([s for s in range(len(world.staff)) if s != owner], rng.randint(1, 3))
        if kind == Group.Type.ACQUISITION:
            name = f"花漾新人福利{numbers[kind]}群"
            model = rng.choices([Group.Model.MASS_PROMOTION, Group.Model.REFINED], [3, 1])[0]
        elif kind == Group.Type.BENEFIT:
            name = f"花漾VIP会员{numbers[kind]}群"
            model = rng.choices([Group.Model.REFINED, Group.Model.SERVICE], [3, 2])[0]
        else:
            name = f"{world.campaigns[campaign].plan.name}{numbers[kind]}群"
            model = Group.Model.MASS_PROMOTION
        world.groups.append(
            GroupPlan(
                chat_id=f"{GROUP_PREFIX}{index + 1:04d}",
                name=name,
                type=kind,
                model=model,
                owner=owner,
                admins=sorted(admins),
                created=created,
                campaign=campaign,
            )
        )
    for campaign in flash_runs:
        world.campaigns[campaign].flash_groups = [
            g for g, group in enumerate(world.groups) if group.campaign == campaign
        ]

    # Some groups die: the operator stops posting, speech fades and members drift away.
    regular = [
        g
        for g, group in enumerate(world.groups)
        if group.type != Group.Type.FLASH and group.created < 0.5 * end
    ]
    for g in sorted(rng.sample(regular, max(1, round(len(regular) * 0.15)))):
        group = world.groups[g]
        group.death = max(group.created + 7 * DAY, int(rng.uniform(0.45, 0.85) * end))
    # One or two are dismissed: the first flash group after its campaign, and the dying group
    # that died first, once it has emptied out.
    flash_sale = world.campaign_of_type(Campaign.Type.FLASH_SALE)
    if flash_sale is not None and world.campaigns[flash_sale].flash_groups:
        group = world.groups[world.campaigns[flash_sale].flash_groups[0]]
        dismissed = world.campaigns[flash_sale].end + 5 * DAY + 11 * HOUR
        if dismissed < end:
            group.dismissed = dismissed
    dying = sorted(
        (group.death, g) for g, group in enumerate(world.groups) if group.death is not None
    )
    if dying:
        dismissed = (dying[0][0] // DAY + 12) * DAY + 21 * HOUR
        if dismissed < end:
            world.groups[dying[0][1]].dismissed = dismissed

    for g, group in enumerate(world.groups):
        group.vitality = _vitality(world, group)
        group.stage = _group_stage(world, g, group)
        group.members = 1 + len(group.admins)


def _share_slot(k: int, count: int, shares: list[float]) -> int:
    """Which bucket the k-th of `count` items falls in when split by `shares`."""
    total = sum(shares)
    bounds = list(accumulate(share / total * count for share in shares))
    return min(bisect.bisect_right(bounds, k), len(shares) - 1)


def _vitality(world: World, group: GroupPlan) -> list[float]:
    """How lively the group is each day, as a multiplier on its members' chance to speak."""
    base = {Group.Type.ACQUISITION: 0.8, Group.Type.BENEFIT: 1.1, Group.Type.FLASH: 1.3}
    created_day = group.created // DAY
    campaign_end_day = (
        world.campaigns[group.campaign].end // DAY if group.campaign is not None else None
    )
    death_day = group.death // DAY if group.death is not None else None
    values = []
    for day in range(world.days):
        if day < created_day:
            values.append(0.0)
            continue
        value = base[group.type]
        age = day - created_day
        if group.type == Group.Type.ACQUISITION:
            value /= 1 + age / 45  # newcomers settle, the chatter calms down
        if campaign_end_day is not None:
            value *= 1.5 if day <= campaign_end_day else math.exp(-(day - campaign_end_day) / 2)
        if death_day is not None and day >= death_day:
            value *= math.exp(-(day - death_day) / 4)
        if world.weekday(day) >= 5:
            value *= 1.15
        values.append(value)
    return values


def _group_stage(world: World, index: int, group: GroupPlan) -> str:
    age = (world.end - group.created) / DAY
    if group.type == Group.Type.FLASH:
        return Group.Stage.MONETIZATION
    if group.death is not None:
        return Group.Stage.RETENTION
    if age < 7:
        return Group.Stage.FOUNDING
    if age < 21:
        return Group.Stage.ACTIVATION
    if group.type == Group.Type.ACQUISITION:
        return Group.Stage.RETENTION
    return (Group.Stage.MONETIZATION, Group.Stage.PROPAGATION, Group.Stage.RETENTION)[index % 3]


def _plan_contacts(world: World) -> None:
    """Who arrives when, through which code, brought by whom, and what kind of person they are."""
    rng = _rng(world, "contacts")
    config, days = world.config, world.days
    referral = world.campaign_of_type(Campaign.Type.REFERRAL)
    referral_run = world.campaigns[referral] if referral is not None else None

    weights = []
    for day in range(days):
        weight = (1 + 0.6 * day / days) * (1.25 if world.weekday(day) >= 5 else 1.0)
        if referral_run and referral_run.start // DAY <= day < referral_run.end // DAY:
            weight *= 1.3
        weights.append(weight)
    launch = round(config.contacts * config.launch_share)
    arrival_days = rng.choices(range(min(7, days)), k=launch)
    arrival_days += rng.choices(range(days), weights, k=config.contacts - launch)
    times = sorted(
        day * DAY + ACTIVE_SECONDS[int(rng.random() * 4096)] + rng.randrange(60)
        for day in arrival_days
    )

    channel_index = {channel.state: i for i, channel in enumerate(world.channels)}
    arrival_channels = [i for i, channel in enumerate(world.channels) if channel.weight]
    arrival_weights = [world.channels[i].weight for i in arrival_channels]
    referral_channels = [channel_index[state] for state in REFERRAL_CHANNELS]
    talk_classes = list(range(5))
    advocates: list[int] = []  # a KOL appears several times: they bring more friends
    pending: list[tuple[int, int, int]] = []  # (ready at, contact, weight), a heap

    for index, arrived in enumerate(times):
        # People recommend the brand once they have been around for a couple of days.
        while pending and pending[0][0] <= arrived:
            _, advocate, weight = heapq.heappop(pending)
            advocates.extend([advocate] * weight)
        talk_class = rng.choices(talk_classes, config.talk_shares)[0]
        contact = ContactPlan(
            external_userid=f"{CONTACT_PREFIX}{index + 1:06d}",
            name=_nickname(rng),
            gender=rng.choices([2, 1, 0], [0.68, 0.27, 0.05])[0],
            added=arrived,
            channel=0,
            talk_class=talk_class,
            talk=rng.uniform(*TALK_RANGES[talk_class]) if talk_class != LURKER else 0.0,
            age_band=rng.choices(range(4), AGE_WEIGHTS)[0],
            region=rng.choices(range(5), REGION_WEIGHTS)[0],
        )
        contact.buy = rng.choices([0.0, 0.5, 1.0, 2.0], [0.58, 0.28, 0.11, 0.03])[0]
        if talk_class in (KOC, KOL):
            contact.buy = max(contact.buy, 1.0)
        if talk_class == KOL:
            contact.advocacy = 6
        elif talk_class == KOC:
            contact.advocacy = 3
        elif rng.random() < 0.12 * (1 + contact.buy):
            contact.advocacy = 1
        if rng.random() < 0.6:
            picked = rng.sample(range(len(INTEREST_TAGS)), rng.randint(1, 2))
            contact.interests = tuple(sorted(picked))
        referral_share = 0.10
        if referral_run and referral_run.start <= arrived < referral_run.end:
            referral_share *= 2.5
        if advocates and rng.random() < referral_share:
            contact.referrer = rng.choice(advocates)
            contact.channel = referral_channels[0] if rng.random() < 0.6 else referral_channels[1]
        else:
            contact.channel = rng.choices(arrival_channels, arrival_weights)[0]
        world.contacts.append(contact)
        if contact.advocacy:
            heapq.heappush(pending, (arrived + 2 * DAY, index, contact.advocacy))


def _nickname(rng: Random) -> str:
    return rng.choice(NICK_HEADS) + rng.choice(NICK_BODIES) + rng.choice(NICK_TAILS)


def _plan_journeys(world: World) -> None:
    """Each contact's staff, departures, orders and the groups they will be invited to."""
    rng = _rng(world, "journeys")
    config, end = world.config, world.end
    service_staff = len(world.staff) - 1  # the last staff member does customer service
    flash_runs = [i for i, run in enumerate(world.campaigns) if run.flash_groups]
    lottery = world.campaign_of_type(Campaign.Type.LOTTERY)

    for index, contact in enumerate(world.contacts):
        channel = world.channels[contact.channel]
        if channel.kind == ChannelCode.Kind.STAFF:
            crew = channel.staff
            contact.staff = rng.choices(crew, [world.staff[s].weight for s in crew])[0]
            added = contact.added
        else:
            contact.staff = -1  # the owner of the group the code puts them in (see below)
            added = contact.added + rng.randint(1, 20) * MINUTE
        world.follows.append(FollowPlan(index, contact.staff, added, contact.channel))
        contact.follows.append(len(world.follows) - 1)

        # Advocates stay; others may leave for good, more so if they never buy.
        if not contact.advocacy and rng.random() < 0.07 * (0.5 if contact.buy else 1.3):
            churned = contact.added + HOUR + int(rng.expovariate(1 / 14) * DAY)
            if churned < end:
                contact.churned_at = churned
        if (
            contact.churned_at is None
            and not contact.buy
            and not contact.advocacy
            and rng.random() < 0.004
        ):
            removed = contact.added + rng.randint(HOUR, 5 * DAY)
            if removed < end:
                contact.removed_at = removed
        if rng.random() < 0.015:
            opted = contact.added + rng.randint(DAY, 40 * DAY)
            if opted < min(end, contact.gone_at):
                contact.opted_out_at = opted
        if rng.random() < 0.10:
            second = contact.added + rng.randint(HOUR, 10 * DAY)
            if second < min(end, contact.gone_at) and contact.staff != service_staff:
                world.follows.append(FollowPlan(index, service_staff, second, None))
                contact.follows.append(len(world.follows) - 1)

        for campaign in flash_runs:
            run = world.campaigns[campaign]
            opens, closes = run.start - DAY, run.start + (run.end - run.start) // 2
            if contact.added + 10 * MINUTE < closes and contact.gone_at > opens:
                chance = config.flash_join_rate * (1.3 if contact.buy else 1.0)
                if rng.random() < chance:
                    earliest = max(opens, contact.added + 10 * MINUTE)
                    contact.flash_joins.append((campaign, rng.randint(earliest, closes)))
        _plan_orders(world, rng, index, contact, lottery)


def _plan_orders(
    world: World, rng: Random, index: int, contact: ContactPlan, lottery: int | None
) -> None:
    stop = min(world.end, contact.gone_at)
    earliest = contact.added + 10 * MINUTE
    moments: list[tuple[int, int | None]] = []  # (time, campaign that caused it)
    if contact.buy:
        # The W1 first-order offer converts many in their first week; others take their time.
        if rng.random() < 0.45:
            delay = rng.uniform(0.05, 7)
        else:
            delay = rng.expovariate(contact.buy / 25)
        at = contact.added + int(delay * DAY)
        while at < stop:
            moments.append((at, None))
            if rng.random() >= min(0.8, 0.28 * contact.buy + 0.08):
                break
            at += int(rng.triangular(5, 45, 21) * DAY)  # the T+21 repurchase coupon
    for campaign, joined in contact.flash_joins:
        run = world.campaigns[campaign]
        if rng.random() < run.plan.order_rate * (1 + 0.3 * contact.buy):
            opens = max(run.start, joined + 30 * MINUTE)
            if opens < run.end:
                moments.append((rng.randint(opens, run.end), campaign))
    if lottery is not None:
        run = world.campaigns[lottery]
        if contact.added < run.end - HOUR and rng.random() < run.plan.order_rate:
            moments.append((rng.randint(max(run.start, earliest), run.end), lottery))

    for at, campaign in sorted(moments, key=lambda moment: moment[0]):
        # Shoppers shop in waking hours.
        at = at // DAY * DAY + ACTIVE_SECONDS[int(rng.random() * 4096)] + rng.randrange(60)
        if campaign is not None:
            run = world.campaigns[campaign]
            at = min(max(at, run.start), run.end - 1)
        at = max(at, earliest + rng.randrange(2 * HOUR))
        if at >= stop:
            continue
        world.orders.append(_order(world, rng, index, contact, at, campaign))
        contact.orders.append(len(world.orders) - 1)


def _order(
    world: World, rng: Random, index: int, contact: ContactPlan, at: int, campaign: int | None
) -> OrderPlan:
    first = not contact.orders
    used_coupon = False
    if campaign is None:
        # A referred newcomer's orders credit the referral campaign (and its commission)
        # before the new-customer coupon they may also have used.
        running = [i for i, run in enumerate(world.campaigns) if run.start <= at < run.end]
        for i in running:
            if (
                world.campaigns[i].plan.type == Campaign.Type.REFERRAL
                and contact.referrer is not None
                and at - contact.added < REFERRAL_ATTRIBUTION
            ):
                campaign = i
        for i in running:
            kind = world.campaigns[i].plan.type
            if campaign is None and kind == Campaign.Type.COUPON and first:
                if at - contact.added < 7 * DAY:
                    campaign = i
    kind = world.campaigns[campaign].plan.type if campaign is not None else None
    if first and campaign is None and rng.random() < 0.12:
        name, price = rng.choice(TRIAL_PRODUCTS)
        items = [{"name": name, "price_fen": price, "quantity": 1}]
        return OrderPlan(index, at, price, items, False, None)
    items = []
    for product in rng.sample(range(len(PRODUCTS)), rng.choices([1, 2, 3], [0.6, 0.3, 0.1])[0]):
        name, price = PRODUCTS[product]
        items.append({"name": name, "price_fen": price, "quantity": 1})
    amount = sum(item["price_fen"] for item in items)
    if kind in (Campaign.Type.FLASH_SALE, Campaign.Type.GROUP_BUY):
        amount = amount * int(world.campaigns[campaign].plan.rules["discount"] * 100) // 100
    elif kind == Campaign.Type.COUPON and amount >= 9_900:
        amount -= 2_000
        used_coupon = True
    return OrderPlan(index, at, amount, items, used_coupon, campaign)


# Intents in the membership simulation, processed in time order.
_JOIN_BY_CODE, _JOIN_ACQUISITION, _JOIN_BENEFIT, _JOIN_FLASH, _LEAVE, _REJOIN = range(6)


def _simulate_memberships(world: World) -> None:
    """Replay joins, leaves and rejoins in time order, so groups fill up to their cap and rotate."""
    rng = _rng(world, "memberships")
    config, end = world.config, world.end
    groups = world.groups
    by_type: dict[str, list[int]] = {kind: [] for kind in Group.Type.values}
    for g, group in enumerate(groups):
        by_type[group.type].append(g)
    # Newest first: operators send newcomers to their newest group that still has room.
    by_staff: dict[tuple[int, str], list[int]] = {}
    for g in sorted(range(len(groups)), key=lambda g: -groups[g].created):
        group = groups[g]
        for staff in (group.owner, *group.admins):
            by_staff.setdefault((staff, group.type), []).append(g)
    newest = {kind: sorted(gs, key=lambda g: -groups[g].created) for kind, gs in by_type.items()}
    code_pools: dict[int, list[int]] = {}
    group_codes = [
        c for c, channel in enumerate(world.channels) if channel.kind == ChannelCode.Kind.GROUP
    ]
    for k, g in enumerate(by_type[Group.Type.ACQUISITION]):
        if k % 3 != 2:  # a third of the acquisition groups are invitation-only
            world.channels[group_codes[k % len(group_codes)]].groups.append(g)
    for c in group_codes:
        code_pools[c] = sorted(world.channels[c].groups, key=lambda g: -groups[g].created)

    for g, group in enumerate(groups):
        world.stays.append(
            StayPlan(g, None, group.owner, GroupMembership.Role.OWNER, group.created, None, 1)
        )
        for admin in group.admins:
            joined = group.created + rng.randint(1, 30) * MINUTE
            world.stays.append(
                StayPlan(
                    g, None, admin, GroupMembership.Role.ADMIN, joined,
                    GroupMembership.JoinScene.INVITED, 1, invitor=world.staff[group.owner].userid,
                )
            )  # fmt: skip
        for stay in world.stays[-1 - len(group.admins) :]:
            if group.dismissed is not None:
                stay.left, stay.quit_scene = group.dismissed, GroupMembership.QuitScene.REMOVED

    queue: list[tuple[int, int, int, int, int]] = []  # (time, seq, intent, contact, argument)
    seq = 0

    def push(at: int, intent: int, contact: int, argument: int = -1) -> None:
        nonlocal seq
        if at < end:
            heapq.heappush(queue, (at, seq, intent, contact, argument))
            seq += 1

    for index, contact in enumerate(world.contacts):
        if world.channels[contact.channel].kind == ChannelCode.Kind.GROUP:
            push(contact.added, _JOIN_BY_CODE, index, contact.channel)
        elif rng.random() < config.acquisition_invite_rate:
            push(contact.added + rng.randint(2 * MINUTE, 36 * HOUR), _JOIN_ACQUISITION, index)
        if contact.orders:
            if rng.random() < config.benefit_invite_rate:
                first_order = world.orders[contact.orders[0]].at
                push(first_order + rng.randint(HOUR, 30 * HOUR), _JOIN_BENEFIT, index)
        elif rng.random() < config.benefit_without_order_rate:
            push(contact.added + rng.randint(3 * DAY, 30 * DAY), _JOIN_BENEFIT, index)
        for campaign, joined in contact.flash_joins:
            push(joined, _JOIN_FLASH, index, campaign)

    def open_group(candidates: list[int], at: int) -> int | None:
        for g in candidates:
            group = groups[g]
            if group.created > at:
                continue
            if group.death is not None and at >= group.death:
                continue
            if group.dismissed is not None and at >= group.dismissed:
                continue
            if group.campaign is not None and at >= world.campaigns[group.campaign].end:
                continue
            if group.members < group.cap:
                return g
        return None

    while queue:
        at, _, intent, index, argument = heapq.heappop(queue)
        contact = world.contacts[index]
        if intent == _LEAVE:
            stay = world.stays[argument]
            groups[stay.group].members -= 1
            contact.open_groups.discard(stay.group)
            voluntary = stay.quit_scene == GroupMembership.QuitScene.LEFT and at < contact.gone_at
            if voluntary and stay.ordinal < 3 and rng.random() < config.rejoin_rate:
                push(at + rng.randint(DAY, 12 * DAY), _REJOIN, index, argument)
            continue
        if at >= contact.gone_at:
            continue
        invitor, channel, scene, ordinal = "", None, GroupMembership.JoinScene.INVITED, 1
        if intent == _JOIN_BY_CODE:
            g = open_group(code_pools[argument], at)
            if g is None:
                g = open_group(newest[Group.Type.ACQUISITION], at)
            channel, scene = argument, GroupMembership.JoinScene.QR_CODE
        elif intent == _JOIN_ACQUISITION:
            g = open_group(by_staff.get((contact.staff, Group.Type.ACQUISITION), []), at)
            if g is None:
                g = open_group(newest[Group.Type.ACQUISITION], at)
            invitor = world.staff[contact.staff].userid if g is not None else ""
        elif intent == _JOIN_BENEFIT:
            g = open_group(by_staff.get((contact.staff, Group.Type.BENEFIT), []), at)
            if g is None:
                g = open_group(newest[Group.Type.BENEFIT], at)
            invitor = world.staff[groups[g].owner].userid if g is not None else ""
        elif intent == _JOIN_FLASH:
            g = open_group(world.campaigns[argument].flash_groups, at)
            scene = GroupMembership.JoinScene.LINK
        else:  # a rejoin of the group left before
            previous = world.stays[argument]
            g = open_group([previous.group], at)
            ordinal = previous.ordinal + 1
            scene = rng.choice([GroupMembership.JoinScene.LINK, GroupMembership.JoinScene.QR_CODE])
        if g is None or g in contact.open_groups:
            continue
        group = groups[g]
        role = GroupMembership.Role.MEMBER
        if contact.talk_class == KOC and group.type != Group.Type.ACQUISITION:
            role = GroupMembership.Role.KOC  # the 气氛组 who keep benefit groups lively
        stay = StayPlan(g, index, None, role, at, scene, ordinal, channel, invitor)
        if contact.staff < 0:
            # Arrived through a group code: they add that group's owner right after joining.
            contact.staff = group.owner
            world.follows[contact.follows[0]].staff = group.owner
        _plan_leave(world, rng, stay, contact)
        world.stays.append(stay)
        contact.stays.append(len(world.stays) - 1)
        contact.open_groups.add(g)
        group.members += 1
        if stay.left is not None:
            push(stay.left, _LEAVE, index, len(world.stays) - 1)

    for contact in world.contacts:
        if contact.staff < 0:
            # Every group behind the code was full or gone: the code fell back to staff 01.
            contact.staff = 0
            world.follows[contact.follows[0]].staff = 0
        if len(contact.follows) > 1 and world.follows[contact.follows[1]].staff == contact.staff:
            # Their group's owner is the service desk itself: the colleague next to it helps.
            world.follows[contact.follows[1]].staff = len(world.staff) - 2
        contact.open_groups.clear()
    _plan_follow_endings(world)


def _plan_leave(world: World, rng: Random, stay: StayPlan, contact: ContactPlan) -> None:
    """When (if ever) a stay ends: by choice, by leaving for good, by removal or dismissal."""
    group = world.groups[stay.group]
    # Daily leave hazards: before and after the group's turning point (death, campaign end).
    if group.type == Group.Type.FLASH:
        before, after, turn = 0.005, 0.25, world.campaigns[group.campaign].end
    elif group.type == Group.Type.ACQUISITION:
        before, after, turn = 0.012, 0.09, group.death
    else:
        before, after, turn = 0.004, 0.08, group.death
    if contact.talk_class >= REGULAR:
        before, after = before / 2, after / 2  # people who talk feel at home
    budget = rng.expovariate(1.0)
    if turn is None or stay.joined >= turn:
        rate = after if turn is not None else before
        left = stay.joined + budget / rate * DAY
    elif budget < before * (turn - stay.joined) / DAY:
        left = stay.joined + budget / before * DAY
    else:
        left = turn + (budget - before * (turn - stay.joined) / DAY) / after * DAY
    left = int(min(left, NEVER))
    if group.type == Group.Type.ACQUISITION and rng.random() < EARLY_EXIT_SHARE:
        left = min(left, stay.joined + rng.randint(10 * MINUTE, 2 * DAY))
    if (left % DAY) < 7 * HOUR:
        left += 7 * HOUR  # few leave in the small hours
    scene = GroupMembership.QuitScene.LEFT
    if contact.churned_at is not None:
        # Leaving for good: they quit the groups shortly before deleting the staff member.
        goodbye = max(stay.joined + MINUTE, contact.churned_at - rng.randint(MINUTE, HOUR))
        left = min(left, goodbye)
    for forced in (contact.removed_at, group.dismissed):
        if forced is not None and forced < left:
            left, scene = max(forced, stay.joined + MINUTE), GroupMembership.QuitScene.REMOVED
    if left < world.end:
        stay.left, stay.quit_scene = left, scene


def _plan_follow_endings(world: World) -> None:
    for contact in world.contacts:
        for f in contact.follows:
            follow = world.follows[f]
            if contact.churned_at is not None and follow.added < contact.churned_at:
                follow.blocked_at = contact.churned_at
            elif contact.removed_at is not None and follow.added < contact.removed_at:
                follow.deleted_at = contact.removed_at


def _plan_speech(world: World) -> None:
    """Which days each member spoke: most lurk, a few talk a lot, dying groups fall silent."""
    rng = _rng(world, "speech")
    random = rng.random
    chattiness = world.config.chattiness
    end = world.end
    for contact in world.contacts:
        if not contact.talk:
            continue
        talk = contact.talk * chattiness
        for s in contact.stays:
            stay = world.stays[s]
            vitality = world.groups[stay.group].vitality
            left = stay.left if stay.left is not None else end
            first, last = stay.joined // DAY, (left - 1) // DAY
            mask = 0
            for day in range(first, last + 1):
                if day == first or day == last:
                    low, high = _speaking_window(day, stay.joined, left)
                    if high - low < 30 * MINUTE:
                        continue
                chance = talk * vitality[day]
                if day - first < 2:
                    chance *= 1.8  # newcomers say hello and ask questions
                if random() < chance:
                    mask |= 1 << day
            stay.speech = mask


def _speaking_window(day: int, joined: int, left: int) -> tuple[int, int]:
    start = day * DAY
    return max(start + 7 * HOUR, joined + MINUTE), min(start + 23 * HOUR, left - MINUTE)


def _message(world: World, salt: int, s: int, stay: StayPlan, day: int, talk_class: int):
    """(seconds from origin, messages) of one member's speech in one group on one day.

    A hash of (seed, stay, day) rather than a random stream, so the planner (last activity)
    and the event stream agree without storing a row per message day.
    """
    h = _mix64(salt + s * 4096 + day)
    at = day * DAY + SPEECH_SECONDS[h & 4095] + (h >> 12) % 60
    first_day = stay.joined // DAY
    left = stay.left if stay.left is not None else world.end
    if day == first_day or day == (left - 1) // DAY:
        low, high = _speaking_window(day, stay.joined, left)
        at = min(max(at, low), high)
    return at, COUNT_TABLES[talk_class][(h >> 20) & 255]


def _speech_salt(world: World) -> int:
    return _mix64(world.config.seed & _MASK64) & 0xFFFF_FFFF_FFFF


def _finish_orders(world: World) -> None:
    """Order numbers in time order; the group, referrer and activity each order credits."""
    order_refs = sorted(range(len(world.orders)), key=lambda o: (world.orders[o].at, o))
    per_day: dict[int, int] = {}
    for o in order_refs:
        order = world.orders[o]
        day = order.at // DAY
        per_day[day] = per_day.get(day, 0) + 1
        order.order_no = f"DM{world.day_label(day)}{per_day[day]:05d}"
        contact = world.contacts[order.contact]
        if contact.referrer is not None and order.at - contact.added < REFERRAL_ATTRIBUTION:
            order.referrer = contact.referrer
        order.group = _attributed_group(world, contact, order)
    salt = _speech_salt(world)
    for contact in world.contacts:
        latest = max((world.orders[o].at for o in contact.orders), default=None)
        for s in contact.stays:
            stay = world.stays[s]
            if stay.speech:
                spoke, _ = _message(
                    world, salt, s, stay, stay.speech.bit_length() - 1, contact.talk_class
                )
                latest = spoke if latest is None else max(latest, spoke)
        contact.last_active = latest


def _attributed_group(world: World, contact: ContactPlan, order: OrderPlan) -> int | None:
    """A group the buyer was in when ordering: the campaign's, else benefit, flash, acquisition."""
    rank = {Group.Type.BENEFIT: 1, Group.Type.FLASH: 2, Group.Type.ACQUISITION: 3}
    best = None
    for s in contact.stays:
        stay = world.stays[s]
        if stay.joined > order.at or (stay.left is not None and stay.left <= order.at):
            continue
        group = world.groups[stay.group]
        campaign_group = order.campaign is not None and group.campaign == order.campaign
        key = (0 if campaign_group else rank[group.type], -stay.joined)
        if best is None or key < best[0]:
            best = (key, stay.group)
    return best[1] if best else None


def _plan_checkins_and_rewards(world: World) -> None:
    """The check-in challenge that flopped (people give up fast) and the lottery's winners."""
    rng = _rng(world, "checkins")
    end = world.end
    checkin = world.campaign_of_type(Campaign.Type.CHECKIN)
    if checkin is not None:
        run = world.campaigns[checkin]
        for index, contact in enumerate(world.contacts):
            if contact.added >= run.end or contact.gone_at <= run.start:
                continue
            chance = 0.6 if contact.talk_class == KOC else 0.05
            if rng.random() >= chance:
                continue
            first_day = max(run.start, contact.added) // DAY + 1
            streak = 0
            for day in range(first_day, min(run.end, end) // DAY + 1):
                at = day * DAY + 7 * HOUR + rng.randint(10 * MINUTE, 70 * MINUTE)
                if at >= min(end, contact.gone_at, run.end):
                    break
                if rng.random() >= 0.92 * 0.9**streak:
                    break
                streak += 1
                world.checkins.append((index, checkin, at, streak))
                contact.checkins += 1
                _took_part(contact, at)
    lottery = world.campaign_of_type(Campaign.Type.LOTTERY)
    if lottery is not None and world.campaigns[lottery].end <= end:
        run = world.campaigns[lottery]
        drawn = run.end - 2 * HOUR  # the draw, on the campaign's last evening
        entrants = [
            i
            for i, contact in enumerate(world.contacts)
            if contact.added < run.start and contact.gone_at > run.end
        ]
        for index in sorted(rng.sample(entrants, min(len(entrants), max(1, len(entrants) // 100)))):
            winner = world.contacts[index].external_userid
            world.points.append(
                PointsPlan(
                    contact=index,
                    at=drawn,
                    delta=run.plan.rules["reward_points"],
                    reason=PointsEntry.Reason.REWARD,
                    note=f"{run.plan.name}中奖",
                    key=f"demo:points:reward:{winner}",
                )
            )
            _took_part(world.contacts[index], drawn)
    for contact in world.contacts:
        for s in contact.stays:
            if world.groups[world.stays[s].group].type == Group.Type.FLASH:
                _took_part(contact, world.stays[s].joined)
        for o in contact.orders:
            if world.orders[o].campaign is not None:
                _took_part(contact, world.orders[o].at)


def _took_part(contact: ContactPlan, at: int) -> None:
    if contact.first_campaign_at is None or at < contact.first_campaign_at:
        contact.first_campaign_at = at


def _plan_points(world: World) -> None:
    """The points ledger: earned by orders, invites, check-ins and speech; spent in the mall."""
    rng = _rng(world, "points")
    end, days = world.end, world.days
    earned: list[list[PointsPlan]] = [[] for _ in world.contacts]
    for entry in world.points:  # lottery rewards so far
        earned[entry.contact].append(entry)
    for order in world.orders:
        points = order.amount_fen // 100  # one point per yuan
        if points:
            earned[order.contact].append(
                PointsPlan(
                    contact=order.contact,
                    at=order.at + MINUTE,
                    delta=points,
                    reason=PointsEntry.Reason.ORDER,
                    note=f"订单 {order.order_no}",
                    key=f"demo:points:order:{order.order_no}",
                )
            )
    for contact in world.contacts:
        if contact.referrer is not None:
            referrer = world.contacts[contact.referrer]
            earned[contact.referrer].append(
                PointsPlan(
                    contact=contact.referrer,
                    at=contact.added + MINUTE,
                    delta=50,
                    reason=PointsEntry.Reason.INVITE,
                    note=f"邀请 {contact.name}",
                    key=f"demo:points:invite:{referrer.external_userid}:{contact.external_userid}",
                )
            )
    for index, _, at, streak in world.checkins:
        userid = world.contacts[index].external_userid
        earned[index].append(
            PointsPlan(
                contact=index,
                at=at,
                delta=5,
                reason=PointsEntry.Reason.CHECKIN,
                note=f"打卡第 {streak} 天",
                key=f"demo:points:checkin:{userid}:{world.day_label(at // DAY)}",
            )
        )
    first_monday = (7 - world.weekday(0)) % 7
    for index, contact in enumerate(world.contacts):
        spoke = 0
        for s in contact.stays:
            spoke |= world.stays[s].speech
        if not spoke:
            continue
        # Weekly activity reward: spoke on at least 3 days of a Monday-to-Sunday week.
        for week_start in range(first_monday, days - 6, 7):
            if ((spoke >> week_start) & 0x7F).bit_count() >= 3:
                at = (week_start + 7) * DAY + 10 * MINUTE
                if at < min(end, contact.gone_at):
                    week = world.day_label(week_start)
                    earned[index].append(
                        PointsPlan(
                            contact=index,
                            at=at,
                            delta=10,
                            reason=PointsEntry.Reason.SPEAK,
                            note="本周活跃奖励",
                            key=f"demo:points:speak:{contact.external_userid}:{week}",
                        )
                    )

    ledger: list[PointsPlan] = []
    for index, entries in enumerate(earned):
        if not entries:
            continue
        contact = world.contacts[index]
        entries.sort(key=lambda e: (e.at, e.key))
        # Redeem in the points mall once there is enough: the balance never goes below zero.
        spendable, redemptions = 0, []
        for entry in entries:
            spendable += entry.delta
            if spendable >= 500 and rng.random() < 0.35:
                cost = 300 if spendable < 800 else 500
                at = entry.at + rng.randint(2 * HOUR, 5 * DAY)
                if at < min(end, contact.gone_at):
                    spendable -= cost
                    redemptions.append(
                        PointsPlan(
                            contact=index,
                            at=at,
                            delta=-cost,
                            reason=PointsEntry.Reason.REDEEM,
                            note="积分商城兑换小样",
                            key=f"demo:points:redeem:{contact.external_userid}:"
                            f"{len(redemptions) + 1}",
                        )
                    )
        balance = 0
        for entry in sorted(entries + redemptions, key=lambda e: (e.at, e.key)):
            if balance + entry.delta < 0:
                continue
            balance += entry.delta
            entry.balance_after = balance
            ledger.append(entry)
        contact.points_balance = balance
    world.points = ledger


def _plan_tiers_tags_and_stages(world: World) -> None:
    rng = _rng(world, "tags")
    end = world.end
    for index, contact in enumerate(world.contacts):
        tags = world.tags
        at = contact.added + 2 * MINUTE
        if contact.gender in (1, 2):
            tags.append((index, BASIC, "男" if contact.gender == 1 else "女", at))
        tags.append((index, BASIC, AGE_TAGS[contact.age_band], at))
        tags.append((index, BASIC, REGION_TAGS[contact.region], at))
        for interest in contact.interests:
            noted = contact.added + rng.randint(HOUR, 7 * DAY)
            if noted < min(end, contact.gone_at):
                tags.append((index, INTEREST, INTEREST_TAGS[interest], noted))

        count, spend, biggest, tier = 0, 0, 0, 1
        for n, o in enumerate(contact.orders):
            order = world.orders[o]
            count, spend = count + 1, spend + order.amount_fen
            biggest = max(biggest, order.amount_fen)
            if n == 0:
                tags.append((index, BEHAVIOUR, "已购", order.at + MINUTE))
            elif n == 1:
                tags.append((index, BEHAVIOUR, "复购客户", order.at + MINUTE))
            reached = tier_for_orders(count, spend, biggest)
            if reached > tier:
                world.tier_changes.append((index, tier, reached, order.at + 2 * MINUTE))
                tier = reached
        contact.tier = tier
        if contact.first_campaign_at is not None:
            tags.append((index, BEHAVIOUR, "参加过活动", contact.first_campaign_at + MINUTE))

        if contact.churned_at is not None or contact.removed_at is not None:
            contact.stage = Contact.Stage.CHURNED
        elif (contact.last_active or contact.added) < end - DORMANT_AFTER:
            contact.stage = Contact.Stage.DORMANT
            quiet_since = contact.last_active or contact.added
            tags.append((index, BEHAVIOUR, "沉睡", quiet_since + DORMANT_AFTER))
        elif count >= 2:
            contact.stage = Contact.Stage.REPEAT
        elif count == 1:
            contact.stage = Contact.Stage.FIRST_ORDER
        else:
            contact.stage = Contact.Stage.NEW


def tier_for_orders(count: int, spend_fen: int, biggest_fen: int) -> int:
    """The tier level (1-3) a contact's paid orders reach, per the demo's thresholds."""
    if count >= VIP3_MIN_ORDERS and spend_fen >= VIP3_MIN_SPEND_FEN:
        return 3
    if count >= 1 and biggest_fen >= VIP2_MIN_ORDER_FEN:
        return 2
    return 1


def _plan_exposures_and_costs(world: World) -> None:
    """Daily exposures per code (always more than the people it brought) and what was spent."""
    rng = _rng(world, "exposures")
    days, end = world.days, world.end
    size = world.config.contacts / DEFAULT_PRESET["contacts"]
    arrivals = [[0] * days for _ in world.channels]
    for contact in world.contacts:
        channel = world.channels[contact.channel]
        if channel.kind == ChannelCode.Kind.STAFF:
            arrivals[contact.channel][contact.added // DAY] += 1
    for stay in world.stays:
        if stay.channel is not None:
            arrivals[stay.channel][stay.joined // DAY] += 1
    for c, channel in enumerate(world.channels):
        row = []
        for day in range(days):
            came = arrivals[c][day]
            seen = round(came / channel.join_rate * rng.uniform(0.8, 1.25))
            seen += round(rng.uniform(2, 20) * size)  # people who looked and walked on
            row.append(max(seen, came + 1))
        world.exposures.append(row)

    for k, run in enumerate(world.campaigns):
        if run.start >= end:
            continue
        stop = min(run.end, end)
        spent = run.budget_fen * (stop - run.start) // (run.end - run.start)
        world.costs.append(
            CostPlan(
                amount_fen=spent,
                start=_world_date(world, run.start),
                end=_world_date(world, stop - 1),
                channel=None,
                campaign=k,
                note=f"{run.plan.name} 活动成本",
                key=f"demo:cost:campaign:{run.plan.name}",
            )
        )
    for c, channel in enumerate(world.channels):
        if not channel.cost_fen:
            continue
        for first in range(0, days, 30):
            last = min(first + 30, days) - 1
            came = sum(arrivals[c][first : last + 1])
            if came:
                amount = round(came * channel.cost_fen * rng.uniform(0.9, 1.1))
                start = _world_date(world, first * DAY)
                world.costs.append(
                    CostPlan(
                        amount_fen=amount,
                        start=start,
                        end=_world_date(world, last * DAY),
                        channel=c,
                        campaign=None,
                        note=f"{channel.name} 投放",
                        key=f"demo:cost:channel:{channel.state}:{start}",
                    )
                )


def _world_date(world: World, seconds: int) -> date:
    return world.config.end_date - timedelta(days=world.days - seconds // DAY)


def _cost_at(world: World, cost: CostPlan) -> int:
    # Booked on the morning the period starts, so a period's ROI sees its own spend.
    return (cost.start - _world_date(world, 0)).days * DAY + 9 * HOUR


# ---------------------------------------------------------------------------------------------
# Writing: entity rows in one transaction, then the event log streamed day by day


@dataclass
class Ids:
    """Database ids of the world's entities, by the world's indexes."""

    staff: list[int]
    channels: list[int]
    campaigns: list[int]
    groups: list[int]
    contacts: list[int]
    tags: dict[tuple[str, str], int]
    tiers: dict[int, int]


@dataclass
class LoadResult:
    outcome: str  # one of the LOADED / ALREADY_LOADED / OTHER_DEMO_LOADED below
    entities_created: bool = False
    events_added: int = 0


LOADED = "loaded"
ALREADY_LOADED = "already loaded"
# Demo data from other arguments (seed, size, days, end date: the default end date is today,
# so yesterday's load differs) is left alone: mixing two worlds would corrupt both.
OTHER_DEMO_LOADED = "other demo loaded"


def demo_data_load(
    config: DemoConfig, *, progress: Callable[[str], None] | None = None
) -> LoadResult:
    """Load the demo history; running it again with the same config adds nothing."""
    say = progress or (lambda message: None)
    started = time.monotonic()
    world = build_world(config)
    say(
        f"Generated the world in {time.monotonic() - started:.1f}s: "
        f"{len(world.contacts):,} contacts, {len(world.groups):,} groups, "
        f"{len(world.stays):,} memberships, {len(world.orders):,} orders"
    )
    if Contact.objects.filter(external_userid=world.contacts[0].external_userid).exists():
        ids = _read_ids(world)
        if ids is None:
            return LoadResult(OTHER_DEMO_LOADED)
        say("Demo entities already loaded; checking the event log")
        created = False
    else:
        started = time.monotonic()
        ids = _write_entities(world)
        say(f"Wrote the entity rows in {time.monotonic() - started:.1f}s")
        created = True
    # The stream ends with the last code's exposure on the last day, and batches commit in
    # order: if that event is stored, every earlier one is too.
    if Event.objects.filter(key=event_key(final_event_key(world))).exists():
        return LoadResult(LOADED if created else ALREADY_LOADED, created)
    started = time.monotonic()

    def report(day: int, generated: int) -> None:
        if day % PROGRESS_EVERY_DAYS == 0 or day == world.days:
            rate = generated / max(time.monotonic() - started, 1e-9)
            say(f"  day {day}/{world.days}: {generated:,} events so far, {rate:,.0f} events/s")

    added = record_many(demo_events(world, ids, on_day=report), batch_size=EVENT_BATCH_SIZE)
    return LoadResult(LOADED, created, added)


def final_event_key(world: World) -> str:
    return f"demo:exposure:{world.channels[-1].state}:{world.day_label(world.days - 1)}"


@contextmanager
def _historical_timestamps(*fields):
    """Let bulk_create keep the times we set on auto_now/auto_now_add fields (a replayed past)."""
    saved = [(f, f.auto_now, f.auto_now_add) for f in fields]
    for f, _, _ in saved:
        f.auto_now = f.auto_now_add = False
    try:
        yield
    finally:
        for f, auto_now, auto_now_add in saved:
            f.auto_now, f.auto_now_add = auto_now, auto_now_add


def _bulk(model, objects, *, batch_size: int = ENTITY_BATCH_SIZE) -> list:
    """bulk_create from an iterable in batches; returns the created objects (with ids)."""
    created = []
    iterator = iter(objects)
    while batch := list(islice(iterator, batch_size)):
        created.extend(model.objects.bulk_create(batch, batch_size=batch_size))
    return created


def _bulk_quiet(model, objects, *, batch_size: int = ENTITY_BATCH_SIZE) -> int:
    """Like `_bulk` but keeps no objects: for the big tables nobody needs ids of."""
    count = 0
    iterator = iter(objects)
    while batch := list(islice(iterator, batch_size)):
        model.objects.bulk_create(batch, batch_size=batch_size)
        count += len(batch)
    return count


def _reference_rows(world: World) -> tuple[dict[int, int], dict[tuple[str, str], int]]:
    """Tiers and tags: shared reference data, reused when another command made them first."""
    tiers = {}
    for name, level, min_orders, min_order, min_spend, rights in TIERS:
        tier = MemberTier.objects.filter(level=level).first()
        if tier is None:
            tier = MemberTier.objects.create(
                name=name,
                level=level,
                min_orders=min_orders,
                min_order_fen=min_order,
                min_spend_fen=min_spend,
                rights=rights,
            )
        tiers[level] = tier.pk
    tags = {}
    for order, (group_name, names) in enumerate(TAG_CATALOGUE):
        tag_group, _ = TagGroup.objects.get_or_create(name=group_name, defaults={"order": order})
        source = TagSource.RULE if group_name == BEHAVIOUR else TagSource.MANUAL
        for position, name in enumerate(names):
            tag, _ = Tag.objects.get_or_create(
                group=tag_group, name=name, defaults={"order": position, "source": source}
            )
            tags[(group_name, name)] = tag.pk
    return tiers, tags


def _write_entities(world: World) -> Ids:
    at = world.at
    before = world.at(-30 * DAY)  # staff and codes existed before the history starts
    stamped = [
        model._meta.get_field(name)
        for model, name in (
            (Staff, "created_at"),
            (ChannelCode, "created_at"),
            (Campaign, "created_at"),
            (Contact, "created_at"),
            (Group, "created_at"),
            (Order, "created_at"),
            (Cost, "created_at"),
            (ContactTag, "created_at"),
            (PointsEntry, "created_at"),
        )
    ]
    with transaction.atomic(), _historical_timestamps(*stamped):
        tiers, tags = _reference_rows(world)
        existing = dict(
            Staff.objects.filter(userid__in=[s.userid for s in world.staff]).values_list(
                "userid", "pk"
            )
        )
        new_staff = _bulk(
            Staff,
            (
                Staff(userid=s.userid, name=s.name, created_at=before)
                for s in world.staff
                if s.userid not in existing
            ),
        )
        existing.update({s.userid: s.pk for s in new_staff})
        staff_ids = [existing[s.userid] for s in world.staff]

        channels = _bulk(
            ChannelCode,
            (
                ChannelCode(
                    name=c.name,
                    kind=c.kind,
                    state=c.state,
                    welcome_message=f"你好,我是花漾的专属顾问~ 感谢通过{c.label}添加,"
                    "新人礼包已发送,请查收!",
                    created_at=before,
                )
                for c in world.channels
            ),
        )
        channel_ids = [c.pk for c in channels]
        ChannelCode.staff.through.objects.bulk_create(
            ChannelCode.staff.through(channelcode_id=channel_ids[c], staff_id=staff_ids[s])
            for c, channel in enumerate(world.channels)
            for s in channel.staff
        )

        campaigns = _bulk(
            Campaign,
            (
                Campaign(
                    name=run.plan.name,
                    type=run.plan.type,
                    state=run.state,
                    starts_at=at(run.start),
                    ends_at=at(run.end),
                    budget_fen=run.budget_fen,
                    rules=run.plan.rules,
                    created_at=at(min(run.start, world.end) - 3 * DAY),
                )
                for run in world.campaigns
            ),
        )
        campaign_ids = [c.pk for c in campaigns]

        contacts = _bulk(
            Contact,
            (
                Contact(
                    external_userid=c.external_userid,
                    name=c.name,
                    gender=c.gender,
                    source_channel_id=channel_ids[c.channel],
                    tier_id=tiers[c.tier],
                    stage=c.stage,
                    influence=c.influence,
                    opted_out=c.opted_out_at is not None,
                    opted_out_at=at(c.opted_out_at) if c.opted_out_at is not None else None,
                    points_balance=c.points_balance,
                    first_added_at=at(world.follows[c.follows[0]].added),
                    last_active_at=at(c.last_active) if c.last_active is not None else None,
                    created_at=at(world.follows[c.follows[0]].added),
                )
                for c in world.contacts
            ),
        )
        contact_ids = [c.pk for c in contacts]
        Contact.objects.bulk_update(
            [
                Contact(pk=contact_ids[i], referrer_id=contact_ids[c.referrer])
                for i, c in enumerate(world.contacts)
                if c.referrer is not None
            ],
            ["referrer"],
            batch_size=1_000,
        )
        del contacts

        _bulk_quiet(
            Follow,
            (
                Follow(
                    contact_id=contact_ids[f.contact],
                    staff_id=staff_ids[f.staff],
                    remark=_remark(world, f),
                    description=f"来自{world.channels[f.channel].name}"
                    if f.channel is not None
                    else "售后服务",
                    added_at=at(f.added),
                    add_way=1 if f.channel is not None else 0,
                    state=world.channels[f.channel].state if f.channel is not None else "",
                    channel_id=channel_ids[f.channel] if f.channel is not None else None,
                    deleted_by_contact_at=at(f.blocked_at) if f.blocked_at is not None else None,
                    deleted_by_staff_at=at(f.deleted_at) if f.deleted_at is not None else None,
                )
                for f in world.follows
            ),
        )

        groups = _bulk(
            Group,
            (
                Group(
                    chat_id=g.chat_id,
                    name=g.name,
                    owner_id=staff_ids[g.owner],
                    type=g.type,
                    model=g.model,
                    stage=g.stage,
                    notice=GROUP_NOTICE[g.type],
                    rules=GROUP_RULES,
                    welcome_message=GROUP_WELCOME,
                    member_cap=g.cap,
                    wecom_created_at=at(g.created),
                    dismissed_at=at(g.dismissed) if g.dismissed is not None else None,
                    created_at=at(g.created),
                )
                for g in world.groups
            ),
        )
        group_ids = [g.pk for g in groups]
        Group.admins.through.objects.bulk_create(
            Group.admins.through(group_id=group_ids[g], staff_id=staff_ids[s])
            for g, group in enumerate(world.groups)
            for s in group.admins
        )
        Group.join_codes.through.objects.bulk_create(
            Group.join_codes.through(group_id=group_ids[g], channelcode_id=channel_ids[c])
            for c, channel in enumerate(world.channels)
            for g in channel.groups
        )

        _bulk_quiet(
            GroupMembership,
            (
                GroupMembership(
                    group_id=group_ids[s.group],
                    contact_id=contact_ids[s.contact] if s.contact is not None else None,
                    staff_id=staff_ids[s.staff] if s.staff is not None else None,
                    role=s.role,
                    joined_at=at(s.joined),
                    join_scene=s.join_scene,
                    invitor_userid=s.invitor,
                    channel_id=channel_ids[s.channel] if s.channel is not None else None,
                    left_at=at(s.left) if s.left is not None else None,
                    quit_scene=s.quit_scene,
                )
                for s in world.stays
            ),
        )
        _bulk_quiet(
            Order,
            (
                Order(
                    order_no=o.order_no,
                    contact_id=contact_ids[o.contact],
                    amount_fen=o.amount_fen,
                    items=o.items,
                    used_coupon=o.used_coupon,
                    ordered_at=at(o.at),
                    group_id=group_ids[o.group] if o.group is not None else None,
                    channel_id=channel_ids[world.contacts[o.contact].channel],
                    campaign_id=campaign_ids[o.campaign] if o.campaign is not None else None,
                    referrer_id=contact_ids[o.referrer] if o.referrer is not None else None,
                    created_at=at(o.at + 5),
                )
                for o in world.orders
            ),
        )
        _bulk_quiet(
            Cost,
            (
                Cost(
                    amount_fen=c.amount_fen,
                    period_start=c.start,
                    period_end=c.end,
                    channel_id=channel_ids[c.channel] if c.channel is not None else None,
                    campaign_id=campaign_ids[c.campaign] if c.campaign is not None else None,
                    note=c.note,
                    created_at=at(_cost_at(world, c)),
                )
                for c in world.costs
            ),
        )
        _bulk_quiet(
            ContactTag,
            (
                ContactTag(
                    contact_id=contact_ids[c],
                    tag_id=tags[(group, name)],
                    source=TagSource.RULE if group == BEHAVIOUR else TagSource.MANUAL,
                    created_at=at(when),
                )
                for c, group, name, when in world.tags
            ),
        )
        _bulk_quiet(
            PointsEntry,
            (
                PointsEntry(
                    contact_id=contact_ids[p.contact],
                    delta=p.delta,
                    balance_after=p.balance_after,
                    reason=p.reason,
                    note=p.note,
                    idempotency_key=p.key,
                    created_at=at(p.at),
                )
                for p in world.points
            ),
        )
    return Ids(staff_ids, channel_ids, campaign_ids, group_ids, contact_ids, tags, tiers)


def _remark(world: World, follow: FollowPlan) -> str:
    contact = world.contacts[follow.contact]
    label = world.channels[follow.channel].label if follow.channel is not None else "售后"
    return f"{contact.name}-{label}"[:20]  # WeCom caps remarks at 20 characters


def _read_ids(world: World) -> Ids | None:
    """Ids of the entities a previous run wrote; None if that run had other arguments."""
    stored = {
        userid: (pk, first_added)
        for userid, pk, first_added in Contact.objects.filter(
            external_userid__startswith=CONTACT_PREFIX
        ).values_list("external_userid", "pk", "first_added_at")
    }
    arrivals = [world.at(world.follows[c.follows[0]].added) for c in world.contacts]
    # Any other seed, size, length or end date moves at least one arrival.
    same = len(stored) == len(world.contacts) and all(
        stored.get(c.external_userid, (None, None))[1] == arrived
        for c, arrived in zip(world.contacts, arrivals, strict=True)
    )
    if not same:
        return None
    staff = dict(Staff.objects.filter(userid__startswith=STAFF_PREFIX).values_list("userid", "pk"))
    channels = dict(ChannelCode.objects.values_list("state", "pk"))
    groups = dict(
        Group.objects.filter(chat_id__startswith=GROUP_PREFIX).values_list("chat_id", "pk")
    )
    campaigns = dict(
        Campaign.objects.filter(name__in=[r.plan.name for r in world.campaigns]).values_list(
            "name", "pk"
        )
    )
    tags = {
        (group, name): pk
        for group, name, pk in Tag.objects.values_list("group__name", "name", "pk")
    }
    tiers = dict(MemberTier.objects.values_list("level", "pk"))
    return Ids(
        staff=[staff[s.userid] for s in world.staff],
        channels=[channels[c.state] for c in world.channels],
        campaigns=[campaigns[r.plan.name] for r in world.campaigns],
        groups=[groups[g.chat_id] for g in world.groups],
        contacts=[stored[c.external_userid][0] for c in world.contacts],
        tags=tags,
        tiers=tiers,
    )


# Kinds of the day's one-off facts, in the order they are written within a moment.
(
    _GROUP_CREATED, _CONTACT_ADDED, _REFERRAL, _JOINED, _ORDER, _TIER, _TAG, _POINTS, _CHECKIN,
    _COST, _LEFT, _BLOCKED, _DELETED, _DISMISSED,
) = range(14)  # fmt: skip


def demo_events(
    world: World, ids: Ids, *, on_day: Callable[[int, int], None] | None = None
) -> Iterator[EventRow]:
    """The event log of the world, day by day: one-off facts, speech, then the day's exposures.

    A generator: at scale the log is ~10M rows and only one day's worth is ever in memory.
    `on_day(days done, events generated)` is called as each day is finished.
    """
    generated = 0
    facts = _facts_by_day(world)
    day_seconds = [timedelta(seconds=s) for s in range(DAY)]
    salt = _speech_salt(world)
    contacts, stays, groups = world.contacts, world.stays, world.groups
    contact_ids, group_ids = ids.contacts, ids.groups
    message = EventType.MESSAGE
    per_message = world.config.row_per_message

    # Members who ever spoke, by the day their stay starts; `active` holds the current ones.
    talkers = sorted(
        (stay.joined // DAY, s)
        for s, stay in enumerate(stays)
        if stay.speech and stay.contact is not None
    )
    next_talker, active = 0, []
    for day in range(world.days):
        base = world.at(day * DAY)
        label = world.day_label(day)
        day_facts = sorted(facts[day])
        generated += len(day_facts)
        for _, kind, ref in day_facts:
            yield _fact_event(world, ids, kind, ref)

        while next_talker < len(talkers) and talkers[next_talker][0] <= day:
            s = talkers[next_talker][1]
            stay = stays[s]
            contact = contacts[stay.contact]
            active.append(
                (
                    s,
                    stay,
                    stay.speech,
                    contact.talk_class,
                    contact_ids[stay.contact],
                    group_ids[stay.group],
                    f"demo:message:{groups[stay.group].chat_id}:{contact.external_userid}:",
                )
            )
            next_talker += 1
        still = []
        for entry in active:
            s, stay, speech, talk_class, contact_id, group_id, prefix = entry
            if speech >> day == 0:
                continue  # spoke for the last time before today
            still.append(entry)
            if speech >> day & 1:
                at, count = _message(world, salt, s, stay, day, talk_class)
                if not per_message:
                    generated += 1
                    yield EventRow(
                        message, base + day_seconds[at - day * DAY], prefix + label,
                        contact_id, group_id, None, None, None, count, None,
                    )  # fmt: skip
                    continue
                generated += count
                for i in range(count):  # a burst: a message every two minutes, before 23:00
                    second = min(at - day * DAY + i * 120, 23 * HOUR)
                    yield EventRow(
                        message, base + day_seconds[second], f"{prefix}{label}:{i}",
                        contact_id, group_id, None, None, None, 1, None,
                    )  # fmt: skip
        active = still

        for c, channel in enumerate(world.channels):
            yield EventRow(
                EventType.CHANNEL_EXPOSURE,
                base + day_seconds[23 * HOUR + 59 * MINUTE],
                f"demo:exposure:{channel.state}:{label}",
                channel_id=ids.channels[c],
                amount=world.exposures[c][day],
            )
        generated += len(world.channels)
        if on_day is not None:
            on_day(day + 1, generated)


def _facts_by_day(world: World) -> list[list[tuple[int, int, int]]]:
    facts: list[list[tuple[int, int, int]]] = [[] for _ in range(world.days)]

    def add(at: int, kind: int, ref: int) -> None:
        if 0 <= at < world.end:
            facts[at // DAY].append((at, kind, ref))

    for g, group in enumerate(world.groups):
        add(group.created, _GROUP_CREATED, g)
        if group.dismissed is not None:
            add(group.dismissed + MINUTE, _DISMISSED, g)
    for f, follow in enumerate(world.follows):
        add(follow.added, _CONTACT_ADDED, f)
        if follow.blocked_at is not None:
            add(follow.blocked_at, _BLOCKED, f)
        if follow.deleted_at is not None:
            add(follow.deleted_at, _DELETED, f)
    for c, contact in enumerate(world.contacts):
        if contact.referrer is not None:
            add(world.follows[contact.follows[0]].added, _REFERRAL, c)
    for s, stay in enumerate(world.stays):
        if stay.contact is None:
            continue  # staff stays: the owner is on GROUP_CREATED; staff are not "members"
        add(stay.joined, _JOINED, s)
        if stay.left is not None:
            add(stay.left, _LEFT, s)
    for o, order in enumerate(world.orders):
        add(order.at, _ORDER, o)
    for t, (_, _, _, at) in enumerate(world.tier_changes):
        add(at, _TIER, t)
    for t, (_, _, _, at) in enumerate(world.tags):
        add(at, _TAG, t)
    for p, entry in enumerate(world.points):
        add(entry.at, _POINTS, p)
    for k, (_, _, at, _) in enumerate(world.checkins):
        add(at, _CHECKIN, k)
    for k, cost in enumerate(world.costs):
        add(_cost_at(world, cost), _COST, k)
    return facts


def _fact_event(world: World, ids: Ids, kind: int, ref: int) -> EventRow:
    at = world.at
    contacts, staff, groups = world.contacts, world.staff, world.groups
    if kind == _GROUP_CREATED or kind == _DISMISSED:
        group = groups[ref]
        created = kind == _GROUP_CREATED
        return EventRow(
            EventType.GROUP_CREATED if created else EventType.GROUP_DISMISSED,
            at(group.created if created else group.dismissed + MINUTE),
            f"demo:group-{'created' if created else 'dismissed'}:{group.chat_id}",
            group_id=ids.groups[ref],
            staff_id=ids.staff[group.owner],
        )
    if kind in (_CONTACT_ADDED, _BLOCKED, _DELETED):
        follow = world.follows[ref]
        contact = contacts[follow.contact]
        event_type, verb, when = {
            _CONTACT_ADDED: (EventType.CONTACT_ADDED, "added", follow.added),
            _BLOCKED: (EventType.CONTACT_BLOCKED, "blocked", follow.blocked_at),
            _DELETED: (EventType.CONTACT_DELETED, "deleted", follow.deleted_at),
        }[kind]
        channel = follow.channel if kind == _CONTACT_ADDED else None
        return EventRow(
            event_type,
            at(when),
            f"demo:contact-{verb}:{contact.external_userid}:{staff[follow.staff].userid}",
            contact_id=ids.contacts[follow.contact],
            staff_id=ids.staff[follow.staff],
            channel_id=ids.channels[channel] if channel is not None else None,
            payload={"state": world.channels[channel].state} if channel is not None else None,
        )
    if kind == _REFERRAL:
        contact = contacts[ref]
        return EventRow(
            EventType.REFERRAL,
            at(world.follows[contact.follows[0]].added),
            f"demo:referral:{contact.external_userid}",
            contact_id=ids.contacts[contact.referrer],
            channel_id=ids.channels[contact.channel],
            payload={"referred_contact_id": ids.contacts[ref]},
        )
    if kind == _JOINED or kind == _LEFT:
        stay = world.stays[ref]
        contact = contacts[stay.contact]
        joined = kind == _JOINED
        payload = {"scene": stay.join_scene if joined else stay.quit_scene}
        if joined and stay.invitor:
            payload["invitor"] = stay.invitor
        return EventRow(
            EventType.GROUP_JOINED if joined else EventType.GROUP_LEFT,
            at(stay.joined if joined else stay.left),
            f"demo:group-{'joined' if joined else 'left'}:{groups[stay.group].chat_id}:"
            f"{contact.external_userid}:{stay.ordinal}",
            contact_id=ids.contacts[stay.contact],
            group_id=ids.groups[stay.group],
            channel_id=ids.channels[stay.channel] if joined and stay.channel is not None else None,
            payload=payload,
        )
    if kind == _ORDER:
        order = world.orders[ref]
        payload = {"order_no": order.order_no}
        if order.referrer is not None:
            payload["referrer_contact_id"] = ids.contacts[order.referrer]
        return EventRow(
            EventType.ORDER_PAID,
            at(order.at),
            f"demo:order-paid:{order.order_no}",
            contact_id=ids.contacts[order.contact],
            group_id=ids.groups[order.group] if order.group is not None else None,
            channel_id=ids.channels[contacts[order.contact].channel],
            campaign_id=ids.campaigns[order.campaign] if order.campaign is not None else None,
            amount=order.amount_fen,
            payload=payload,
        )
    if kind == _TIER:
        c, before, after, when = world.tier_changes[ref]
        return EventRow(
            EventType.TIER_CHANGED,
            at(when),
            f"demo:tier-changed:{contacts[c].external_userid}:VIP{after}",
            contact_id=ids.contacts[c],
            payload={"from": f"VIP{before}", "to": f"VIP{after}"},
        )
    if kind == _TAG:
        c, group, name, when = world.tags[ref]
        return EventRow(
            EventType.TAG_ADDED,
            at(when),
            f"demo:tag-added:{contacts[c].external_userid}:{group}/{name}",
            contact_id=ids.contacts[c],
            payload={"tag_id": ids.tags[(group, name)], "tag": name},
        )
    if kind == _POINTS:
        entry = world.points[ref]
        return EventRow(
            EventType.POINTS_CHANGED,
            at(entry.at),
            entry.key,
            contact_id=ids.contacts[entry.contact],
            amount=entry.delta,
            payload={"reason": entry.reason, "balance_after": entry.balance_after},
        )
    if kind == _CHECKIN:
        c, campaign, when, streak = world.checkins[ref]
        return EventRow(
            EventType.CHECKED_IN,
            at(when),
            f"demo:checked-in:{contacts[c].external_userid}:{world.day_label(when // DAY)}",
            contact_id=ids.contacts[c],
            campaign_id=ids.campaigns[campaign],
            payload={"streak": streak},
        )
    cost = world.costs[ref]  # _COST
    return EventRow(
        EventType.COST_RECORDED,
        at(_cost_at(world, cost)),
        cost.key,
        channel_id=ids.channels[cost.channel] if cost.channel is not None else None,
        campaign_id=ids.campaigns[cost.campaign] if cost.campaign is not None else None,
        amount=cost.amount_fen,
        payload={"period_start": cost.start.isoformat(), "period_end": cost.end.isoformat()},
    )


# ---------------------------------------------------------------------------------------------
# Summary


def demo_data_summary() -> dict:
    """What the database holds now: the numbers the command prints after a load."""
    memberships = GroupMembership.objects.aggregate(
        open=Count("pk", filter=Q(left_at__isnull=True)),
        closed=Count("pk", filter=Q(left_at__isnull=False)),
    )
    orders = Order.objects.aggregate(count=Count("pk"), revenue=Sum("amount_fen"))
    names = {t.value: t.name for t in EventType}
    events = {
        names.get(row["type"], str(row["type"])): row["n"]
        for row in Event.objects.values("type").annotate(n=Count("pk")).order_by("type")
    }
    return {
        "staff": Staff.objects.count(),
        "contacts": Contact.objects.count(),
        "groups": Group.objects.count(),
        "memberships_open": memberships["open"],
        "memberships_closed": memberships["closed"],
        "orders": orders["count"],
        "revenue_fen": orders["revenue"] or 0,
        "events": events,
        "events_total": sum(events.values()),
    }
