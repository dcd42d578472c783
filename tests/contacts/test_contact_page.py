"""The contact page (客户 360): every section shows what is known, and remarks can be written."""

import html
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.events import record
from analytics.models import EventType
from campaigns.models import Campaign
from contacts.models import (
    ChannelCode,
    Contact,
    ContactNote,
    ContactTag,
    Follow,
    MemberTier,
    PointsEntry,
    Tag,
    TagGroup,
    TagSource,
)
from groups.models import GroupMembership
from scrm.models import Role, User
from tests.factories import ContactFactory, GroupFactory, StaffFactory

PASSWORD = "plum-blossom-2026"


@pytest.fixture
def manager(db) -> User:
    return User.objects.create_user("boss", password=PASSWORD, role=Role.ADMIN)


@pytest.fixture
def operator(db) -> User:
    user = User.objects.create_user("xiaowang", password=PASSWORD, role=Role.OPERATOR)
    StaffFactory(name="小王", userid="xiaowang", user=user)
    return user


def log_in(client, user) -> None:
    assert client.login(username=user.username, password=PASSWORD)


def text_of(page: str) -> str:
    """The page's text with tags and runs of whitespace collapsed, for phrase checks."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def section(page: str, title_id: str) -> str:
    """The text of one <section> of the page, found by its heading's id."""
    start = page.index(f'id="{title_id}"')
    end = page.find("</section>", start)
    return text_of(page[start:end])


@pytest.fixture
def customer(operator) -> Contact:
    """A customer with something in every section of the page."""
    now = timezone.now()
    staff = operator.staff
    other_staff = StaffFactory(name="老李")
    vip2 = MemberTier.objects.create(
        name="VIP2", level=2, rights=["入群福利", "会员日 9 折", {"name": "专属顾问"}]
    )
    channel = ChannelCode.objects.create(name="抖音直播间", state="douyin-live")
    referrer = ContactFactory(name="介绍人老张")
    contact = ContactFactory(
        name="王小花",
        external_userid="wm-flower",
        gender=Contact.Gender.FEMALE,
        avatar="https://example.com/a.png",
        source_channel=channel,
        tier=vip2,
        stage=Contact.Stage.REPEAT,
        influence=Contact.Influence.KOC,
        points_balance=130,
        referrer=referrer,
        first_added_at=now - timedelta(days=40),
        last_active_at=now - timedelta(days=1),
    )
    Follow.objects.create(
        contact=contact,
        staff=staff,
        remark="花姐",
        description="宝妈，两个孩子",
        added_at=now - timedelta(days=40),
        state="douyin-live",
        channel=channel,
    )
    Follow.objects.create(
        contact=contact,
        staff=other_staff,
        added_at=now - timedelta(days=30),
        deleted_by_contact_at=now - timedelta(days=3),
    )
    style = TagGroup.objects.create(name="风格偏好", order=1)
    behaviour = TagGroup.objects.create(name="行为", order=2)
    ContactTag.objects.create(
        contact=contact, tag=Tag.objects.create(group=style, name="简约风"), source=TagSource.MANUAL
    )
    ContactTag.objects.create(
        contact=contact,
        tag=Tag.objects.create(group=behaviour, name="复购客户"),
        source=TagSource.RULE,
    )
    ContactNote.objects.create(
        contact=contact, kind=ContactNote.Kind.IDENTITY, text="小学老师", author=operator
    )
    ContactNote.objects.create(
        contact=contact, kind=ContactNote.Kind.INQUIRY, text="问过儿童面霜", author=operator
    )
    for n, (delta, reason) in enumerate([(100, "order"), (50, "checkin"), (-20, "redeem")]):
        balance = [100, 150, 130][n]
        PointsEntry.objects.create(
            contact=contact,
            delta=delta,
            balance_after=balance,
            reason=reason,
            idempotency_key=f"test-points-{n}",
            created_at=now - timedelta(days=10 - n),
        )
    campaign = Campaign.objects.create(name="618 拼团", type=Campaign.Type.GROUP_BUY)
    group = GroupFactory(name="宝妈福利群", owner=staff)
    record(
        type=EventType.ORDER_PAID,
        occurred_at=now - timedelta(days=5),
        key="test-360-order-1",
        contact=contact,
        group=group,
        campaign=campaign,
        amount=12_345,
        payload={"order_no": "SO-0001"},
    )
    record(
        type=EventType.ORDER_PAID,
        occurred_at=now - timedelta(days=4),
        key="test-360-order-2",
        contact=contact,
        amount=5_000,
        payload={"order_no": "SO-0002"},
    )
    record(
        type=EventType.ORDER_REFUNDED,
        occurred_at=now - timedelta(days=2),
        key="test-360-refund-2",
        contact=contact,
        amount=5_000,
        payload={"order_no": "SO-0002"},
    )
    GroupMembership.objects.create(
        group=group,
        contact=contact,
        joined_at=now - timedelta(days=30),
        join_scene=GroupMembership.JoinScene.QR_CODE,
        left_at=now - timedelta(days=20),
        quit_scene=GroupMembership.QuitScene.LEFT,
    )
    GroupMembership.objects.create(
        group=group,
        contact=contact,
        joined_at=now - timedelta(days=10),
        join_scene=GroupMembership.JoinScene.INVITED,
        role=GroupMembership.Role.KOC,
    )
    record(
        type=EventType.GROUP_JOINED,
        occurred_at=now - timedelta(days=10),
        key="test-360-joined",
        contact=contact,
        group=group,
        payload={"scene": 0},
    )
    record(
        type=EventType.CONTACT_ADDED,
        occurred_at=now - timedelta(days=40),
        key="test-360-added",
        contact=contact,
        staff=staff,
        channel=channel,
    )
    record(
        type=EventType.STAGE_CHANGED,
        occurred_at=now - timedelta(days=4),
        key="test-360-stage",
        contact=contact,
        payload={"from": "first_order", "to": "repeat"},
    )
    friend = ContactFactory(name="被带来的小美", referrer=contact)
    Follow.objects.create(contact=friend, staff=staff, added_at=now)
    ContactFactory(name="别人的客户", referrer=contact)
    return contact


def test_the_page_shows_profile_follows_tags_tier_points_and_referrals(client, customer, operator):
    log_in(client, operator)

    page = client.get(f"/contacts/{customer.pk}/").content.decode()

    profile = section(page, "profile-title")
    assert "王小花" in profile
    assert "wm-flower" in profile
    assert "抖音直播间" in profile
    assert "KOC" in profile
    assert (timezone.localdate() - timedelta(days=40)).isoformat() in profile
    follows = section(page, "follows-title")
    assert "小王" in follows and "花姐" in follows and "宝妈，两个孩子" in follows
    assert "老李" in follows
    assert (timezone.localdate() - timedelta(days=3)).isoformat() in follows
    tags = section(page, "tags-title")
    assert "风格偏好" in tags and "简约风" in tags and "行为" in tags and "复购客户" in tags
    assert tags.index("风格偏好") < tags.index("行为")
    tier = section(page, "tier-title")
    assert "VIP2" in tier
    assert "会员日 9 折" in tier and "专属顾问" in tier
    assert "130" in tier and "-20" in tier and "+100" in tier
    referrals = section(page, "referral-title")
    assert "介绍人老张" in referrals
    assert "被带来的小美" in referrals and "别人的客户" in referrals
    # Only the referral the operator may open is a link.
    friend = Contact.objects.get(name="被带来的小美")
    other = Contact.objects.get(name="别人的客户")
    assert f'href="/contacts/{friend.pk}/"' in page
    assert f'href="/contacts/{other.pk}/"' not in page
    assert f'href="/contacts/{customer.referrer_id}/"' not in page


def test_the_page_shows_remarks_by_kind_orders_groups_and_the_timeline(client, customer, operator):
    log_in(client, operator)

    page = client.get(f"/contacts/{customer.pk}/").content.decode()

    remarks = section(page, "remarks-title")
    assert "小学老师" in remarks and "问过儿童面霜" in remarks
    orders = section(page, "orders-title")
    assert "SO-0001" in orders and "¥123.45" in orders and "618 拼团" in orders
    assert "SO-0002" in orders and "¥50.00" in orders
    profile = section(page, "profile-title")
    assert "¥123.45" in profile  # spend net of the refund
    groups = section(page, "groups-title")
    assert "宝妈福利群" in groups
    assert "扫描二维码" in groups or "Scanned QR code" in groups
    assert groups.count("宝妈福利群") == 1  # one group, two stays
    timeline = section(page, "timeline-title")
    assert timeline.index("SO-0002") < timeline.index("SO-0001")  # newest first
    assert "宝妈福利群" in timeline
    assert "抖音直播间" in timeline and "小王" in timeline


def test_the_timeline_pages_through_every_event(client, customer, operator):
    now = timezone.now()
    for n in range(60):
        record(
            type=EventType.MESSAGE,
            occurred_at=now - timedelta(minutes=n),
            key=f"test-360-message-{n}",
            contact=customer,
        )
    log_in(client, operator)

    first = client.get(f"/contacts/{customer.pk}/").content.decode()
    second = client.get(f"/contacts/{customer.pk}/?timeline_page=2").content.decode()

    assert section(first, "timeline-title").count("SO-000") == 0
    assert "SO-0001" in section(second, "timeline-title")
    assert 'rel="next"' in first


def test_an_operator_adds_and_corrects_a_remark(client, customer, operator):
    log_in(client, operator)

    response = client.post(
        f"/contacts/{customer.pk}/notes/",
        {"kind": ContactNote.Kind.PREFERENCE, "text": "喜欢浅色"},
        follow=True,
    )

    note = ContactNote.objects.get(text="喜欢浅色")
    assert note.author == operator and note.kind == ContactNote.Kind.PREFERENCE
    assert "喜欢浅色" in section(response.content.decode(), "remarks-title")

    client.post(f"/contacts/{customer.pk}/notes/{note.pk}/", {"text": "喜欢浅色和米色"})

    note.refresh_from_db()
    assert note.text == "喜欢浅色和米色"


def test_an_empty_remark_or_unknown_kind_is_refused_and_nothing_is_saved(
    client, customer, operator
):
    log_in(client, operator)
    before = ContactNote.objects.count()

    empty = client.post(
        f"/contacts/{customer.pk}/notes/", {"kind": "identity", "text": "  "}, follow=True
    )
    wrong_kind = client.post(
        f"/contacts/{customer.pk}/notes/", {"kind": "gossip", "text": "x"}, follow=True
    )

    assert ContactNote.objects.count() == before
    assert 'class="alert alert-error"' in empty.content.decode()
    assert "gossip" not in ContactNote.objects.values_list("kind", flat=True)
    assert 'class="alert alert-error"' in wrong_kind.content.decode()


def test_the_page_runs_a_fixed_small_number_of_queries(
    client, customer, operator, django_assert_max_num_queries
):
    for n in range(30):
        record(
            type=EventType.TAG_ADDED,
            occurred_at=timezone.now() - timedelta(hours=n),
            key=f"test-360-tag-{n}",
            contact=customer,
            staff=operator.staff,
            payload={"tag_id": Tag.objects.first().pk},
        )
    log_in(client, operator)

    with django_assert_max_num_queries(18):
        response = client.get(f"/contacts/{customer.pk}/")

    assert response.status_code == 200


def test_a_customer_who_does_not_exist_is_a_404(client, manager):
    log_in(client, manager)
    assert client.get("/contacts/999999/").status_code == 404


def test_tag_events_from_sync_rules_and_the_demo_show_the_tag_name(client, customer, operator):
    tag = customer.contact_tags.select_related("tag").first().tag
    for n, source in enumerate(["wecom", "rule", "import"]):
        record(
            type=EventType.TAG_ADDED,
            occurred_at=timezone.now(),
            key=f"tag-event-shape:{n}",
            contact=customer,
            payload={"tag_id": tag.pk, "tag": tag.name, "source": source},
        )
    log_in(client, operator)

    response = client.get(f"/contacts/{customer.pk}/")

    assert response.status_code == 200
    assert text_of(response.content.decode()).count(tag.name) >= 3


def test_a_remark_whose_author_is_gone_still_shows(client, customer, operator):
    # Remarks from an import, or by a login deleted since, have no author.
    ContactNote.objects.create(
        contact=customer, kind=ContactNote.Kind.PREFERENCE, text="喜欢无香型", author=None
    )
    log_in(client, operator)

    response = client.get(f"/contacts/{customer.pk}/")

    assert response.status_code == 200
    assert "喜欢无香型" in section(response.content.decode(), "remarks-title")
