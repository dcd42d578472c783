"""The operator's main journeys in a real browser (Chromium via Playwright): what they see,
click and download, Chinese first. Each journey saves a screenshot (.data/screenshots/)."""

import csv
import io
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from analytics.rollups import rollup_recent
from groups.models import GroupMembership
from scrm.models import Role
from tests.factories import ContactFactory, GroupFactory, StaffFactory

pytestmark = pytest.mark.django_db(transaction=True)
SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def manager(make_user):
    return make_user("jingli", Role.ADMIN)


@pytest.fixture
def members():
    """A group with three members who joined in the last days, and the rollups refreshed."""
    group = GroupFactory(name="宝妈交流群", owner=StaffFactory())
    yesterday = timezone.now().astimezone(SH) - timedelta(days=1)
    for n, person in enumerate(ContactFactory.create_batch(3)):
        GroupMembership.objects.create(
            group=group, contact=person, joined_at=yesterday - timedelta(days=n + 2)
        )
    rollup_recent()
    return group


def test_read_the_overview_and_download_its_table(page, screenshot, log_in, manager, members):
    log_in(manager)
    page.click("nav a[href='/analytics/']")
    page.wait_for_url("**/analytics/")
    heading = page.locator("h1").first.inner_text()
    assert heading == "概览"

    table = page.locator("table[data-table=metrics]")
    shown = [
        [cell.inner_text().strip() for cell in row.locator("th, td").all()]
        for row in table.locator("tbody tr").all()
    ]
    assert shown[1] == ["期末成员数", "3"]
    screenshot("overview")

    with page.expect_download() as download:
        page.locator("section[aria-labelledby=table-metrics] a[href*='format=csv']").click()
    text = open(download.value.path(), encoding="utf-8-sig").read()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1:] == shown


def test_switch_the_language_to_english_and_back(page, screenshot, log_in, manager):
    log_in(manager)
    assert page.locator("nav a[href='/analytics/']").inner_text() == "数据"
    page.click("form.language-switch button[value=en]")
    page.wait_for_load_state()
    assert page.locator("nav a[href='/analytics/']").inner_text() == "Analytics"
    assert page.locator("html").get_attribute("lang") == "en"
    screenshot("english")
    page.click("form.language-switch button[value=zh-hans]")
    page.wait_for_load_state()
    assert page.locator("nav a[href='/analytics/']").inner_text() == "数据"
