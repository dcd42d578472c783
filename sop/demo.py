"""Demo SOPs from the articles: a content library, a group's day and week, two journeys."""

from datetime import time

from django.db import transaction
from django.utils import timezone

from groups.models import Group
from sop.models import ContentItem, Plan, Step

CONTENT = [
    # (title, purpose, category, text)
    ("早安打卡", "activation", "打卡", "早上好，{name}！今天也来打个卡吧～回复「打卡」领积分。"),
    ("午间分享", "activation", "干货", "午间小分享：换季护肤三步走，收藏起来慢慢看。"),
    ("晚间答疑", "activation", "答疑", "晚上 8:30 群内答疑开始啦，有问题尽管问～"),
    ("周一种草", "conversion", "种草", "本周新品抢先看：会员专享价，限时 3 天。"),
    ("周三会员日", "conversion", "会员日", "今天会员日！{tier}会员全场 9 折，积分翻倍。"),
    ("周五裂变", "conversion", "裂变", "邀请好友进群，满 3 人送新品小样一份。"),
    ("新客欢迎", "brand", "欢迎", "{name}，欢迎加入！新人礼已放入你的账户，记得查收。"),
    ("首单优惠", "conversion", "首单", "{name}，首单立减 20 元，券码 {coupon}，7 天内有效。"),
    ("复购提醒", "conversion", "复购", "{name}，上次买的快用完了吧？回购券 {coupon}，本周有效。"),
    ("周末唤醒", "activation", "唤醒", "{name}，好久不见！周末专属福利券 {coupon} 送给你。"),
]


def sop_demo_load() -> bool:
    """Load the demo SOPs once; returns False if they are there already."""
    if ContentItem.objects.exists():
        return False
    now = timezone.now()
    with transaction.atomic():
        items = {
            title: ContentItem.objects.create(
                title=title, purpose=purpose, category=category, text=text
            )
            for title, purpose, category, text in CONTENT
        }
        day = Plan.objects.create(
            name="福利群日常节奏",
            description="早打卡、午分享、晚答疑；周一种草、周三会员日、周五裂变。",
            kind=Plan.Kind.GROUP,
            group_types=[Group.Type.BENEFIT],
            priority=40,
            holiday_policy=Plan.HolidayPolicy.SHIFT,
        )
        for position, (title, at, weekdays) in enumerate(
            [
                ("早安打卡", time(8, 0), []),
                ("午间分享", time(12, 0), []),
                ("晚间答疑", time(20, 30), []),
                ("周一种草", time(10, 0), [0]),
                ("周三会员日", time(10, 0), [2]),
                ("周五裂变", time(19, 0), [4]),
            ],
            1,
        ):
            Step.objects.create(
                plan=day,
                position=position,
                name=title,
                content=items[title],
                at_time=at,
                weekdays=weekdays,
            )
        welcome = Plan.objects.create(
            name="新客旅程",
            description="T+0 欢迎与新人礼；第 7 天首单优惠；未下单者第 21 天复购提醒。",
            kind=Plan.Kind.JOURNEY,
            trigger=Plan.Trigger.CONTACT_ADDED,
            priority=70,
        )
        Step.objects.create(plan=welcome, position=1, name="T+0", content=items["新客欢迎"])
        Step.objects.create(
            plan=welcome,
            position=2,
            name="W1",
            content=items["首单优惠"],
            offset_days=7,
            at_time=time(10, 0),
            only_if_no_order_since_trigger=True,
            coupon_code="NEW20",
        )
        Step.objects.create(
            plan=welcome,
            position=3,
            name="T+21",
            content=items["复购提醒"],
            offset_days=21,
            at_time=time(10, 0),
            coupon_code="BACK15",
        )
        wake = Plan.objects.create(
            name="沉睡唤醒",
            description="30 天没有发言或下单：下一个周末上午送专属券。",
            kind=Plan.Kind.JOURNEY,
            trigger=Plan.Trigger.INACTIVE,
            inactive_days=30,
            priority=30,
        )
        Step.objects.create(
            plan=wake,
            position=1,
            name="周末唤醒",
            content=items["周末唤醒"],
            at_time=time(10, 0),
            weekdays=[5, 6],
            coupon_code="WAKE10",
        )
        # Live from now on, so the demo's beat plans and sends through the fake WeCom.
        for plan in (day, welcome, wake):
            plan.status = Plan.Status.ACTIVE
            plan.activated_at = plan.planned_until = now
            plan.save()
    return True
