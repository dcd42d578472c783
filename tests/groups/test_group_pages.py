"""The group pages: list with filters and sorting, the group page with its members, roles,
history, stage numbers, settings and auto-replies, members in several groups, and who may
see and change what."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics.events import record
from analytics.models import EventType
from campaigns.models import Order
from groups import selectors
from groups.models import AutoReply, Group, GroupMembership
from scrm.models import Role, User
from tests.factories import ContactFactory, GroupFactory, StaffFactory


@pytest.fixture
def manager(db) -> User:
    return User.objects.create_user("boss", role=Role.ADMIN)


@pytest.fixture
def operator(db) -> User:
    user = User.objects.create_user("xiaowang", role=Role.OPERATOR)
    StaffFactory(name="小王", user=user)
    return user


@pytest.fixture
def analyst(db) -> User:
    return User.objects.create_user("laoli", role=Role.ANALYST)


def log_in(client, user: User):
    client.force_login(user)
    # English labels: the tests read the msgids, whatever the Chinese translation becomes.
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"


def group_names(page: str) -> list[str]:
    """The group names in the list's table, in order."""
    return re.findall(r'<td><a href="/groups/\d+/">([^<]+)</a>', page)


def figure(page: str, key: str) -> str:
    match = re.search(
        rf'data-figure="{key}">\s*<dt>[^<]*</dt>\s*<dd class="stat-value">([^<]*)</dd>', page
    )
    assert match, f"no figure {key!r} on the page"
    return match.group(1).strip()


def join(group, contact, *, days_ago: float, left_days_ago: float | None = None, **fields):
    now = timezone.now()
    return GroupMembership.objects.create(
        group=group,
        contact=contact,
        joined_at=now - timedelta(days=days_ago),
        left_at=now - timedelta(days=left_days_ago) if left_days_ago is not None else None,
        **fields,
    )


def speak(group, contact, *, messages: int = 1, days_ago: float = 0, key: str):
    record(
        type=EventType.MESSAGE,
        occurred_at=timezone.now() - timedelta(days=days_ago),
        key=key,
        contact=contact,
        group=group,
        amount=messages,
    )


# --- the list ----------------------------------------------------------------------------------


def test_an_empty_group_list_says_there_are_no_groups_yet(client, manager):
    log_in(client, manager)

    page = client.get("/groups/").content.decode()

    assert "No groups yet" in page


def test_the_list_filters_by_type_model_stage_owner_and_dismissal(client, manager):
    alice, bob = StaffFactory(name="Alice"), StaffFactory(name="Bob")
    GroupFactory(name="引流A", owner=alice, type=Group.Type.ACQUISITION, stage="activation")
    GroupFactory(name="福利B", owner=bob, type=Group.Type.BENEFIT, model=Group.Model.SERVICE)
    GroupFactory(name="快闪C", owner=alice, type=Group.Type.FLASH, dismissed_at=timezone.now())
    log_in(client, manager)

    def names(query: str) -> list[str]:
        return sorted(group_names(client.get(f"/groups/?{query}").content.decode()))

    assert names("") == ["引流A", "福利B"]
    assert names("type=acquisition") == ["引流A"]
    assert names("model=service") == ["福利B"]
    assert names("stage=activation") == ["引流A"]
    assert names(f"owner={alice.pk}") == ["引流A"]
    assert names("dismissed=yes") == ["快闪C"]
    assert names("dismissed=all") == ["引流A", "快闪C", "福利B"]
    assert names("q=福利") == ["福利B"]


def test_the_list_filters_and_sorts_by_size_and_last_weeks_activity(client, manager):
    big, small, quiet = (GroupFactory(name=n) for n in ("大群", "小群", "静群"))
    people = ContactFactory.create_batch(5)
    for person in people:
        join(big, person, days_ago=20)
    join(small, people[0], days_ago=20)
    join(small, people[1], days_ago=20)
    join(quiet, people[2], days_ago=20)
    join(quiet, people[3], days_ago=20, left_days_ago=1)  # gone: not a member now
    speak(small, people[0], messages=30, key="m1")
    speak(small, people[1], messages=5, days_ago=2, key="m2")
    speak(big, people[2], messages=3, key="m3")
    speak(quiet, people[2], messages=99, days_ago=9, key="m4")  # before the 7 days
    log_in(client, manager)

    def names(query: str) -> list[str]:
        return group_names(client.get(f"/groups/?{query}").content.decode())

    assert names("sort=-members") == ["大群", "小群", "静群"]
    assert names("sort=-speakers") == ["小群", "大群", "静群"]
    assert names("sort=-messages") == ["小群", "大群", "静群"]
    assert names("members_min=2&members_max=4&sort=name") == ["小群"]
    assert names("speakers_min=1&sort=name") == ["大群", "小群"]
    assert names("messages_min=10") == ["小群"]
    row = re.search(r"小群</a>.*?</tr>", client.get("/groups/").content.decode(), re.S).group(0)
    assert re.findall(r'<td class="num">(\d+)', row) == ["2", "2", "35"]


def test_a_bad_size_range_is_reported_beside_the_field(client, manager):
    GroupFactory(name="群一")
    log_in(client, manager)

    page = client.get("/groups/?members_min=5&members_max=2").content.decode()

    assert "Must be at least the lower bound." in page
    assert group_names(page) == ["群一"]


def test_the_list_counts_people_across_the_listed_groups_once(client, manager):
    one, two = GroupFactory(name="一群"), GroupFactory(name="二群")
    both, only = ContactFactory(), ContactFactory()
    join(one, both, days_ago=3)
    join(two, both, days_ago=3)
    join(one, only, days_ago=3)
    log_in(client, manager)

    page = client.get("/groups/").content.decode()

    assert re.search(r"People in these groups</dt>\s*<dd class=\"stat-value\">2<", page)
    assert re.search(r"In two or more of them</dt>\s*<dd class=\"stat-value\">1<", page)


def test_the_list_costs_the_same_queries_for_three_groups_or_thirty(client, manager):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/groups/").status_code == 200
        return len(captured)

    log_in(client, manager)
    for _ in range(3):
        group = GroupFactory()
        join(group, ContactFactory(), days_ago=1)
    few = queries()
    for _ in range(27):
        group = GroupFactory()
        join(group, ContactFactory(), days_ago=1)

    assert queries() == few


# --- one group ---------------------------------------------------------------------------------


def test_the_group_page_shows_owner_admins_type_stage_size_and_cap(client, manager):
    owner, admin = StaffFactory(name="群主甲"), StaffFactory(name="管理员乙")
    group = GroupFactory(name="宝妈福利群", owner=owner, stage="founding", member_cap=200)
    group.admins.add(admin)
    for person in ContactFactory.create_batch(3):
        join(group, person, days_ago=1)
    GroupMembership.objects.create(
        group=group, staff=owner, role="owner", joined_at=timezone.now() - timedelta(days=9)
    )
    log_in(client, manager)

    page = client.get(f"/groups/{group.pk}/").content.decode()

    assert "<h1>宝妈福利群" in page
    assert "群主甲" in page and "管理员乙" in page
    assert "Benefit group (福利群)" in page
    assert "Founding (初建期)" in page
    assert "3 customers and 1 staff, cap 200" in page


def test_founding_numbers_count_joins_leaves_and_the_leave_rate(db):
    group = GroupFactory(stage="founding")
    now = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
    start = datetime(2026, 11, 13, 16, 0, tzinfo=UTC)  # 00:00 on 11-14, Shanghai
    stayer, leaver, newcomer, brief = ContactFactory.create_batch(4)
    for person, joined, left in [
        (stayer, start - timedelta(days=30), None),
        (leaver, start - timedelta(days=30), start + timedelta(days=2)),
        (newcomer, start + timedelta(days=1), None),
        (brief, start + timedelta(days=3), start + timedelta(days=4)),
    ]:
        GroupMembership.objects.create(group=group, contact=person, joined_at=joined, left_at=left)

    numbers = selectors.founding_numbers(group=group, now=now)

    assert numbers["first_day"].isoformat() == "2026-11-14"
    assert (numbers["members_at_start"], numbers["joins"], numbers["leaves"]) == (2, 2, 2)
    assert numbers["leave_rate"] == 0.5


def test_a_rate_with_nothing_to_divide_by_shows_a_dash_not_zero(client, manager):
    group = GroupFactory(stage="founding")
    log_in(client, manager)

    page = client.get(f"/groups/{group.pk}/").content.decode()

    assert figure(page, "joins") == "0"
    assert figure(page, "leave_rate") == "—"


def test_activation_numbers_average_daily_speakers_and_messages_per_member(db):
    group = GroupFactory(stage="activation")
    now = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
    long_ago = now - timedelta(days=60)
    a, b = ContactFactory(), ContactFactory()
    GroupMembership.objects.create(group=group, contact=a, joined_at=long_ago)
    GroupMembership.objects.create(group=group, contact=b, joined_at=long_ago)
    # Today both speak (4 + 2 messages); yesterday one speaks once; other days are silent.
    for key, who, at, amount in [
        ("a1", a, now - timedelta(hours=1), 4),
        ("b1", b, now - timedelta(hours=2), 2),
        ("a2", a, now - timedelta(days=1), 1),
    ]:
        record(
            type=EventType.MESSAGE, occurred_at=at, key=key, contact=who, group=group, amount=amount
        )

    numbers = selectors.activation_numbers(group=group, now=now)

    daily = {d["day"].isoformat(): d for d in numbers["daily"]}
    assert (daily["2026-11-20"]["speakers"], daily["2026-11-20"]["messages"]) == (2, 6)
    assert daily["2026-11-20"]["interaction_rate"] == 1.0
    assert daily["2026-11-19"]["interaction_rate"] == 0.5
    assert numbers["speakers_per_day"] == pytest.approx(3 / 7)
    assert numbers["interaction_rate"] == pytest.approx(1.5 / 7)
    assert numbers["messages_per_member"] == pytest.approx((3 + 0.5) / 7)


def test_retention_is_the_share_of_last_weeks_members_still_in(db):
    group = GroupFactory(stage="retention")
    now = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
    long_ago = now - timedelta(days=60)
    stays, goes, comes_back, late = ContactFactory.create_batch(4)
    GroupMembership.objects.create(group=group, contact=stays, joined_at=long_ago)
    GroupMembership.objects.create(
        group=group, contact=goes, joined_at=long_ago, left_at=now - timedelta(days=2)
    )
    GroupMembership.objects.create(
        group=group, contact=comes_back, joined_at=long_ago, left_at=now - timedelta(days=3)
    )
    GroupMembership.objects.create(
        group=group, contact=comes_back, joined_at=now - timedelta(days=1)
    )
    GroupMembership.objects.create(group=group, contact=late, joined_at=now - timedelta(days=1))

    numbers = selectors.retention_numbers(group=group, now=now)

    assert (numbers["members_at_start"], numbers["still_in"]) == (3, 2)
    assert numbers["retention"] == pytest.approx(2 / 3)


def test_monetization_shows_orders_revenue_and_average_order_value(client, manager):
    group = GroupFactory(stage="monetization")
    buyer, other = ContactFactory(), ContactFactory()
    join(group, buyer, days_ago=40)
    join(group, other, days_ago=40)
    now = timezone.now()
    for number, who, fen, days_ago, state, where in [
        ("o1", buyer, 10_000, 1, Order.Status.PAID, group),
        ("o2", buyer, 5_000, 3, Order.Status.PAID, group),
        ("o3", other, 15_001, 5, Order.Status.PAID, group),
        ("o4", other, 99_999, 5, Order.Status.REFUNDED, group),
        ("o5", other, 77_777, 40, Order.Status.PAID, group),  # before the 30 days
        ("o6", other, 66_666, 2, Order.Status.PAID, None),  # not through this group
    ]:
        Order.objects.create(
            order_no=number,
            contact=who,
            amount_fen=fen,
            status=state,
            group=where,
            ordered_at=now - timedelta(days=days_ago),
        )
    log_in(client, manager)

    page = client.get(f"/groups/{group.pk}/").content.decode()

    assert figure(page, "orders") == "3"
    assert figure(page, "revenue_fen") == "¥300.01"
    assert figure(page, "aov_fen") == "¥150.01"  # 30,001 fen ÷ 2 buyers, to the nearest fen
    assert figure(page, "conversion") == "100.0%"


def test_propagation_counts_referrals_by_members(client, manager):
    group = GroupFactory(stage="propagation")
    member, outsider = ContactFactory(), ContactFactory()
    join(group, member, days_ago=40)
    speak(group, member, key="talk")
    for key, who in [("r1", member), ("r2", member), ("r3", outsider)]:
        record(
            type=EventType.REFERRAL,
            occurred_at=timezone.now() - timedelta(days=2),
            key=key,
            contact=who,
        )
    log_in(client, manager)

    page = client.get(f"/groups/{group.pk}/").content.decode()

    assert figure(page, "referrals") == "2"
    assert figure(page, "referrers") == "1"
    assert figure(page, "referral_rate") == "100.0%"


def test_members_show_with_roles_and_a_fourth_admin_is_refused(client, manager):
    owner = StaffFactory(name="群主")
    group = GroupFactory(owner=owner)
    GroupMembership.objects.create(group=group, staff=owner, role="owner", joined_at=timezone.now())
    people = [join(group, ContactFactory(name=f"成员{i}"), days_ago=5 - i) for i in range(5)]
    log_in(client, manager)

    for stay in people[:3]:
        response = client.post(
            f"/groups/{group.pk}/members/{stay.pk}/role/", {f"m{stay.pk}-role": "admin"}
        )
        assert response.status_code == 302
    client.post(
        f"/groups/{group.pk}/members/{people[3].pk}/role/", {f"m{people[3].pk}-role": "koc"}
    )
    refused = client.post(
        f"/groups/{group.pk}/members/{people[4].pk}/role/", {f"m{people[4].pk}-role": "admin"}
    )

    assert refused.status_code == 200
    page = refused.content.decode()
    row = re.search(rf'id="member-{people[4].pk}".*?</tr>', page, re.S).group(0)
    assert "A group has at most 3 admins." in row
    roles = dict(
        GroupMembership.objects.filter(group=group, contact__isnull=False).values_list(
            "contact__name", "role"
        )
    )
    assert roles == {
        "成员0": "admin",
        "成员1": "admin",
        "成员2": "admin",
        "成员3": "koc",
        "成员4": "member",
    }
    listing = client.get(f"/groups/{group.pk}/members/").content.decode()
    order = re.findall(r'<tr id="member-\d+">\s*<td>([^<]+)</td>', listing)
    assert order == ["群主", "成员0", "成员1", "成员2", "成员3", "成员4"]


def test_a_staff_member_made_admin_joins_the_groups_admins(db):
    from groups.services import membership_role_set

    group = GroupFactory()
    helper = StaffFactory()
    stay = GroupMembership.objects.create(group=group, staff=helper, joined_at=timezone.now())

    membership_role_set(stay=stay, role="admin")
    assert list(group.admins.all()) == [helper]
    membership_role_set(stay=stay, role="member")
    assert list(group.admins.all()) == []


def test_history_lists_every_stay_newest_first_with_scenes_in_words(client, manager):
    group = GroupFactory()
    person = ContactFactory(name="回头客")
    join(group, person, days_ago=10, left_days_ago=8, join_scene=3, quit_scene=1)
    join(group, person, days_ago=2, join_scene=1)
    log_in(client, manager)

    page = client.get(f"/groups/{group.pk}/history/").content.decode()

    rows = re.findall(r"<tr>\s*<td>回头客</td>(.*?)</tr>", page, re.S)
    assert len(rows) == 2
    assert "Invitation link" in rows[0] and "Still in the group" in rows[0]
    assert "Scanned QR code" in rows[1] and "Removed by owner or admin" in rows[1]


def test_editing_settings_saves_them_and_says_the_notice_stays_here(client, manager):
    group = GroupFactory()
    log_in(client, manager)

    form = client.get(f"/groups/{group.pk}/edit/").content.decode()
    response = client.post(
        f"/groups/{group.pk}/edit/",
        {
            "type": "flash",
            "model": "service",
            "stage": "retention",
            "member_cap": 300,
            "rules": "不发广告",
            "notice": "周五会员日",
            "welcome_message": "欢迎 {name}",
        },
    )

    assert "WeCom&#x27;s API cannot set a group notice" in form
    assert response.status_code == 302
    group.refresh_from_db()
    assert (group.type, group.model, group.stage, group.member_cap) == (
        "flash",
        "service",
        "retention",
        300,
    )
    assert (group.rules, group.notice, group.welcome_message) == (
        "不发广告",
        "周五会员日",
        "欢迎 {name}",
    )


def test_a_bad_setting_is_shown_beside_its_field_and_nothing_changes(client, manager):
    group = GroupFactory(stage="founding")
    log_in(client, manager)

    response = client.post(
        f"/groups/{group.pk}/edit/",
        {"type": "benefit", "model": "refined", "stage": "golden-age", "member_cap": 500},
    )

    assert response.status_code == 200
    assert re.search(r'id="id_stage_error">\s*<li>Select a valid choice', response.content.decode())
    group.refresh_from_db()
    assert group.stage == "founding"


def test_auto_replies_are_added_changed_and_deleted_and_a_keyword_is_used_once(client, manager):
    group = GroupFactory()
    log_in(client, manager)

    client.post(
        f"/groups/{group.pk}/auto-replies/new/",
        {"keyword": "发货", "reply": "48小时内", "is_active": "on"},
    )
    again = client.post(
        f"/groups/{group.pk}/auto-replies/new/", {"keyword": "发货", "reply": "重复"}
    )
    reply = AutoReply.objects.get(group=group)
    client.post(
        f"/groups/{group.pk}/auto-replies/{reply.pk}/", {"keyword": "物流", "reply": "顺丰"}
    )
    page = client.get(f"/groups/{group.pk}/").content.decode()

    assert re.search(
        r'id="id_keyword_error">\s*<li>This group already has an auto-reply for this keyword',
        again.content.decode(),
    )
    assert "物流" in page and "顺丰" in page
    reply.refresh_from_db()
    assert (reply.keyword, reply.reply, reply.is_active) == ("物流", "顺丰", False)

    client.post(f"/groups/{group.pk}/auto-replies/{reply.pk}/delete/")
    assert not AutoReply.objects.filter(group=group).exists()


# --- members in several groups ------------------------------------------------------------------


def test_members_in_several_groups_lists_who_sits_where(client, operator):
    mine = operator.staff
    first = GroupFactory(name="甲群", owner=mine)
    second = GroupFactory(name="乙群", owner=StaffFactory())
    second.admins.add(mine)
    foreign = GroupFactory(name="丙群")
    twice, once, elsewhere = (ContactFactory(name=n) for n in ("两群客", "一群客", "外群客"))
    join(first, twice, days_ago=3)
    join(second, twice, days_ago=3)
    join(first, once, days_ago=3)
    join(first, elsewhere, days_ago=3)
    join(foreign, elsewhere, days_ago=3)  # not the operator's group: does not count
    log_in(client, operator)

    page = client.get("/groups/overlap/").content.decode()

    rows = re.findall(
        r"<tr>\s*<td>([^<]+)</td>\s*<td class=\"num\">(\d+)</td>(.*?)</tr>", page, re.S
    )
    assert [(name, count) for name, count, _ in rows] == [("两群客", "2")]
    assert re.findall(r">([^<]+)</a>", rows[0][2]) == ["乙群", "甲群"]


# --- who may see and change what --------------------------------------------------------------


def test_an_operator_sees_only_groups_they_own_or_administer(client, operator):
    GroupFactory(name="我的群", owner=operator.staff)
    GroupFactory(name="我管理的群").admins.add(operator.staff)
    GroupFactory(name="别人的群")
    log_in(client, operator)

    assert sorted(group_names(client.get("/groups/").content.decode())) == sorted(
        ["我的群", "我管理的群"]
    )


def test_an_operator_opening_someone_elses_group_gets_404(client, operator):
    theirs = GroupFactory()
    log_in(client, operator)

    for path in ("", "members/", "history/", "edit/"):
        assert client.get(f"/groups/{theirs.pk}/{path}").status_code == 404
    assert client.post(f"/groups/{theirs.pk}/edit/", {"stage": "retention"}).status_code == 404


def test_an_analyst_reads_every_group_but_posting_an_edit_is_forbidden(client, analyst):
    group = GroupFactory(stage="founding")
    stay = join(group, ContactFactory(), days_ago=1)
    log_in(client, analyst)

    assert client.get(f"/groups/{group.pk}/").status_code == 200
    page = client.get(f"/groups/{group.pk}/members/").content.decode()
    edit = client.post(f"/groups/{group.pk}/edit/", {"stage": "retention"})
    role = client.post(f"/groups/{group.pk}/members/{stay.pk}/role/", {f"m{stay.pk}-role": "koc"})

    assert (edit.status_code, role.status_code) == (403, 403)
    assert client.get(f"/groups/{group.pk}/edit/").status_code == 403
    assert client.get(f"/groups/{group.pk}/auto-replies/new/").status_code == 403
    assert "role-form" not in page
    group.refresh_from_db()
    stay.refresh_from_db()
    assert (group.stage, stay.role) == ("founding", "member")


def test_an_operator_without_a_wecom_identity_sees_no_groups(client, db):
    GroupFactory(name="任何群")
    user = User.objects.create_user("newbie", role=Role.OPERATOR)
    log_in(client, user)

    assert "No groups yet" in client.get("/groups/").content.decode()


def test_pages_need_a_login(client, db):
    group = GroupFactory()

    for path in ("/groups/", f"/groups/{group.pk}/", "/groups/overlap/", "/groups/channel-codes/"):
        response = client.get(path)
        assert response.status_code == 302 and response.url.startswith("/login/")
