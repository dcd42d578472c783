"""Builders for the SOP tests: content, plans, and customers with a staff relation."""

from datetime import datetime, time
from zoneinfo import ZoneInfo

from django.utils import timezone

from contacts.models import Follow
from sop.models import ContentItem, Plan, Step
from tests.factories import ContactFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")


def shanghai(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def make_content(title="早安打卡", text="{name}，早上好！今天打卡了吗？") -> ContentItem:
    return ContentItem.objects.create(
        title=title, purpose=ContentItem.Purpose.ACTIVATION, text=text
    )


def customer(staff, **fields):
    contact = ContactFactory(**fields)
    Follow.objects.create(contact=contact, staff=staff, added_at=timezone.now())
    return contact


def group_plan(content, *, at=time(7, 30), activated_at, **fields) -> Plan:
    plan = Plan.objects.create(
        name="福利群日常",
        kind=Plan.Kind.GROUP,
        status=Plan.Status.ACTIVE,
        activated_at=activated_at,
        planned_until=activated_at,
        **fields,
    )
    Step.objects.create(plan=plan, content=content, at_time=at, position=1)
    return plan


def broadcast(content, contacts, *, send_at, activated_at, priority=50, **fields) -> Plan:
    plan = Plan.objects.create(
        name="活动通知",
        kind=Plan.Kind.BROADCAST,
        status=Plan.Status.ACTIVE,
        priority=priority,
        activated_at=activated_at,
        planned_until=activated_at,
        **fields,
    )
    Step.objects.create(plan=plan, content=content, send_at=send_at, position=1)
    plan.contacts.set(contacts)
    return plan
