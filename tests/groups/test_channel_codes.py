"""Channel codes (渠道活码) and group join codes (群活码): made, changed and deleted through
WeCom, with their exposures, arrivals and join rate; operators see only their own."""

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from analytics.events import record
from analytics.models import EventType
from contacts.models import ChannelCode, Staff, Tag, TagGroup
from contacts.services import contact_added
from groups.models import Group
from groups.sync import full_sync
from scrm.models import Role, User

T = 1_760_000_000
WORLD = {
    "staff": [{"userid": "alice", "name": "Alice"}, {"userid": "bob", "name": "Bob"}],
    "groups": [
        {
            "chat_id": f"wr{g}",
            "name": f"福利群{g}",
            "owner": "alice",
            "create_time": T,
            "members": [{"userid": "alice", "type": 1, "join_time": T, "join_scene": 0}],
        }
        for g in range(1, 7)
    ],
}


@pytest.fixture
def wecom(fake_wecom, db):
    fake_wecom.load_world(WORLD)
    full_sync()
    return fake_wecom


@pytest.fixture
def manager(db) -> User:
    return User.objects.create_user("boss", role=Role.ADMIN)


@pytest.fixture
def tea(db) -> Tag:
    return Tag.objects.create(group=TagGroup.objects.create(name="兴趣"), name="茶")


def log_in(client, user: User):
    client.force_login(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"


def staff(userid: str) -> Staff:
    return Staff.objects.get(userid=userid)


def groups(*chat_ids: str) -> list[int]:
    return [Group.objects.get(chat_id=c).pk for c in chat_ids]


def contact_ways(fake) -> dict:
    with fake.world.lock:
        return {k: dict(v) for k, v in fake.world.contact_ways.items()}


def join_ways(fake) -> dict:
    with fake.world.lock:
        return {k: dict(v) for k, v in fake.world.join_ways.items()}


def field_error(page: str, field: str) -> str:
    match = re.search(rf'id="id_{field}_error">\s*<li>([^<]*)</li>', page)
    return match.group(1) if match else ""


def row_figures(page: str, code: ChannelCode) -> dict:
    row = re.search(rf'data-code="{code.pk}">.*?</tr>', page, re.S).group(0)
    return dict(re.findall(r'data-figure="(\w+)">([^<]*)<', row))


def test_a_staff_code_is_made_in_wecom_and_kept_with_its_state_config_and_qr(
    client, wecom, manager, tea
):
    log_in(client, manager)

    response = client.post(
        "/groups/channel-codes/new/?kind=staff",
        {
            "name": "门店地推码",
            "staff": [staff("alice").pk],
            "tags": [tea.pk],
            "welcome_message": "你好 {name}",
        },
    )

    assert response.status_code == 302
    code = ChannelCode.objects.get()
    assert code.kind == ChannelCode.Kind.STAFF
    assert code.state.startswith("cs-") and len(code.state) <= 30
    way = contact_ways(wecom)[code.config_id]
    assert (way["state"], way["user"], way["type"]) == (code.state, ["alice"], 1)
    assert code.qr_url == way["qr_code"]
    assert [s.userid for s in code.staff.all()] == ["alice"]
    assert list(code.tags.all()) == [tea]
    assert code.welcome_message == "你好 {name}"


def test_each_code_gets_its_own_state(wecom, manager):
    from groups.channel_codes import channel_code_create

    states = {
        channel_code_create(kind="staff", name=f"码{i}", staff=[staff("alice")]).state
        for i in range(5)
    }

    assert len(states) == 5


def test_a_group_code_fills_up_to_five_groups_and_a_sixth_is_refused(client, wecom, manager):
    log_in(client, manager)

    six = client.post(
        "/groups/channel-codes/new/?kind=group",
        {"name": "公众号群活码", "groups": groups("wr1", "wr2", "wr3", "wr4", "wr5", "wr6")},
    )
    five = client.post(
        "/groups/channel-codes/new/?kind=group",
        {"name": "公众号群活码", "groups": groups("wr1", "wr2", "wr3", "wr4", "wr5")},
    )

    assert field_error(six.content.decode(), "groups") == "Choose one to 5 groups."
    assert five.status_code == 302
    code = ChannelCode.objects.get()
    assert code.state.startswith("cg-")
    way = join_ways(wecom)[code.config_id]
    assert way["chat_id_list"] == ["wr1", "wr2", "wr3", "wr4", "wr5"]
    assert way["state"] == code.state
    assert sorted(code.groups.values_list("chat_id", flat=True)) == [
        "wr1",
        "wr2",
        "wr3",
        "wr4",
        "wr5",
    ]
    # A group code belongs to the owners of its groups.
    assert [s.userid for s in code.staff.all()] == ["alice"]


def test_wecom_refusing_a_code_shows_why_beside_the_field_and_saves_nothing(client, wecom, manager):
    log_in(client, manager)
    wecom.fail_next("externalcontact/add_contact_way", 60111)

    response = client.post(
        "/groups/channel-codes/new/?kind=staff", {"name": "抖音码", "staff": [staff("bob").pk]}
    )

    assert response.status_code == 200
    assert field_error(response.content.decode(), "staff").startswith("WeCom refused the code")
    assert not ChannelCode.objects.exists()
    assert contact_ways(wecom) == {}


def test_changing_whom_a_code_adds_goes_to_wecom_and_a_refusal_changes_nothing(
    client, wecom, manager, tea
):
    from groups.channel_codes import channel_code_create

    code = channel_code_create(kind="staff", name="淘宝包裹卡", staff=[staff("alice")])
    log_in(client, manager)

    changed = client.post(
        f"/groups/channel-codes/{code.pk}/",
        {
            "name": "淘宝包裹卡",
            "staff": [staff("bob").pk],
            "tags": [tea.pk],
            "welcome_message": "嗨",
        },
    )
    wecom.fail_next("externalcontact/update_contact_way", 40058)
    refused = client.post(
        f"/groups/channel-codes/{code.pk}/",
        {"name": "改名", "staff": [staff("alice").pk], "welcome_message": "别的"},
    )

    assert changed.status_code == 302
    assert contact_ways(wecom)[code.config_id]["user"] == ["bob"]
    assert field_error(refused.content.decode(), "staff").startswith("WeCom refused the code")
    code.refresh_from_db()
    assert (code.name, code.welcome_message) == ("淘宝包裹卡", "嗨")
    assert [s.userid for s in code.staff.all()] == ["bob"]
    assert list(code.tags.all()) == [tea]


def test_tags_and_welcome_message_change_here_without_asking_wecom(client, wecom, manager, tea):
    from groups.channel_codes import channel_code_create

    code = channel_code_create(kind="staff", name="京东包裹卡", staff=[staff("alice")])
    wecom.reset_calls()
    log_in(client, manager)

    client.post(
        f"/groups/channel-codes/{code.pk}/",
        {
            "name": "京东包裹卡",
            "staff": [staff("alice").pk],
            "tags": [tea.pk],
            "welcome_message": "欢迎",
        },
    )

    code.refresh_from_db()
    assert code.welcome_message == "欢迎"
    assert list(code.tags.all()) == [tea]
    assert wecom.calls("externalcontact/update_contact_way") == []


def test_changing_a_group_codes_groups_goes_to_wecom(client, wecom, manager):
    from groups.channel_codes import channel_code_create

    code = channel_code_create(
        kind="group", name="裂变海报", groups=Group.objects.filter(chat_id="wr1")
    )
    log_in(client, manager)

    client.post(
        f"/groups/channel-codes/{code.pk}/", {"name": "裂变海报", "groups": groups("wr2", "wr3")}
    )

    assert join_ways(wecom)[code.config_id]["chat_id_list"] == ["wr2", "wr3"]
    assert sorted(code.groups.values_list("chat_id", flat=True)) == ["wr2", "wr3"]


def test_deleting_a_code_stops_it_in_wecom_and_keeps_its_history(client, wecom, manager):
    from groups.channel_codes import channel_code_create

    code = channel_code_create(kind="staff", name="小红书码", staff=[staff("alice")])
    config_id = code.config_id
    follow = contact_added(
        userid="alice",
        external_userid="wm-new",
        state=code.state,
        occurred_at=timezone.now(),
        key="cb-1",
    )
    log_in(client, manager)

    response = client.post(f"/groups/channel-codes/{code.pk}/delete/")

    assert response.status_code == 302
    assert config_id not in contact_ways(wecom)
    code.refresh_from_db()
    assert not code.is_active and code.config_id == ""
    follow.refresh_from_db()
    assert follow.channel == code  # the customer it brought keeps their channel
    listing = client.get("/groups/channel-codes/").content.decode()
    assert "小红书码" not in listing
    with_deleted = client.get("/groups/channel-codes/?retired=1").content.decode()
    assert row_figures(with_deleted, code)["arrivals"] == "1"


def test_the_list_shows_exposures_arrivals_and_join_rate_over_the_period(client, manager):
    staff_code = ChannelCode.objects.create(name="抖音直播间", kind="staff", state="s1")
    group_code = ChannelCode.objects.create(name="公众号群码", kind="group", state="g1")
    now = timezone.now()
    for key, kind, code, days_ago, amount in [
        ("e1", EventType.CHANNEL_EXPOSURE, staff_code, 1, 120),
        ("e2", EventType.CHANNEL_EXPOSURE, staff_code, 3, 80),
        ("e3", EventType.CHANNEL_EXPOSURE, staff_code, 20, 800),
        ("a1", EventType.CONTACT_ADDED, staff_code, 1, None),
        ("a2", EventType.CONTACT_ADDED, staff_code, 2, None),
        ("a3", EventType.CONTACT_ADDED, staff_code, 20, None),
        ("j1", EventType.GROUP_JOINED, group_code, 1, None),
        ("j2", EventType.GROUP_JOINED, group_code, 2, None),
        ("x1", EventType.GROUP_JOINED, staff_code, 2, None),  # not a staff code's arrival
    ]:
        record(
            type=kind,
            occurred_at=now - timedelta(days=days_ago),
            key=key,
            channel=code,
            amount=amount,
        )
    log_in(client, manager)

    week = client.get("/groups/channel-codes/?period=7").content.decode()
    month = client.get("/groups/channel-codes/?period=30").content.decode()

    assert row_figures(week, staff_code) == {
        "exposures": "200",
        "arrivals": "2",
        "join_rate": "1.0%",
    }
    assert row_figures(month, staff_code) == {
        "exposures": "1,000",
        "arrivals": "3",
        "join_rate": "0.3%",
    }
    # No exposures: the join rate is undefined, shown as a dash rather than 0.
    assert row_figures(week, group_code) == {"exposures": "0", "arrivals": "2", "join_rate": "—"}


def test_an_empty_code_list_says_there_are_no_codes_yet(client, manager):
    log_in(client, manager)

    assert "No channel codes yet" in client.get("/groups/channel-codes/").content.decode()


# --- who may see and change what --------------------------------------------------------------


@pytest.fixture
def operator(wecom) -> User:
    user = User.objects.create_user("xiaowang", role=Role.OPERATOR)
    bob = staff("bob")
    bob.user = user
    bob.save()
    return user


def test_an_operator_sees_and_changes_only_their_own_codes(client, wecom, operator):
    from groups.channel_codes import channel_code_create

    mine = channel_code_create(kind="staff", name="我的码", staff=[staff("bob")])
    theirs = channel_code_create(kind="staff", name="别人的码", staff=[staff("alice")])
    log_in(client, operator)

    listing = client.get("/groups/channel-codes/").content.decode()
    other_page = client.get(f"/groups/channel-codes/{theirs.pk}/")
    other_delete = client.post(f"/groups/channel-codes/{theirs.pk}/delete/")
    sneaky = client.post(
        "/groups/channel-codes/new/?kind=staff", {"name": "借名码", "staff": [staff("alice").pk]}
    )
    api_codes = client.get("/api/channel-codes/").json()["results"]

    assert "我的码" in listing and "别人的码" not in listing
    assert (other_page.status_code, other_delete.status_code) == (404, 404)
    assert field_error(sneaky.content.decode(), "staff").startswith("Select a valid choice")
    assert [c["name"] for c in api_codes] == ["我的码"]
    assert client.get(f"/api/channel-codes/{theirs.pk}/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.is_active
    assert ChannelCode.objects.filter(name="借名码").count() == 0
    assert mine.is_active


def test_an_analyst_reads_codes_but_cannot_make_or_delete_them(client, wecom):
    from groups.channel_codes import channel_code_create

    code = channel_code_create(kind="staff", name="门店码", staff=[staff("alice")])
    analyst = User.objects.create_user("laoli", role=Role.ANALYST)
    log_in(client, analyst)

    assert "门店码" in client.get("/groups/channel-codes/").content.decode()
    made = client.post(
        "/groups/channel-codes/new/?kind=staff", {"name": "x", "staff": [staff("alice").pk]}
    )
    deleted = client.post(f"/groups/channel-codes/{code.pk}/delete/")
    api_made = client.post("/api/channel-codes/", {"name": "x", "kind": "staff"})

    assert (made.status_code, deleted.status_code, api_made.status_code) == (403, 403, 403)
    assert ChannelCode.objects.count() == 1
    assert code.config_id in contact_ways(wecom)


# --- the API --------------------------------------------------------------------------------------


def test_the_api_makes_changes_lists_and_deletes_codes(client, wecom, manager, tea):
    log_in(client, manager)

    made = client.post(
        "/api/channel-codes/",
        {"name": "API 群码", "kind": "group", "groups": groups("wr1", "wr2"), "tags": [tea.pk]},
        content_type="application/json",
    )
    code_id = made.json()["id"]
    changed = client.patch(
        f"/api/channel-codes/{code_id}/",
        {"groups": groups("wr3"), "welcome_message": "进群有礼"},
        content_type="application/json",
    )
    record(
        type=EventType.CHANNEL_EXPOSURE,
        occurred_at=timezone.now(),
        key="exp",
        channel=code_id,
        amount=40,
    )
    record(type=EventType.GROUP_JOINED, occurred_at=timezone.now(), key="join", channel=code_id)
    listed = client.get("/api/channel-codes/?kind=group&period=7").json()["results"]
    deleted = client.delete(f"/api/channel-codes/{code_id}/")

    assert made.status_code == 201
    assert made.json()["state"].startswith("cg-") and made.json()["qr_url"]
    assert changed.status_code == 200
    assert changed.json()["welcome_message"] == "进群有礼"
    assert [g for g in changed.json()["groups"]] == groups("wr3")
    assert (listed[0]["exposures"], listed[0]["arrivals"], listed[0]["join_rate"]) == (40, 1, 0.025)
    assert deleted.status_code == 204
    assert join_ways(wecom) == {}


def test_the_api_answers_a_wecom_refusal_with_400_and_saves_nothing(client, wecom, manager):
    log_in(client, manager)
    wecom.fail_next("externalcontact/groupchat/add_join_way", 40050)

    response = client.post(
        "/api/channel-codes/",
        {"name": "群码", "kind": "group", "groups": groups("wr1")},
        content_type="application/json",
    )

    assert response.status_code == 400
    assert response.json()["groups"][0].startswith("WeCom refused the code")
    assert not ChannelCode.objects.exists()
