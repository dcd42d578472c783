"""The SOP journey in a real browser: a manager makes a group plan with a step from the
content library, previews who gets what when, activates it, and after the planner, the
sender and the staff member's confirmation in (fake) WeCom sees its deliveries on the plan's
pages. Each step of the way saves a screenshot (.data/screenshots/)."""

from datetime import timedelta

import pytest
from django.utils import timezone, translation

from groups.selectors import wecom_world
from scrm.models import Role
from sop import sending
from sop.conduct import SHANGHAI
from sop.models import Delivery, MassMessage, Plan
from sop.planner import plan_due
from tests.factories import GroupFactory, StaffFactory
from tests.sop.builders import make_content

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def any_hour(settings):
    # The journey runs on the wall clock: quiet hours would hold a night-time run's send.
    settings.SOP_QUIET_HOURS = ""


def status_label(status: Delivery.Status) -> str:
    """What the page shows for a delivery status: the product's own Chinese label."""
    with translation.override("zh-hans"):
        return str(status.label)


def shown_statuses(page) -> list[str]:
    return page.locator("tr[data-delivery] td:nth-child(6)").all_inner_texts()


def test_a_manager_creates_previews_and_activates_a_group_sop_and_sees_it_delivered(
    page, screenshot, log_in, make_user, fake_wecom
):
    zhang = StaffFactory(userid="zhang", name="张姐")
    group = GroupFactory(name="宝妈福利群", owner=zhang)
    GroupFactory(name="别的群", owner=zhang)  # not picked: gets nothing
    content = make_content(title="早安打卡", text="早上好，今天记得打卡")
    fake_wecom.load_world(wecom_world())
    # The step goes out a few minutes from now (Shanghai time, whole minute): after the
    # plan is activated below, and soon enough to plan by moving the planner's clock on.
    send_at = (
        (timezone.now() + timedelta(minutes=3))
        .astimezone(SHANGHAI)
        .replace(second=0, microsecond=0)
    )

    log_in(make_user("jingli", Role.ADMIN))
    page.click("nav a[href='/sop/']")
    page.click("a[href='/sop/plans/new/?kind=group']")
    page.fill("input[name=name]", "福利群早安")
    page.select_option("select[name=groups]", str(group.pk))
    page.click("form.form button[type=submit]")
    page.wait_for_url("**/sop/plans/*/")
    plan = Plan.objects.get(name="福利群早安")
    assert plan.kind == Plan.Kind.GROUP and plan.status == Plan.Status.DRAFT

    page.click(f"a[href='/sop/plans/{plan.pk}/steps/new/']")
    page.select_option("select[name=content]", str(content.pk))
    page.fill("input[name=at_time]", send_at.strftime("%H:%M"))
    page.click("form.form button[type=submit]")
    page.wait_for_url(f"**/sop/plans/{plan.pk}/")
    assert page.locator("tr[data-step]").count() == 1
    assert "早安打卡" in page.locator("tr[data-step]").inner_text()

    # The preview: the picked group, every day of the coming week at the step's time.
    page.click(f"a[href='/sop/plans/{plan.pk}/preview/']")
    page.wait_for_url(f"**/sop/plans/{plan.pk}/preview/")
    rows = page.locator("table").last.locator("tbody tr")  # the messages, after the days
    previewed = [row.locator("td").all_inner_texts() for row in rows.all()]
    assert previewed, "the preview lists no messages"
    assert previewed[0][0] == send_at.strftime("%Y-%m-%d %H:%M")
    assert {row[2] for row in previewed} == {"早安打卡"}
    assert {row[3] for row in previewed} == {"宝妈福利群"}
    screenshot("preview")

    page.click(f"a[href='/sop/plans/{plan.pk}/']")
    page.click(f"form[action='/sop/plans/{plan.pk}/activate/'] button")
    page.wait_for_url(f"**/sop/plans/{plan.pk}/")
    plan.refresh_from_db()
    assert plan.status == Plan.Status.ACTIVE
    assert page.locator(f"form[action='/sop/plans/{plan.pk}/pause/']").is_visible()
    screenshot("active")

    # Beat's minute: plan the slot, batch it into a mass message, send it to WeCom.
    later = send_at + timedelta(minutes=1)
    assert plan_due(now=later).planned == 1
    [message_id] = sending.dispatch_due(now=later)
    assert sending.message_send(message_id) == "sent"

    page.click(f"a[href='/sop/plans/{plan.pk}/deliveries/']")
    page.wait_for_url(f"**/sop/plans/{plan.pk}/deliveries/")
    row = page.locator("tr[data-delivery]")
    assert row.count() == 1
    assert row.locator("td").all_inner_texts()[3:5] == ["宝妈福利群", "张姐"]
    assert shown_statuses(page) == [status_label(Delivery.Status.SENT)]
    screenshot("sent")

    # 张姐 taps send in WeCom; the follow-up reads her confirmation and the receipts.
    message = MassMessage.objects.get(pk=message_id)
    fake_wecom.confirm_mass_message(message.msgid, "zhang")
    assert sending.message_follow_up(message_id) == "finished"

    page.reload()
    assert shown_statuses(page) == [status_label(Delivery.Status.DELIVERED)]
    assert Delivery.objects.get(plan=plan).group == group
    screenshot("delivered")
