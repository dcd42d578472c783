"""The operator's customer journeys in a real browser: find customers by three tags and tag
them (here and in WeCom), and open one customer's 360 page from the list. Each journey saves
a screenshot (.data/screenshots/)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.events import record
from analytics.models import EventType
from contacts.models import Contact, ContactTag, Follow, MemberTier, Tag, TagGroup
from contacts.points import points_award
from groups.models import GroupMembership
from groups.selectors import wecom_world
from scrm.models import Role
from tests.factories import ContactFactory, GroupFactory, StaffFactory

pytestmark = pytest.mark.django_db(transaction=True)


def follow(contact: Contact, staff, *, days_ago: int = 30) -> Contact:
    Follow.objects.create(
        contact=contact, staff=staff, added_at=timezone.now() - timedelta(days=days_ago)
    )
    return contact


def tagged(contact: Contact, *tags: Tag) -> Contact:
    ContactTag.objects.bulk_create(ContactTag(contact=contact, tag=tag) for tag in tags)
    return contact


def tags_in_wecom(fake_wecom) -> dict[str, set[str]]:
    """WeCom's tags of each customer, as every staff member following them marked them."""
    return {
        c["external_userid"]: {t for f in c["follow_users"] for t in f["tags"]}
        for c in fake_wecom.world_snapshot()["contacts"]
    }


def test_an_operator_finds_customers_by_three_tags_and_tags_them(
    page, screenshot, log_in, make_user, fake_wecom
):
    """GIVEN an operator's customers, two of them carrying all of 宝妈, 护肤 and 高消费
    WHEN the operator filters 客户 by those three tags (all of) and tags the result 618重点
    THEN exactly those two are listed, and then carry the tag here, on the page and in WeCom."""
    operator = make_user("xiaowang", Role.OPERATOR)
    wang = StaffFactory(userid="wang", name="小王", user=operator)
    zhang = StaffFactory(userid="zhang", name="张姐")
    interests = TagGroup.objects.create(name="人群", wecom_group_id="etGROUP-people")
    mum, skincare, big_spender, focus = (
        Tag.objects.create(group=interests, name=name, order=n, wecom_tag_id=f"etTAG-{n}")
        for n, name in enumerate(["宝妈", "护肤", "高消费", "618重点"])
    )
    three = (mum, skincare, big_spender)
    wanted = [
        tagged(follow(ContactFactory(name=name), wang), *three) for name in ("王小花", "李美美")
    ]
    tagged(follow(ContactFactory(name="只有两个"), wang), mum, skincare)
    follow(ContactFactory(name="没有标签"), wang)
    # All three tags, but 张姐's customer: the operator must not see or tag her.
    someone_elses = tagged(follow(ContactFactory(name="别人的客户"), zhang), *three)
    fake_wecom.load_world(wecom_world())

    log_in(operator)
    page.click("nav a[href='/contacts/']")
    page.wait_for_url("**/contacts/")
    page.select_option("select[name=tags_all]", [str(tag.pk) for tag in three])
    page.click("form.filter-form button[type=submit]")
    page.wait_for_url("**/contacts/?*tags_all=*")

    listed = page.locator("tbody input[name=ids]")
    assert sorted(int(box.get_attribute("value")) for box in listed.all()) == sorted(
        c.pk for c in wanted
    )
    assert sorted(page.locator("tbody td:nth-child(2) > a").all_inner_texts()) == sorted(
        c.name for c in wanted
    )
    screenshot("filtered")

    page.check("input[name=scope][value=all]")
    page.select_option("select[name=action]", "tag")
    page.select_option("select[name=tags]", str(focus.pk))
    page.click("#bulk-form button[type=submit]")
    page.wait_for_url("**/contacts/bulk/")

    assert page.locator("#bulk-requested").inner_text() == "2"
    assert page.locator("#bulk-done").inner_text() == "2"
    assert page.locator("#bulk-failed").inner_text() == "0"
    assert set(ContactTag.objects.filter(tag=focus).values_list("contact_id", flat=True)) == {
        c.pk for c in wanted
    }
    in_wecom = tags_in_wecom(fake_wecom)
    for customer in wanted:
        assert focus.wecom_tag_id in in_wecom[customer.external_userid]
    assert focus.wecom_tag_id not in in_wecom[someone_elses.external_userid]
    screenshot("tagged")

    page.click("a[href^='/contacts/?']")  # back to the customers, same filters
    for row in page.locator("tbody tr").all():
        assert "618重点" in row.locator("td:nth-child(3)").inner_text()
    screenshot("list-after")


@pytest.fixture
def customer():
    """A customer with something in every part of the 360 page."""
    now = timezone.now()
    staff = StaffFactory(name="小王")
    gold = MemberTier.objects.create(name="金卡会员", level=2, rights=["会员日 9 折"])
    contact = follow(
        ContactFactory(
            name="王小花",
            external_userid="wm-flower",
            tier=gold,
            stage=Contact.Stage.REPEAT,
            first_added_at=now - timedelta(days=40),
            last_active_at=now - timedelta(days=1),
        ),
        staff,
        days_ago=40,
    )
    style = TagGroup.objects.create(name="风格偏好")
    tagged(contact, Tag.objects.create(group=style, name="简约风"))
    points_award(contact, points=130, key="browser-360-points", occurred_at=now - timedelta(days=3))
    group = GroupFactory(name="宝妈福利群", owner=staff)
    GroupMembership.objects.create(group=group, contact=contact, joined_at=now - timedelta(days=10))
    record(
        type=EventType.GROUP_JOINED,
        occurred_at=now - timedelta(days=10),
        key="browser-360-joined",
        contact=contact,
        group=group,
        payload={"scene": 0},
    )
    record(
        type=EventType.ORDER_PAID,
        occurred_at=now - timedelta(days=5),
        key="browser-360-order",
        contact=contact,
        group=group,
        amount=12_345,
        payload={"order_no": "SO-360-0001"},
    )
    ContactFactory(name="另一位客户")
    return contact


def test_a_manager_opens_a_customers_360_page_from_the_list(
    page, screenshot, log_in, make_user, customer
):
    log_in(make_user("jingli", Role.ADMIN))
    page.click("nav a[href='/contacts/']")
    page.wait_for_url("**/contacts/")

    page.click(f"tbody a[href='/contacts/{customer.pk}/']")
    page.wait_for_url(f"**/contacts/{customer.pk}/")

    def part(title_id: str) -> str:
        return page.locator(f"section:has(#{title_id})").inner_text()

    assert page.locator("#profile-title").inner_text() == "王小花"
    assert "wm-flower" in part("profile-title")
    assert "¥123.45" in part("profile-title")  # one order, in yuan
    assert "风格偏好" in part("tags-title") and "简约风" in part("tags-title")
    assert "金卡会员" in part("tier-title") and "会员日 9 折" in part("tier-title")
    assert page.locator("#points-balance").inner_text() == "130"
    assert "SO-360-0001" in part("orders-title") and "¥123.45" in part("orders-title")
    assert "宝妈福利群" in part("groups-title")
    timeline = page.locator("section:has(#timeline-title) tbody tr")
    assert timeline.count() >= 3  # joined the group, ordered, earned points
    assert "宝妈福利群" in part("timeline-title")
    screenshot("customer-360")
