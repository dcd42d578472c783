"""Logging in and the workbench: who gets in, what the counts say, in which language."""

import html
import re
import stat
from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.events import record
from analytics.models import EventType
from analytics.templatetags.money import yuan
from campaigns.models import Order
from contacts.models import Follow
from groups.models import GroupMembership
from scrm.management.commands.rundemo import demo_logins_ensure, demo_password
from scrm.models import Role, User
from tests.factories import ContactFactory, GroupFactory, StaffFactory

PASSWORD = "plum-blossom-2026"


def make_user(username: str, role: str, **fields) -> User:
    return User.objects.create_user(username, password=PASSWORD, role=role, **fields)


@pytest.fixture
def operator(db) -> User:
    return make_user("xiaowang", Role.OPERATOR, first_name="小王")


@pytest.fixture
def analyst(db) -> User:
    return make_user("laoli", Role.ANALYST)


def log_in(client, user: User, password: str = PASSWORD):
    return client.post("/login/", {"username": user.username, "password": password}, follow=True)


def stat_value(page: str, label: str) -> str:
    """The number shown under a headline label on the workbench."""
    match = re.search(rf"<dt>{re.escape(label)}</dt>\s*<dd class=\"stat-value\">([^<]*)</dd>", page)
    assert match, f"no figure labelled {label!r} on the page"
    return html.unescape(match.group(1))


def test_anonymous_user_is_sent_to_login(client, db):
    response = client.get("/")

    assert response.status_code == 302
    assert response.url == "/login/?next=/"
    login_page = client.get(response.url).content.decode()
    assert '<label for="id_username">用户名</label>' in login_page
    assert '<label for="id_password">密码</label>' in login_page


def test_a_user_logs_in_with_the_form_and_sees_the_workbench_with_name_and_role(client, operator):
    response = log_in(client, operator)

    assert response.redirect_chain == [("/", 302)]
    page = response.content.decode()
    assert "<h1>工作台</h1>" in page
    assert "小王" in page
    assert "运营" in page
    assert "退出登录" in page


def test_a_wrong_password_shows_the_error_above_the_form_and_stays_on_login(client, operator):
    response = log_in(client, operator, password="not-the-password")

    assert response.redirect_chain == []
    page = response.content.decode()
    assert "请输入一个正确的" in page
    assert "工作台</h1>" not in page
    assert client.get("/").status_code == 302


def test_workbench_counts_match_the_customers_groups_events_and_orders(client, operator):
    now = timezone.now()
    staff = StaffFactory()
    new_today = ContactFactory(first_added_at=now)
    new_this_week = ContactFactory(first_added_at=now - timedelta(days=3))
    older = ContactFactory(first_added_at=now - timedelta(days=20))
    Follow.objects.create(contact=new_today, staff=staff, added_at=now)
    Follow.objects.create(contact=new_this_week, staff=staff, added_at=now)
    Follow.objects.create(
        contact=older, staff=staff, added_at=now, deleted_by_contact_at=now - timedelta(days=1)
    )
    benefit, flash = GroupFactory(owner=staff), GroupFactory(owner=staff)
    GroupFactory(owner=staff, dismissed_at=now - timedelta(days=2))
    week_ago = now - timedelta(days=7)
    # In two groups, counted once; one still in; one who left; the owner is no customer.
    GroupMembership.objects.create(group=benefit, contact=new_today, joined_at=week_ago)
    GroupMembership.objects.create(group=flash, contact=new_today, joined_at=week_ago)
    GroupMembership.objects.create(group=benefit, contact=new_this_week, joined_at=week_ago)
    GroupMembership.objects.create(
        group=flash, contact=older, joined_at=week_ago, left_at=now - timedelta(days=1)
    )
    GroupMembership.objects.create(group=benefit, staff=staff, joined_at=week_ago)
    for days_ago, number in [(0, 1), (2, 2), (10, 3)]:
        record(
            type=EventType.MESSAGE,
            occurred_at=now - timedelta(days=days_ago),
            key=f"test-message-{number}",
            contact=new_today,
            group=benefit,
        )
    for number, fen, days_ago, status in [
        ("A1", 123_456, 2, Order.Status.PAID),
        ("A2", 100, 10, Order.Status.PAID),
        ("A3", 5_000, 0, Order.Status.REFUNDED),
        ("A4", 999_900, 40, Order.Status.PAID),
    ]:
        Order.objects.create(
            order_no=number,
            contact=new_today,
            amount_fen=fen,
            status=status,
            ordered_at=now - timedelta(days=days_ago),
        )

    log_in(client, operator)
    page = client.get("/").content.decode()

    assert stat_value(page, "客户") == "3"
    assert stat_value(page, "近 7 天新增客户") == "2"
    assert stat_value(page, "有效跟进关系") == "2"
    assert stat_value(page, "社群") == "2"
    assert stat_value(page, "在群客户") == "2"
    assert stat_value(page, "近 7 天事件") == "2"
    assert stat_value(page, "近 30 天支付订单") == "2"
    assert stat_value(page, "近 30 天成交额") == "¥1,235.56"
    today = timezone.localdate()
    assert f"{today - timedelta(days=6):%Y-%m-%d} – {today:%Y-%m-%d}" in page
    assert "暂无数据" not in page


@pytest.mark.parametrize(
    ("fen", "shown"),
    [
        (0, "¥0.00"),
        (5, "¥0.05"),
        (100, "¥1.00"),
        (123_456_789, "¥1,234,567.89"),
        (-250, "-¥2.50"),
        (None, "—"),
    ],
)
def test_amounts_in_fen_show_as_yuan_with_two_decimals(fen, shown):
    assert yuan(fen) == shown


def test_an_empty_workbench_says_there_is_no_data_and_how_to_load_the_demo(client, operator):
    log_in(client, operator)
    page = client.get("/").content.decode()

    assert "暂无数据" in page
    assert "<code>make demo</code>" in page
    assert stat_value(page, "近 30 天成交额") == "¥0.00"


def test_the_page_is_chinese_by_default_and_english_after_switching_language(client, operator):
    log_in(client, operator)
    assert '<html lang="zh-hans">' in client.get("/").content.decode()
    # Chinese first, even for a browser that asks for English.
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()
    assert '<html lang="zh-hans">' in page

    response = client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    page = client.get(response.url).content.decode()

    assert response.status_code == 302
    assert '<html lang="en">' in page
    assert "<h1>Workbench</h1>" in page
    assert "Operator" in page
    assert "工作台" not in page


def test_an_analyst_can_read_the_workbench_but_cannot_post_to_it(client, analyst, operator):
    log_in(client, analyst)
    assert client.get("/").status_code == 200
    assert client.post("/").status_code == 403

    client.post("/logout/")
    log_in(client, operator)
    # An operator may write; the workbench itself just has nothing to post to.
    assert client.post("/").status_code == 405


def test_logging_out_ends_the_session(client, operator):
    log_in(client, operator)

    response = client.post("/logout/")

    assert response.status_code == 302
    assert response.url == "/login/"
    assert client.get("/").status_code == 302


def test_the_demo_logins_share_one_kept_password_and_a_changed_one_stays(client, db, tmp_path):
    staff = StaffFactory(userid="demo-staff-01")

    password = demo_password(data_dir=tmp_path)
    first = demo_logins_ensure(password=password)
    operator = User.objects.get(username="operator")
    operator.set_password("my-own-password")
    operator.save()
    again = demo_password(data_dir=tmp_path)
    second = demo_logins_ensure(password=again)

    assert [(user.username, user.role, created) for user, created in first] == [
        ("manager", Role.ADMIN, True),
        ("operator", Role.OPERATOR, True),
        ("analyst", Role.ANALYST, True),
    ]
    assert [created for _, created in second] == [False, False, False]
    assert again == password
    assert stat.S_IMODE((tmp_path / "demo-password").stat().st_mode) == 0o600
    staff.refresh_from_db()
    assert staff.user == operator
    assert log_in(client, User(username="analyst"), password).redirect_chain == [("/", 302)]
    client.post("/logout/")
    assert log_in(client, operator, "my-own-password").redirect_chain == [("/", 302)]
