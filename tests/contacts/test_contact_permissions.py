"""Who sees and changes which customers: operators their own, managers all, analysts read only.

The cast: 小王 (an operator following two customers), 老李 (another operator with his own
customer), an analyst, a manager, and an operator login with no WeCom identity.
"""

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from contacts.models import Contact, ContactNote, ContactTag, Follow, Tag, TagGroup
from contacts.selectors import contacts_visible_to
from groups.selectors import wecom_world
from scrm.models import Role, User
from tests.factories import ContactFactory, StaffFactory

PASSWORD = "plum-blossom-2026"


def login(username: str, role: str, *, staff_userid: str | None = None) -> User:
    user = User.objects.create_user(username, password=PASSWORD, role=role)
    if staff_userid:
        StaffFactory(userid=staff_userid, name=username, user=user)
    return user


@pytest.fixture
def cast(db):
    wang = login("xiaowang", Role.OPERATOR, staff_userid="xiaowang")
    li = login("laoli", Role.OPERATOR, staff_userid="laoli")
    now = timezone.now()
    mine = ContactFactory(name="小王的客户", external_userid="wm-mine")
    shared = ContactFactory(name="两人共有", external_userid="wm-shared")
    theirs = ContactFactory(name="老李的客户", external_userid="wm-theirs")
    blocked = ContactFactory(name="拉黑了小王", external_userid="wm-blocked")
    for contact in (mine, shared):
        Follow.objects.create(contact=contact, staff=wang.staff, added_at=now)
    for contact in (shared, theirs):
        Follow.objects.create(contact=contact, staff=li.staff, added_at=now)
    Follow.objects.create(
        contact=blocked, staff=wang.staff, added_at=now, deleted_by_contact_at=now
    )
    group = TagGroup.objects.create(name="兴趣", wecom_group_id="etG")
    tag = Tag.objects.create(group=group, name="护肤", wecom_tag_id="etT")
    return {
        "wang": wang,
        "li": li,
        "analyst": login("analyst", Role.ANALYST),
        "manager": login("boss", Role.ADMIN),
        "no_staff": login("newbie", Role.OPERATOR),
        "mine": mine,
        "shared": shared,
        "theirs": theirs,
        "blocked": blocked,
        "tag": tag,
    }


def page_client(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def api_client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def listed_names(user) -> set[str]:
    return {row["name"] for row in api_client(user).get("/api/contacts/").json()["results"]}


# --- seeing --------------------------------------------------------------------------------


def test_an_operator_sees_only_customers_with_an_active_follow_by_them(cast):
    assert set(contacts_visible_to(cast["wang"]).values_list("name", flat=True)) == {
        "小王的客户",
        "两人共有",
    }
    assert listed_names(cast["wang"]) == {"小王的客户", "两人共有"}
    assert listed_names(cast["li"]) == {"两人共有", "老李的客户"}


def test_managers_and_analysts_see_everyone_and_a_login_without_staff_sees_no_one(cast):
    everyone = set(Contact.objects.values_list("name", flat=True))
    assert listed_names(cast["manager"]) == everyone
    assert listed_names(cast["analyst"]) == everyone
    assert listed_names(cast["no_staff"]) == set()


def test_the_list_page_shows_an_operator_only_their_customers(client, cast):
    page = page_client(client, cast["wang"]).get("/contacts/").content.decode()

    assert "小王的客户" in page and "两人共有" in page
    assert "老李的客户" not in page and "拉黑了小王" not in page


def test_an_operator_opening_someone_elses_customer_gets_a_404_everywhere(client, cast):
    theirs = cast["theirs"].pk
    api = api_client(cast["wang"])
    page_client(client, cast["wang"])

    assert client.get(f"/contacts/{theirs}/").status_code == 404
    assert client.get(f"/contacts/{cast['blocked'].pk}/").status_code == 404
    assert client.get(f"/contacts/{cast['shared'].pk}/").status_code == 200
    assert api.get(f"/api/contacts/{theirs}/").status_code == 404
    assert api.get(f"/api/contacts/{theirs}/timeline/").status_code == 404
    assert (
        api.post(
            f"/api/contacts/{theirs}/notes/", {"kind": "identity", "text": "x"}, format="json"
        ).status_code
        == 404
    )
    assert (
        client.post(f"/contacts/{theirs}/notes/", {"kind": "identity", "text": "x"}).status_code
        == 404
    )
    assert not ContactNote.objects.exists()


def test_anonymous_visitors_are_sent_to_log_in(client, cast):
    response = client.get(f"/contacts/{cast['mine'].pk}/")

    assert response.status_code == 302 and response.url.startswith("/login/")
    assert client.get("/contacts/").status_code == 302
    assert client.post("/contacts/bulk/", {"action": "export"}).status_code == 302
    assert APIClient().get("/api/contacts/").status_code in (401, 403)


# --- changing --------------------------------------------------------------------------------


def test_an_operators_bulk_tag_skips_customers_not_theirs(cast, fake_wecom):
    fake_wecom.load_world(wecom_world())
    ids = [cast["mine"].pk, cast["theirs"].pk]

    result = (
        api_client(cast["wang"])
        .post(
            "/api/contacts/bulk/",
            {"action": "tag", "ids": ids, "tags": [cast["tag"].pk]},
            format="json",
        )
        .json()
    )

    assert result["done"] == 1
    assert result["failed"] == [
        {"id": cast["theirs"].pk, "name": "", "reason": result["failed"][0]["reason"]}
    ]
    assert list(ContactTag.objects.values_list("contact_id", flat=True)) == [cast["mine"].pk]


def test_an_operators_bulk_action_on_all_matching_touches_only_their_customers(cast, fake_wecom):
    fake_wecom.load_world(wecom_world())

    result = (
        api_client(cast["wang"])
        .post(
            "/api/contacts/bulk/",
            {"action": "tag", "all_matching": True, "tags": [cast["tag"].pk]},
            format="json",
        )
        .json()
    )

    assert result["requested"] == 2 and result["done"] == 2
    assert set(ContactTag.objects.values_list("contact_id", flat=True)) == {
        cast["mine"].pk,
        cast["shared"].pk,
    }


def test_the_page_bulk_form_on_all_matching_tags_only_the_operators_customers(
    client, cast, fake_wecom
):
    fake_wecom.load_world(wecom_world())
    page_client(client, cast["wang"])

    response = client.post(
        "/contacts/bulk/",
        {"scope": "all", "query": "", "action": "tag", "tags": [cast["tag"].pk]},
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="bulk-done">2<' in page
    assert set(ContactTag.objects.values_list("contact_id", flat=True)) == {
        cast["mine"].pk,
        cast["shared"].pk,
    }


def test_an_analyst_cannot_bulk_tag_assign_or_write_remarks(client, cast):
    api = api_client(cast["analyst"])
    ids = [cast["mine"].pk]

    tag = api.post(
        "/api/contacts/bulk/",
        {"action": "tag", "ids": ids, "tags": [cast["tag"].pk]},
        format="json",
    )
    assign = api.post(
        "/api/contacts/bulk/",
        {"action": "assign_staff", "ids": ids, "staff": cast["li"].staff.pk},
        format="json",
    )
    note = api.post(
        f"/api/contacts/{ids[0]}/notes/", {"kind": "identity", "text": "x"}, format="json"
    )
    page_client(client, cast["analyst"])
    page_tag = client.post(
        "/contacts/bulk/",
        {"scope": "selected", "ids": ids, "action": "tag", "tags": [cast["tag"].pk]},
    )
    page_note = client.post(f"/contacts/{ids[0]}/notes/", {"kind": "identity", "text": "x"})

    assert (tag.status_code, assign.status_code, note.status_code) == (403, 403, 403)
    assert (page_tag.status_code, page_note.status_code) == (403, 403)
    assert not ContactTag.objects.exists() and not ContactNote.objects.exists()


def test_an_analyst_sees_only_export_among_the_bulk_actions(client, cast):
    page = page_client(client, cast["analyst"]).get("/contacts/").content.decode()

    assert 'value="export"' in page
    assert 'value="tag"' not in page and 'value="assign_staff"' not in page


def test_an_analyst_may_export(client, cast):
    pytest.importorskip("contacts.exports", reason="the export service is not built yet")
    api = api_client(cast["analyst"])

    response = api.post(
        "/api/contacts/bulk/", {"action": "export", "all_matching": True}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["requested"] == 4 and response.json()["job"]


def test_an_operator_assigns_only_their_own_customers_and_from_their_own_follow(cast, fake_wecom):
    fake_wecom.load_world(wecom_world())
    li_staff = cast["li"].staff
    newcomer = StaffFactory(userid="newcomer", name="新同事")
    fake_wecom.load_world(wecom_world())

    result = (
        api_client(cast["li"])
        .post(
            "/api/contacts/bulk/",
            {
                "action": "assign_staff",
                "ids": [cast["shared"].pk, cast["mine"].pk],
                "staff": newcomer.pk,
            },
            format="json",
        )
        .json()
    )

    assert result["done"] == 1
    assert [f["id"] for f in result["failed"]] == [cast["mine"].pk]
    # When WeCom completes it, 老李's relation moved to the newcomer; 小王's stayed.
    fake_wecom.complete_transfers()
    world = {c["external_userid"]: c for c in fake_wecom.world_snapshot()["contacts"]}
    followers = {f["userid"] for f in world["wm-shared"]["follow_users"]}
    assert followers == {"xiaowang", "newcomer"}
    assert li_staff.userid not in followers


def test_an_analyst_exports_from_the_page_and_sees_the_job(client, cast):
    pytest.importorskip("contacts.exports", reason="the export service is not built yet")
    page_client(client, cast["analyst"])

    response = client.post(
        "/contacts/bulk/", {"scope": "all", "query": "stage=new", "action": "export"}
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="bulk-requested">4<' in page
    assert 'id="bulk-job"' in page


def test_a_bulk_action_without_its_input_shows_an_error_and_changes_nothing(client, cast):
    page_client(client, cast["wang"])

    response = client.post(
        "/contacts/bulk/",
        {"scope": "selected", "ids": [cast["mine"].pk], "action": "tag", "query": "stage=new"},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == "/contacts/?stage=new"
    assert 'class="alert alert-error"' in response.content.decode()
    assert not ContactTag.objects.exists()
