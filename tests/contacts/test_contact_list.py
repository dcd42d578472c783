"""The customer list: every filter, customer types, sorting, paging and the page itself."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics.events import record
from analytics.models import EventType
from contacts.filters import ContactFilterError, CustomerType, contact_filters_parse
from contacts.models import (
    ChannelCode,
    Contact,
    ContactNote,
    ContactTag,
    Follow,
    MemberTier,
    Tag,
    TagGroup,
)
from contacts.selectors import contact_stats, contacts_filtered
from groups.models import GroupMembership
from scrm.models import Role, User
from tests.factories import ContactFactory, GroupFactory, StaffFactory

PASSWORD = "plum-blossom-2026"
NOW = datetime(2026, 6, 15, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai, mid-month


@pytest.fixture
def manager(db) -> User:
    return User.objects.create_user("boss", password=PASSWORD, role=Role.ADMIN)


def names(user, params: str = "", *, now=NOW) -> list[str]:
    """The customers the list gives for these query parameters, in order."""
    filters = contact_filters_parse(QueryDict(params))
    return list(
        contacts_filtered(user=user, filters=filters, now=now).values_list("name", flat=True)
    )


def name_set(user, params: str = "", *, now=NOW) -> set[str]:
    return set(names(user, params, now=now))


def follow(contact, staff, **fields) -> Follow:
    return Follow.objects.create(contact=contact, staff=staff, added_at=NOW, **fields)


_orders = iter(range(1, 10**6))


def order(contact, fen: int, at: datetime, *, order_no: str | None = None) -> str:
    order_no = order_no or f"T{next(_orders):06d}"
    record(
        type=EventType.ORDER_PAID,
        occurred_at=at,
        key=f"test-order:{order_no}",
        contact=contact,
        amount=fen,
        payload={"order_no": order_no},
    )
    return order_no


def refund(contact, fen: int, at: datetime, *, order_no: str) -> None:
    record(
        type=EventType.ORDER_REFUNDED,
        occurred_at=at,
        key=f"test-refund:{order_no}:{fen}",
        contact=contact,
        amount=fen,
        payload={"order_no": order_no},
    )


def tag(contact, *tags) -> None:
    ContactTag.objects.bulk_create([ContactTag(contact=contact, tag=t) for t in tags])


@pytest.fixture
def tags(db) -> dict[str, Tag]:
    style = TagGroup.objects.create(name="风格", order=1)
    interest = TagGroup.objects.create(name="兴趣", order=2)
    return {
        name: Tag.objects.create(group=group, name=name)
        for group, name in [
            (style, "简约"),
            (style, "复古"),
            (interest, "护肤"),
            (interest, "母婴"),
        ]
    }


# --- search and tags -----------------------------------------------------------------------


def test_search_finds_customers_by_name_wecom_remark_or_remark_text(manager):
    staff = StaffFactory()
    ContactFactory(name="王小花")
    by_remark = ContactFactory(name="A")
    by_note = ContactFactory(name="B")
    ContactFactory(name="C")
    follow(by_remark, staff, remark="小花的妈妈")
    ContactNote.objects.create(
        contact=by_note, kind=ContactNote.Kind.PREFERENCE, text="喜欢小花图案"
    )

    assert name_set(manager, "q=小花") == {"王小花", "A", "B"}
    assert name_set(manager, "q=妈妈") == {"A"}


def test_tags_all_of_any_of_and_none_of(manager, tags):
    simple, retro, skincare, baby = tags.values()
    both = ContactFactory(name="both")
    tag(both, simple, retro, skincare)
    only_simple = ContactFactory(name="only-simple")
    tag(only_simple, simple, baby)
    none = ContactFactory(name="none")

    assert name_set(manager, f"tags_all={simple.pk},{retro.pk}") == {"both"}
    assert name_set(manager, f"tags_all={simple.pk}&tags_all={skincare.pk}") == {"both"}
    assert name_set(manager, f"tags_any={retro.pk},{baby.pk}") == {"both", "only-simple"}
    assert name_set(manager, f"tags_none={retro.pk}") == {"only-simple", "none"}
    assert name_set(manager, f"tags_all={simple.pk}&tags_none={baby.pk}") == {"both"}
    assert none.name not in name_set(manager, f"tags_any={simple.pk}")


def test_a_customer_with_many_matching_tags_is_listed_and_counted_once(manager, tags):
    many = ContactFactory(name="many")
    tag(many, *tags.values())

    filters = contact_filters_parse(
        QueryDict(f"tags_any={','.join(str(t.pk) for t in tags.values())}")
    )
    listed = contacts_filtered(user=manager, filters=filters)

    assert list(listed.values_list("name", flat=True)) == ["many"]
    assert listed.count() == 1


def test_tag_group_filter_keeps_customers_with_any_tag_of_each_group(manager, tags):
    simple, retro, skincare, _ = tags.values()
    style_only = ContactFactory(name="style")
    tag(style_only, retro)
    both_groups = ContactFactory(name="both")
    tag(both_groups, simple, skincare)
    ContactFactory(name="untagged")

    assert name_set(manager, f"tag_group={simple.group_id}") == {"style", "both"}
    assert name_set(manager, f"tag_group={simple.group_id},{skincare.group_id}") == {"both"}


# --- profile fields ------------------------------------------------------------------------


def test_tier_stage_channel_and_followed_by_filters(manager):
    vip1 = MemberTier.objects.create(name="VIP1", level=1)
    vip2 = MemberTier.objects.create(name="VIP2", level=2)
    douyin = ChannelCode.objects.create(name="抖音直播", state="douyin")
    alice, bob = StaffFactory(name="Alice"), StaffFactory(name="Bob")
    first = ContactFactory(name="first", tier=vip1, stage=Contact.Stage.NEW, source_channel=douyin)
    second = ContactFactory(name="second", tier=vip2, stage=Contact.Stage.REPEAT)
    third = ContactFactory(name="third", tier=None, stage=Contact.Stage.DORMANT)
    follow(first, alice)
    follow(second, bob)
    follow(third, alice, deleted_by_contact_at=NOW)  # blocked Alice: no longer hers

    assert name_set(manager, f"tier={vip1.pk}") == {"first"}
    assert name_set(manager, f"tier={vip1.pk},{vip2.pk}") == {"first", "second"}
    assert name_set(manager, "stage=new&stage=dormant") == {"first", "third"}
    assert name_set(manager, f"channel={douyin.pk}") == {"first"}
    assert name_set(manager, f"staff={alice.pk}") == {"first"}
    assert name_set(manager, f"staff={bob.pk}&tier={vip2.pk}&stage=repeat") == {"second"}


def test_group_filter_keeps_only_current_members(manager):
    group = GroupFactory()
    member, former, rejoined = (ContactFactory(name=n) for n in ("member", "former", "rejoined"))
    ContactFactory(name="outsider")
    week_ago = NOW - timedelta(days=7)
    GroupMembership.objects.create(group=group, contact=member, joined_at=week_ago)
    GroupMembership.objects.create(group=group, contact=former, joined_at=week_ago, left_at=NOW)
    GroupMembership.objects.create(
        group=group, contact=rejoined, joined_at=week_ago, left_at=week_ago
    )
    GroupMembership.objects.create(group=group, contact=rejoined, joined_at=NOW)

    assert names(manager, f"group={group.pk}&sort=name") == ["member", "rejoined"]


def test_last_active_date_range_and_inactive_days(manager):
    def active(name, days_ago):
        return ContactFactory(
            name=name,
            first_added_at=NOW - timedelta(days=200),
            last_active_at=None if days_ago is None else NOW - timedelta(days=days_ago),
        )

    active("today", 0)
    active("last-week", 7)
    active("two-months", 60)
    active("never", None)
    ContactFactory(name="newcomer", first_added_at=NOW - timedelta(days=2), last_active_at=None)

    # 2026-06-08 is seven days before NOW, a Shanghai calendar day.
    assert name_set(manager, "active_since=2026-06-08") == {"today", "last-week"}
    assert name_set(manager, "active_until=2026-06-08") == {"last-week", "two-months"}
    assert name_set(manager, "active_since=2026-06-01&active_until=2026-06-14") == {"last-week"}
    # Silent 30 days, never active included, unless they only just arrived.
    assert name_set(manager, "inactive_days=30") == {"two-months", "never"}


# --- orders, spend and customer types ------------------------------------------------------


def test_order_count_and_spend_filters_count_refunds_out(manager):
    one = ContactFactory(name="one-order")
    order(one, 10_000, NOW - timedelta(days=3))
    two = ContactFactory(name="two-orders")
    order(two, 3_000, NOW - timedelta(days=5))
    order(two, 4_000, NOW - timedelta(days=4))
    refunded = ContactFactory(name="refunded")
    kept = order(refunded, 50_000, NOW - timedelta(days=9))
    gone = order(refunded, 20_000, NOW - timedelta(days=8))
    refund(refunded, 20_000, NOW - timedelta(days=7), order_no=gone)
    refund(refunded, 5_000, NOW - timedelta(days=6), order_no=kept)
    ContactFactory(name="no-orders")

    assert name_set(manager, "orders_min=2") == {"two-orders"}
    assert name_set(manager, "orders_max=0") == {"no-orders"}
    assert name_set(manager, "orders_min=1&orders_max=1") == {"one-order", "refunded"}
    # Spend in yuan: ¥450 kept by "refunded", ¥100 and ¥70 by the others.
    assert name_set(manager, "spend_min=100") == {"one-order", "refunded"}
    assert name_set(manager, "spend_min=69.99&spend_max=100.00") == {"one-order", "two-orders"}
    assert name_set(manager, "spend_max=0") == {"no-orders"}


def test_customer_types_follow_the_rules_in_order(manager):
    months_ago = [NOW - timedelta(days=d) for d in (1, 31, 61)]  # June, May, April
    low = ContactFactory(name="low-need")
    order(low, 9_900, NOW - timedelta(days=10))

    loyal = ContactFactory(name="loyal")
    for at in months_ago:
        order(loyal, 2_000, at)  # cheap orders, but the rule for loyal comes first
    brought = ContactFactory(name="brought", referrer=loyal)
    order(brought, 9_900, NOW - timedelta(days=2))

    no_buyer_referral = ContactFactory(name="monthly-no-referral-buyer")
    for at in months_ago:
        order(no_buyer_referral, 2_000, at)
    ContactFactory(name="brought-nothing", referrer=no_buyer_referral)

    bargain = ContactFactory(name="bargain")
    order(bargain, 2_000, NOW - timedelta(days=200))
    order(bargain, 3_000, NOW - timedelta(days=150))

    need = ContactFactory(name="need-driven")
    order(need, 30_000, NOW - timedelta(days=200))
    order(need, 40_000, NOW - timedelta(days=120))

    active_repeat = ContactFactory(name="active-repeat")
    order(active_repeat, 30_000, NOW - timedelta(days=20))
    order(active_repeat, 40_000, NOW - timedelta(days=10))

    assert name_set(manager, "customer_type=low_need") == {
        "low-need",
        "brought",
        "brought-nothing",
    }
    assert name_set(manager, "customer_type=loyal") == {"loyal"}
    # Referred someone, so no bargain hunter, however cheap; and ordered recently.
    assert "monthly-no-referral-buyer" in name_set(manager, "customer_type=unclassified")
    assert name_set(manager, "customer_type=bargain") == {"bargain"}
    assert name_set(manager, "customer_type=need_driven") == {"need-driven"}
    assert name_set(manager, "customer_type=unclassified") == {
        "monthly-no-referral-buyer",
        "active-repeat",
    }
    # The type shown on each row says the same as the filter.
    everyone = {c.name: c.pk for c in Contact.objects.all()}
    shown = contact_stats(everyone.values(), now=NOW)
    for kind in CustomerType.values:
        for name in name_set(manager, f"customer_type={kind}"):
            assert shown[everyone[name]]["customer_type"] == kind, name


# --- sorting and paging --------------------------------------------------------------------


def test_sorting_by_name_activity_points_orders_and_spend(manager):
    a = ContactFactory(name="a", points_balance=5, last_active_at=NOW - timedelta(days=1))
    b = ContactFactory(name="b", points_balance=50, last_active_at=None)
    c = ContactFactory(name="c", points_balance=0, last_active_at=NOW - timedelta(days=9))
    order(a, 100, NOW)
    order(c, 900, NOW)
    order(c, 900, NOW)
    order(b, 5_000, NOW)

    assert names(manager, "sort=name") == ["a", "b", "c"]
    assert names(manager, "sort=-name") == ["c", "b", "a"]
    # Never active sorts last either way.
    assert names(manager, "") == ["a", "c", "b"]
    assert names(manager, "sort=last_active") == ["c", "a", "b"]
    assert names(manager, "sort=-points") == ["b", "a", "c"]
    assert names(manager, "sort=-orders") == ["c", "b", "a"]
    assert names(manager, "sort=-spend") == ["b", "c", "a"]
    assert names(manager, "sort=spend") == ["a", "c", "b"]


# --- bad parameters --------------------------------------------------------------------------


def test_bad_filter_parameters_are_rejected_naming_each_one(db, tags):
    with pytest.raises(ContactFilterError) as caught:
        contact_filters_parse(
            QueryDict(
                "tags_all=abc&tier=99999&stage=asleep&orders_min=5&orders_max=2"
                "&active_since=2026-13-01&sort=height&tag_al=1&inactive_days=0"
            )
        )

    errors = caught.value.errors
    assert set(errors) == {
        "tags_all",
        "tier",
        "stage",
        "active_since",
        "sort",
        "tag_al",
        "inactive_days",
        "orders_min",
    }
    assert "abc" in errors["tags_all"][0]
    assert "99999" in errors["tier"][0]
    assert "tag_al" in errors["tag_al"][0]


def test_excluding_a_required_tag_is_rejected(db, tags):
    simple = tags["简约"]
    with pytest.raises(ContactFilterError) as caught:
        contact_filters_parse(QueryDict(f"tags_all={simple.pk}&tags_none={simple.pk}"))
    assert list(caught.value.errors) == ["tags_none"]


# --- the page ----------------------------------------------------------------------------------


def log_in(client, user) -> None:
    assert client.login(username=user.username, password=PASSWORD)


def match_count(page: str) -> str:
    """The total shown above the list."""
    match = re.search(r'id="match-count">\D*([\d,]+)', page)
    assert match, "no total on the page"
    return match.group(1)


def test_the_list_page_shows_the_total_and_fifty_customers_a_page(client, manager, tags):
    staff = StaffFactory(name="小王")
    vip = MemberTier.objects.create(name="VIP1", level=1)
    for n in range(120):
        contact = ContactFactory(name=f"客户{n:03d}", tier=vip)
        follow(contact, staff)
        if n % 2 == 0:
            tag(contact, tags["简约"])
    log_in(client, manager)

    first = client.get("/contacts/", {"sort": "name"}).content.decode()
    third = client.get("/contacts/", {"sort": "name", "page": 3}).content.decode()
    tagged = client.get(f"/contacts/?tags_all={tags['简约'].pk}&sort=name").content.decode()

    assert match_count(first) == "120"
    assert first.count('name="ids"') == 50
    assert "客户000" in first and "客户049" in first and "客户050" not in first
    assert third.count('name="ids"') == 20
    assert "客户119" in third
    assert match_count(tagged) == "60"
    assert "客户001" not in tagged
    assert "小王" in first and "VIP1" in first
    # Three tag filters and the bulk form offer every tag.
    assert first.count(f'<option value="{tags["简约"].pk}">简约</option>') == 4


def test_the_group_filter_offers_every_live_group_and_keeps_the_chosen_one(client, manager):
    named = GroupFactory(name="宝妈<交流>群")
    unnamed = GroupFactory(name="")
    GroupFactory(name="已解散群", dismissed_at=NOW)
    log_in(client, manager)

    page = client.get("/contacts/", {"group": named.pk}).content.decode()
    select = re.search(r'<select name="group"[^>]*>(.*?)</select>', page, re.S)

    assert select, "no group filter on the page"
    options = re.findall(r'<option value="(\d*)"( selected)?>([^<]*)</option>', select.group(1))
    # By name, a group without one (shown by its chat id) first.
    assert options == [
        ("", "", "不限"),
        (str(unnamed.pk), "", unnamed.chat_id),
        (str(named.pk), " selected", "宝妈&lt;交流&gt;群"),
    ]


def test_the_list_page_shows_form_errors_for_bad_filters(client, manager):
    log_in(client, manager)

    response = client.get("/contacts/", {"orders_min": "many", "tier": "4040"})

    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="id_orders_min_error"' in page
    assert 'id="id_tier_error"' in page
    assert "4040" in page
    assert 'name="ids"' not in page


def _customers_with_everything(count: int, tags) -> None:
    """Customers whose rows show a tier, channel, two followers, four tags and an order."""
    staff, other = StaffFactory(), StaffFactory()
    vip = MemberTier.objects.create(name=f"VIP{count}", level=count)
    channel = ChannelCode.objects.create(name=f"渠道{count}", state=f"c{count}")
    for n in range(count):
        contact = ContactFactory(tier=vip, source_channel=channel, last_active_at=timezone.now())
        follow(contact, staff)
        follow(contact, other)
        tag(contact, *tags.values())
        order(contact, 1_000 + n, timezone.now() - timedelta(days=1))


def _page_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/contacts/")
    assert response.status_code == 200
    return len(queries)


def test_the_list_page_runs_a_fixed_small_number_of_queries(
    client, manager, tags, django_assert_max_num_queries
):
    log_in(client, manager)
    _customers_with_everything(5, tags)
    for_five = _page_queries(client)
    _customers_with_everything(50, tags)

    with django_assert_max_num_queries(18):
        page = client.get("/contacts/").content.decode()

    assert page.count('name="ids"') == 50
    assert _page_queries(client) == for_five


def test_page_numbers_keep_the_filters(client, manager, tags):
    for n in range(60):
        tag(ContactFactory(name=f"c{n:02d}"), tags["复古"])
    log_in(client, manager)

    page = client.get("/contacts/", {"tags_any": tags["复古"].pk, "sort": "name"})

    next_link = re.search(r'href="\?([^"]*)" rel="next"', page.content.decode()).group(1)
    assert f"tags_any={tags['复古'].pk}" in next_link
    assert "page=2" in next_link
