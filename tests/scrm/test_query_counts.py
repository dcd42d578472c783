"""The main dashboard pages ask the database a fixed number of queries however many rows they
show (issue 7, point 7: no N+1). Each test opens a page as a manager with N rows behind it,
then with 3×N, and expects the same count.

The workbench (/) has its own in tests/analytics/test_workbench.py.
"""

from collections import Counter
from datetime import timedelta
from itertools import count

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from analytics.events import record
from analytics.models import EventType
from campaigns.models import Campaign, Order, Participation, Reward
from contacts.models import ChannelCode, ContactNote, ContactTag, Follow, MemberTier, Tag, TagGroup
from groups.models import AutoReply, GroupMembership
from scrm.models import Job, Role, User
from sop.models import ContentItem, Delivery, Plan, Step
from tests.factories import ContactFactory, GroupFactory, StaffFactory

pytestmark = pytest.mark.django_db

N = 5
serial = count()


@pytest.fixture
def manager():
    return User.objects.create_user("manager", role=Role.ADMIN)


@pytest.fixture
def client(manager):
    client = Client()
    client.force_login(manager)
    return client


def page_queries(client, url: str) -> CaptureQueriesContext:
    """The queries of one GET, after one to warm per-process caches (content types, the
    session)."""
    client.get(url)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, f"GET {url} answered {response.status_code}"
    return captured


def assert_queries_flat(client, url: str, add_rows) -> None:
    """The page's queries with N rows and with 3×N rows are as many."""
    add_rows(N)
    few = page_queries(client, url)
    add_rows(2 * N)
    many = page_queries(client, url)
    if len(many) != len(few):
        repeated = Counter(q["sql"] for q in many.captured_queries).most_common(3)
        shown = "\n".join(f"  {times}× {sql[:300]}" for sql, times in repeated)
        pytest.fail(
            f"GET {url}: {len(few)} queries with {N} rows, {len(many)} with {3 * N}; "
            f"most repeated:\n{shown}"
        )


# --- rows with everything a page may show beside them ------------------------------------------


def tag() -> Tag:
    group, _ = TagGroup.objects.get_or_create(name="兴趣")
    return Tag.objects.create(group=group, name=f"标签{next(serial)}")


def tier() -> MemberTier:
    level = next(serial) % 30_000
    return MemberTier.objects.create(name=f"VIP{level}", level=level)


def channel() -> ChannelCode:
    return ChannelCode.objects.create(name=f"渠道{next(serial)}", state=f"ch{next(serial)}")


def group_with_members(members: int = 2):
    group = GroupFactory()
    group.admins.add(StaffFactory())
    group.join_codes.add(channel())
    now = timezone.now()
    GroupMembership.objects.create(
        group=group, staff=group.owner, role=GroupMembership.Role.OWNER, joined_at=now
    )
    for _ in range(members):
        member(group)
    return group


def member(group, contact=None):
    contact = contact or customer()
    GroupMembership.objects.create(
        group=group,
        contact=contact,
        joined_at=timezone.now() - timedelta(days=3),
        channel=channel(),
    )
    record(
        type=EventType.MESSAGE,
        occurred_at=timezone.now() - timedelta(days=1),
        key=f"qc-msg-{next(serial)}",
        contact=contact,
        group=group,
    )
    return contact


def customer(**fields):
    """A customer with their own staff, tag, tier, source channel, referrer and remark."""
    contact = ContactFactory(
        tier=tier(), source_channel=channel(), referrer=ContactFactory(), **fields
    )
    Follow.objects.create(contact=contact, staff=StaffFactory(), added_at=timezone.now())
    ContactTag.objects.create(contact=contact, tag=tag())
    note(contact)
    return contact


def note(contact) -> ContactNote:
    # An author each: the page names who wrote a remark, one more row to read per note if
    # it were fetched one by one.
    return ContactNote.objects.create(
        contact=contact,
        kind=ContactNote.Kind.IDENTITY,
        text="备注",
        author=User.objects.create_user(f"author{next(serial)}"),
    )


def content(**fields) -> ContentItem:
    return ContentItem.objects.create(
        title=f"素材{next(serial)}", purpose=ContentItem.Purpose.ACTIVATION, text="早安", **fields
    )


def plan(**fields) -> Plan:
    return Plan.objects.create(
        name=f"计划{next(serial)}", kind=Plan.Kind.GROUP, staff=StaffFactory(), **fields
    )


def step(plan_) -> Step:
    return Step.objects.create(plan=plan_, content=content(), position=next(serial) % 1000)


def campaign() -> Campaign:
    now = timezone.now()
    made = Campaign.objects.create(
        name=f"活动{next(serial)}",
        type=Campaign.Type.INVITE_TASK,
        state=Campaign.State.RUNNING,
        starts_at=now - timedelta(days=1),
        ends_at=now + timedelta(days=7),
        staff=StaffFactory(),
    )
    made.audience_tags.add(tag())
    made.audience_groups.add(GroupFactory())
    return made


# --- the pages ---------------------------------------------------------------------------------


def test_contact_list_queries_do_not_grow_with_contacts(client):
    assert_queries_flat(client, reverse("contacts:list"), lambda k: [customer() for _ in range(k)])


def test_contact_page_queries_do_not_grow_with_what_is_known_about_them(client):
    contact = customer()

    def add(k):
        for _ in range(k):
            Follow.objects.create(contact=contact, staff=StaffFactory(), added_at=timezone.now())
            ContactTag.objects.create(contact=contact, tag=tag())
            note(contact)
            member(group_with_members(0), contact)
            made = campaign()
            Participation.objects.create(
                campaign=made, contact=contact, joined_at=timezone.now(), referrer=customer()
            )
            Reward.objects.create(
                campaign=made,
                contact=contact,
                kind=Reward.Kind.POINTS,
                amount=10,
                key=f"qc-reward-{next(serial)}",
            )
            Order.objects.create(
                order_no=f"qc-{next(serial)}",
                contact=contact,
                amount_fen=9900,
                ordered_at=timezone.now(),
                campaign=made,
                channel=channel(),
            )

    assert_queries_flat(client, reverse("contacts:detail", args=[contact.pk]), add)


def test_group_list_queries_do_not_grow_with_groups(client):
    assert_queries_flat(
        client, reverse("groups:list"), lambda k: [group_with_members() for _ in range(k)]
    )


def test_group_page_queries_do_not_grow_with_members(client):
    group = group_with_members()

    def add(k):
        for _ in range(k):
            member(group)
            AutoReply.objects.create(group=group, keyword=f"词{next(serial)}", reply="回复")

    assert_queries_flat(client, reverse("groups:detail", args=[group.pk]), add)


def test_plan_list_queries_do_not_grow_with_plans(client):
    def add(k):
        for _ in range(k):
            made = plan(campaign=campaign())
            step(made)
            made.groups.add(GroupFactory())
            made.tags_all.add(tag())

    assert_queries_flat(client, reverse("sop:plans"), add)


def test_plan_page_queries_do_not_grow_with_steps_and_targets(client):
    made = plan()

    def add(k):
        for _ in range(k):
            step(made)
            made.groups.add(GroupFactory())
            made.tags_all.add(tag())
            made.tiers.add(tier())

    assert_queries_flat(client, reverse("sop:plan", args=[made.pk]), add)


def test_plan_deliveries_queries_do_not_grow_with_deliveries(client):
    made = plan()

    def add(k):
        now = timezone.now()
        today = timezone.localdate(now)
        statuses = [Delivery.Status.SENT, Delivery.Status.SKIPPED]
        for i in range(2 * k):
            # One target a row: half to groups, half to customers.
            target = {"group": GroupFactory()} if i % 2 else {"contact": customer()}
            Delivery.objects.create(
                plan=made,
                step=step(made),
                slot_day=today,
                sender=StaffFactory(),
                slot_at=now,
                due_at=now,
                due_day=today,
                due_week=today - timedelta(days=today.weekday()),
                status=statuses[i % 2],
                **target,
            )

    assert_queries_flat(client, reverse("sop:plan-deliveries", args=[made.pk]), add)


def test_content_library_queries_do_not_grow_with_content(client):
    def add(k):
        for _ in range(k):
            item = content(created_by=User.objects.create_user(f"author{next(serial)}"))
            Step.objects.create(plan=plan(), content=item)

    assert_queries_flat(client, reverse("sop:content"), add)


def test_campaign_list_queries_do_not_grow_with_campaigns(client):
    assert_queries_flat(
        client, reverse("campaign_admin:list"), lambda k: [campaign() for _ in range(k)]
    )


def test_campaign_page_queries_do_not_grow_with_participants(client):
    made = campaign()

    def add(k):
        for _ in range(k):
            person = customer()
            Participation.objects.create(
                campaign=made, contact=person, joined_at=timezone.now(), referrer=customer()
            )
            Reward.objects.create(
                campaign=made,
                contact=person,
                kind=Reward.Kind.POINTS,
                amount=10,
                key=f"qc-reward-{next(serial)}",
            )
            Order.objects.create(
                order_no=f"qc-{next(serial)}",
                contact=person,
                amount_fen=9900,
                ordered_at=timezone.now(),
                campaign=made,
            )

    assert_queries_flat(client, reverse("campaign_admin:detail", args=[made.pk]), add)


def test_analytics_overview_queries_do_not_grow_with_groups(client):
    assert_queries_flat(
        client, reverse("analytics:overview"), lambda k: [group_with_members() for _ in range(k)]
    )


def test_group_comparison_queries_do_not_grow_with_groups(client):
    assert_queries_flat(
        client, reverse("analytics:groups"), lambda k: [group_with_members() for _ in range(k)]
    )


def test_import_export_home_queries_do_not_grow_with_jobs(client, manager):
    assert_queries_flat(
        client,
        reverse("io:home"),
        lambda k: [
            Job.objects.create(kind="contacts_export", created_by=manager) for _ in range(k)
        ],
    )


def test_channel_comparison_queries_do_not_grow_with_channel_codes(client):
    assert_queries_flat(
        client, reverse("analytics:channels"), lambda k: [channel() for _ in range(k)]
    )
