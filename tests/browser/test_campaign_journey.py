"""The campaign journey in a real browser: a manager creates an invite task (任务宝) through
the 活动 pages, schedules it, sees it running once its start comes, and opens a participant's
landing page as the customer would, on a phone. Each step saves a screenshot
(.data/screenshots/)."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone, translation

from analytics.models import Event, EventType
from campaigns import services
from campaigns.models import Campaign
from scrm.models import Role
from sop.conduct import SHANGHAI
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db(transaction=True)
RULES = {
    "invites_needed": 2,
    "window_hours": 24,
    "reward": {"points": 10},
    "contact_link": "https://work.weixin.qq.com/ca/cawcde-browser-test",
}


def state_label(state: Campaign.State) -> str:
    """What the pages show for a campaign state: the product's own Chinese label."""
    with translation.override("zh-hans"):
        return str(state.label)


def test_a_manager_creates_an_invite_task_and_a_customer_opens_it_on_a_phone(
    page, phone, screenshot, log_in, make_user
):
    starts = timezone.now().astimezone(SHANGHAI).replace(second=0, microsecond=0)
    ends = starts + timedelta(days=7)

    log_in(make_user("jingli", Role.ADMIN))
    page.click("nav a[href='/campaigns/']")
    page.click("a[href='/campaigns/new/']")
    page.fill("input[name=name]", "邀请 2 位好友得 10 积分")
    page.select_option("select[name=type]", Campaign.Type.INVITE_TASK)
    page.fill("input[name=starts_at]", starts.strftime("%Y-%m-%dT%H:%M"))
    page.fill("input[name=ends_at]", ends.strftime("%Y-%m-%dT%H:%M"))
    page.fill("textarea[name=rules]", json.dumps(RULES))
    screenshot("form")
    page.click("form.form button[type=submit]")
    page.wait_for_url("**/campaigns/*/")

    campaign = Campaign.objects.get()
    assert campaign.type == Campaign.Type.INVITE_TASK and campaign.rules == RULES
    assert campaign.starts_at == starts and campaign.ends_at == ends
    assert page.locator(".page-header .badge").get_attribute("data-state") == "draft"

    page.click("form:has(input[name=to][value=scheduled]) button")
    page.wait_for_url(f"**/campaigns/{campaign.pk}/")
    assert page.locator(".page-header .badge").get_attribute("data-state") == "scheduled"

    # Beat's minute: the start has come, so the campaign runs.
    assert services.campaigns_tick() == (1, 0)
    page.click("a[href='/campaigns/']")
    row = page.locator(f"tr[data-campaign='{campaign.pk}']")
    assert row.locator("td").nth(0).inner_text() == "邀请 2 位好友得 10 积分"
    assert row.locator("td").nth(2).inner_text() == state_label(Campaign.State.RUNNING)
    screenshot("list")

    # A customer takes part; the operator shows their link from the campaign page.
    customer = ContactFactory(name="王小花")
    campaign.refresh_from_db()
    services.participate(campaign, customer)
    row.locator("a").click()
    page.fill("input[name=customer]", str(customer.pk))
    page.click("section:has(#landing-title) button[type=submit]")
    link = page.locator("a[data-landing-url]").get_attribute("href")
    assert "/c/" in link
    screenshot("detail")

    phone.goto(link)
    assert phone.locator("h1").inner_text() == "邀请 2 位好友得 10 积分"
    progress = phone.locator("[data-progress]")
    assert (progress.get_attribute("data-progress"), progress.get_attribute("data-needed")) == (
        "0",
        "2",
    )
    share = phone.locator("a[data-share-link]").get_attribute("href")
    assert share.startswith(RULES["contact_link"])
    assert phone.locator("#share svg").is_visible()  # the QR code a friend scans
    # The customer opening their link counts as reached, once.
    assert Event.objects.filter(
        type=EventType.CAMPAIGN_REACHED, campaign=campaign, contact=customer
    ).exists()
    screenshot("landing-phone", of=phone)
