"""Reading the dashboard in a real browser (Chromium via Playwright): with JavaScript off, on
a laptop screen without sideways scrolling, dates as dates in the Chinese browser, and a
note while a slow range is calculated. Each test saves a screenshot (.data/screenshots/)."""

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from analytics.rollups import rollup_recent
from campaigns.models import Campaign
from contacts.models import ContactTag, Follow, Tag, TagGroup
from groups.models import GroupMembership
from scrm.models import Role
from sop.models import ContentItem, Plan, Step
from tests.factories import ContactFactory, GroupFactory, StaffFactory

pytestmark = pytest.mark.django_db(transaction=True)
SH = ZoneInfo("Asia/Shanghai")
ISO_DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
ENGLISH_MONTH = re.compile(r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)[a-z]*\.?\s+\d")


@pytest.fixture
def manager(make_user):
    return make_user("jingli", Role.ADMIN)


@pytest.fixture
def shop():
    """A group of three customers who joined in the last days (each followed by its owner and
    tagged), a plan with a step, a campaign, and the rollups refreshed."""
    owner = StaffFactory(name="小王")
    group = GroupFactory(name="宝妈交流群", owner=owner)
    interests = TagGroup.objects.create(name="兴趣")
    coffee = Tag.objects.create(group=interests, name="咖啡")
    yesterday = timezone.now().astimezone(SH) - timedelta(days=1)
    for n, name in enumerate(["王小花", "李美美", "张三丰"]):
        person = ContactFactory(name=name, first_added_at=yesterday - timedelta(days=n + 2))
        Follow.objects.create(contact=person, staff=owner, added_at=person.first_added_at)
        ContactTag.objects.create(contact=person, tag=coffee)
        GroupMembership.objects.create(
            group=group, contact=person, joined_at=yesterday - timedelta(days=n + 2)
        )
    content = ContentItem.objects.create(
        title="早安", purpose=ContentItem.Purpose.ACTIVATION, text="早安，今天也要好好喝咖啡"
    )
    plan = Plan.objects.create(name="新人七天", kind=Plan.Kind.GROUP, staff=owner)
    Step.objects.create(plan=plan, content=content, position=1)
    now = timezone.now()
    Campaign.objects.create(
        name="双十一拉新",
        type=Campaign.Type.INVITE_TASK,
        state=Campaign.State.DRAFT,
        starts_at=now,
        ends_at=now + timedelta(days=7),
        staff=owner,
    )
    rollup_recent()
    return group


@pytest.fixture
def no_script(chromium, live_server):
    """A browser with JavaScript switched off, otherwise like `page`."""
    context = chromium.new_context(
        java_script_enabled=False,
        viewport={"width": 1366, "height": 800},
        locale="zh-CN",
        base_url=live_server.url,
    )
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def cells(table) -> list[list[str]]:
    return [
        [cell.inner_text().strip() for cell in row.locator("th, td").all()]
        for row in table.locator("tbody tr").all()
    ]


def test_without_javascript_the_pages_read_and_the_links_and_forms_work(
    no_script, screenshot, log_in, manager, shop
):
    log_in(manager, on=no_script)
    page = no_script

    # Workbench: the headline counts are in the HTML.
    assert page.locator("h1").inner_text() == "工作台"
    customers = page.locator("#customers-title + .stats .stat").first
    assert customers.locator("dd.stat-value").inner_text() == "3"

    # The customer list, through the top navigation.
    page.click("nav a[href='/contacts/']")
    page.wait_for_url("**/contacts/")
    names = page.locator("table.data-table tbody td:nth-child(2) > a").all_inner_texts()
    assert sorted(names) == sorted(["王小花", "李美美", "张三丰"])

    # A group page, from the group list.
    page.click("nav a[href='/groups/']")
    page.wait_for_url("**/groups/")
    page.click(f"a[href='{reverse('groups:detail', args=[shop.pk])}']")
    page.wait_for_url(f"**{reverse('groups:detail', args=[shop.pk])}")
    assert "宝妈交流群" in page.locator("h1").inner_text()

    # The analytics overview: the numbers are in the table, the (undrawn) chart takes no room.
    page.click("nav a[href='/analytics/']")
    page.wait_for_url("**/analytics/")
    metrics = cells(page.locator("table[data-table=metrics]"))
    assert metrics[1] == ["期末成员数", "3"]
    for chart in page.locator(".chart").all():
        assert not chart.is_visible()
    # The range form is a plain GET form: it works without script.
    first = page.locator("input[name=first]").input_value()
    page.click("form.analytics-range button[type=submit]")
    page.wait_for_url(f"**/analytics/?first={first}*")
    assert page.locator("[data-busy-note]").inner_text() == ""  # only script fills it
    screenshot("overview", of=page)

    # The cohort page: each cohort's row with its people, the row headed by its date.
    page.click("nav.subnav a[href='/analytics/cohorts/']")
    page.wait_for_url("**/analytics/cohorts/")
    cohorts = page.locator("table[data-table=cohorts]")
    rows = cells(cohorts)
    assert sum(int(row[1]) for row in rows) == 3
    assert all(ISO_DATE.fullmatch(row[0]) for row in rows)
    assert cohorts.locator("tbody tr th[scope=row]").count() == len(rows)
    assert cohorts.locator("caption").count() == 1
    screenshot("cohorts", of=page)


def test_on_a_laptop_screen_the_main_pages_do_not_scroll_sideways(
    page, screenshot, log_in, manager, shop
):
    page.set_viewport_size({"width": 1280, "height": 720})
    log_in(manager)
    pages = {
        "workbench": reverse("dashboard"),
        "contacts": reverse("contacts:list"),
        "groups": reverse("groups:list"),
        "group": reverse("groups:detail", args=[shop.pk]),
        "sop": reverse("sop:plans"),
        "campaigns": reverse("campaign_admin:list"),
        "analytics": reverse("analytics:overview"),
        "comparison": reverse("analytics:groups"),
        "settings": reverse("settings"),
    }
    too_wide = {}
    for name, url in pages.items():
        page.goto(url)
        page.wait_for_load_state("load")
        scroll, client = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        if scroll > client:
            too_wide[name] = (scroll, client)
        screenshot(name)
    assert too_wide == {}


def test_the_date_range_shows_dates_as_dates_in_the_chinese_browser(
    page, screenshot, log_in, manager, shop
):
    log_in(manager)
    page.goto(reverse("analytics:overview"))

    first = page.locator("input[name=first]")
    assert first.get_attribute("type") == "date"
    assert ISO_DATE.fullmatch(first.input_value())
    assert ISO_DATE.fullmatch(page.locator("input[name=last]").input_value())
    screenshot("date-input", of=page.locator("form.analytics-range"))

    text = page.locator("main").inner_text()
    assert f"{first.input_value()}" in text  # "从 2026-10-25 到 …": the range, as ISO dates
    assert ISO_DATE.search(page.locator("table[data-table=daily] tbody th").first.inner_text())
    assert not ENGLISH_MONTH.search(text), ENGLISH_MONTH.search(text)


def test_a_slow_range_shows_a_calculating_note_until_the_numbers_arrive(
    page, screenshot, log_in, manager, shop
):
    log_in(manager)
    page.goto(reverse("analytics:overview"))
    form = page.locator("form.analytics-range")
    note = page.locator("p.busy-note[role=status]")
    region = page.locator("#analytics-report")
    show = form.locator("button[type=submit]")
    expect(note).to_be_hidden()
    expect(region).not_to_have_attribute("aria-busy", "true")

    # The new range's answer is kept back in the browser's network layer: "204 No Content"
    # leaves the page as it is while a slow answer is awaited. (Chromium runs no script and
    # Playwright takes no screenshot on a page whose navigation is still pending.)
    new_range = re.compile(r"/analytics/\?first=")

    def not_yet(route):
        route.fulfill(status=204)

    page.route(new_range, not_yet)
    week_ago = timezone.now().astimezone(SH).date() - timedelta(days=6)
    page.fill("input[name=first]", week_ago.isoformat())
    show.click()

    expect(note).to_be_visible()
    expect(note).to_have_text(note.get_attribute("data-busy-text"))  # "计算中…"
    assert note.inner_text().strip()
    expect(region).to_have_attribute("aria-busy", "true")
    expect(show).to_be_disabled()
    screenshot("calculating")

    # The answer arrives: the new page has the numbers and no note.
    page.unroute(new_range, not_yet)
    form.evaluate("form => form.requestSubmit()")
    page.wait_for_url(f"**/analytics/?first={week_ago.isoformat()}*")
    expect(page.locator("table[data-table=metrics]")).to_be_visible()
    expect(note).to_be_hidden()
    expect(region).not_to_have_attribute("aria-busy", "true")
    expect(show).to_be_enabled()


def test_sorting_groups_and_filtering_customers_say_they_are_loading(
    page, screenshot, log_in, manager, shop
):
    log_in(manager)
    # As above: "204 No Content" keeps the page as it looks while the answer is awaited.
    page.route(re.compile(r"[?&](sort|tags_all)="), lambda route: route.fulfill(status=204))

    page.goto(reverse("analytics:groups"))
    page.locator("table[data-table=groups] thead a").nth(1).click()
    note = page.locator("p.busy-note[role=status]")
    expect(note).to_have_text(note.get_attribute("data-busy-text"))
    expect(page.locator("#analytics-report")).to_have_attribute("aria-busy", "true")

    page.goto(reverse("contacts:list"))
    page.select_option("select[name=tags_all]", label="咖啡")
    page.click("form.filter-form button[type=submit]")
    note = page.locator("p.busy-note[role=status]")
    expect(note).to_have_text(note.get_attribute("data-busy-text"))  # "加载中…"
    expect(page.locator("#contact-results")).to_have_attribute("aria-busy", "true")
    expect(page.locator("form.filter-form button[type=submit]")).to_be_disabled()
    screenshot("loading")
