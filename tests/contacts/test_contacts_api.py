"""The contacts REST API: list with filters, the 360 data, timeline, remarks, bulk actions."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from analytics.events import record
from analytics.models import Event, EventType
from contacts.models import (
    ContactNote,
    ContactTag,
    Follow,
    MemberTier,
    Tag,
    TagGroup,
)
from contacts.remarks import BULK_MAX_CONTACTS, BULK_TAG_MAX
from groups.selectors import wecom_world
from scrm.models import Role, User
from tests.factories import ContactFactory, StaffFactory

PASSWORD = "plum-blossom-2026"


@pytest.fixture
def manager(db) -> User:
    return User.objects.create_user("boss", password=PASSWORD, role=Role.ADMIN)


@pytest.fixture
def api(manager) -> APIClient:
    client = APIClient()
    client.force_authenticate(manager)
    return client


def follow(contact, staff, **fields) -> Follow:
    return Follow.objects.create(contact=contact, staff=staff, added_at=timezone.now(), **fields)


@pytest.fixture
def wecom_tags(db) -> dict[str, Tag]:
    """Two corp tags, known to WeCom by id."""
    group = TagGroup.objects.create(name="兴趣", wecom_group_id="etGROUP1")
    return {
        "护肤": Tag.objects.create(group=group, name="护肤", wecom_tag_id="etTAG1"),
        "母婴": Tag.objects.create(group=group, name="母婴", wecom_tag_id="etTAG2"),
    }


# --- list ----------------------------------------------------------------------------------


def test_the_list_filters_pages_and_counts(api, wecom_tags):
    vip = MemberTier.objects.create(name="VIP1", level=1)
    staff = StaffFactory(name="小王")
    for n in range(60):
        contact = ContactFactory(name=f"c{n:02d}", tier=vip if n < 55 else None)
        follow(contact, staff)
        if n % 3 == 0:
            ContactTag.objects.create(contact=contact, tag=wecom_tags["护肤"])

    everyone = api.get("/api/contacts/", {"sort": "name"}).json()
    second = api.get("/api/contacts/", {"sort": "name", "page": 2}).json()
    filtered = api.get(
        "/api/contacts/",
        {"tags_all": wecom_tags["护肤"].pk, "tier": vip.pk, "stage": "new", "sort": "-name"},
    ).json()

    assert everyone["count"] == 60
    assert len(everyone["results"]) == 50
    assert [row["name"] for row in second["results"]] == [f"c{n}" for n in range(50, 60)]
    assert filtered["count"] == 19  # 0, 3, ..., 54
    first = filtered["results"][0]
    assert first["name"] == "c54"
    assert first["tier"] == {"id": vip.pk, "name": "VIP1", "level": 1}
    assert first["staff"] == [{"id": staff.pk, "name": "小王"}]
    assert first["tags"][0]["name"] == "护肤"
    assert first["order_count"] == 0 and first["spend_fen"] == 0
    assert first["customer_type"] == "low_need"


def test_bad_filter_parameters_get_a_400_naming_each_parameter(api, db):
    response = api.get(
        "/api/contacts/",
        {"tags_any": "x,2", "spend_min": "-5", "customer_type": "vip", "color": "red"},
    )

    assert response.status_code == 400
    errors = response.json()
    assert set(errors) == {"tags_any", "spend_min", "customer_type", "color"}
    assert "x" in errors["tags_any"][0]
    assert "color" in errors["color"][0]


def test_token_authentication_works_and_anonymous_calls_are_refused(manager):
    ContactFactory(name="someone")
    token = Token.objects.create(user=manager)
    client = APIClient()

    assert client.get("/api/contacts/").status_code in (401, 403)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get("/api/contacts/").json()["count"] == 1


# --- one contact ---------------------------------------------------------------------------


def test_retrieve_gives_the_contact_page_data_and_the_timeline_pages(api, wecom_tags):
    now = timezone.now()
    staff = StaffFactory(name="小王")
    vip = MemberTier.objects.create(name="VIP2", level=2, rights=["会员日 9 折"])
    contact = ContactFactory(name="王小花", tier=vip, points_balance=30)
    follow(contact, staff, remark="花姐")
    ContactTag.objects.create(contact=contact, tag=wecom_tags["母婴"])
    ContactNote.objects.create(contact=contact, kind="purchase", text="买过面霜")
    ContactFactory(name="小美", referrer=contact)
    record(
        type=EventType.ORDER_PAID,
        occurred_at=now - timedelta(days=1),
        key="api-order",
        contact=contact,
        amount=9_900,
        payload={"order_no": "SO-9"},
    )
    for n in range(55):
        record(
            type=EventType.MESSAGE,
            occurred_at=now - timedelta(days=2, minutes=n),
            key=f"api-message-{n}",
            contact=contact,
        )

    data = api.get(f"/api/contacts/{contact.pk}/").json()
    timeline = api.get(f"/api/contacts/{contact.pk}/timeline/").json()
    older = api.get(f"/api/contacts/{contact.pk}/timeline/", {"page": 2}).json()

    assert data["name"] == "王小花"
    assert data["tier"]["name"] == "VIP2" and data["tier_rights"] == ["会员日 9 折"]
    assert data["follows"][0]["remark"] == "花姐" and data["follows"][0]["is_active"]
    assert data["tags"][0]["name"] == "母婴" and data["tags"][0]["group"]["name"] == "兴趣"
    assert data["notes"][0]["text"] == "买过面霜"
    assert data["orders"][0]["order_no"] == "SO-9" and data["orders"][0]["amount"] == 9_900
    assert data["order_count"] == 1 and data["spend_fen"] == 9_900
    assert data["referral_count"] == 1 and data["referrals"][0]["name"] == "小美"
    assert timeline["count"] == 56
    assert timeline["results"][0]["type"] == EventType.ORDER_PAID
    assert timeline["results"][0]["detail"] == "¥99.00 · SO-9"
    assert len(older["results"]) == 6


def test_remarks_are_added_and_corrected_through_the_api(api):
    contact = ContactFactory()

    created = api.post(
        f"/api/contacts/{contact.pk}/notes/", {"kind": "identity", "text": "护士"}, format="json"
    )
    note_id = created.json()["id"]
    corrected = api.patch(
        f"/api/contacts/{contact.pk}/notes/{note_id}/", {"text": "护士长"}, format="json"
    )
    refused = api.post(
        f"/api/contacts/{contact.pk}/notes/", {"kind": "gossip", "text": "x"}, format="json"
    )

    assert created.status_code == 201
    assert corrected.status_code == 200
    assert ContactNote.objects.get(pk=note_id).text == "护士长"
    assert refused.status_code == 400 and "kind" in refused.json()
    assert ContactNote.objects.count() == 1


# --- bulk actions ----------------------------------------------------------------------------


@pytest.fixture
def followed(db):
    """Three customers of one staff member, mirrored in the fake WeCom."""
    staff = StaffFactory(userid="xiaowang", name="小王")
    contacts = [ContactFactory(external_userid=f"wm-bulk-{n}") for n in range(3)]
    for contact in contacts:
        follow(contact, staff)
    return staff, contacts


def test_bulk_tagging_marks_the_tags_in_wecom_and_here(api, fake_wecom, followed, wecom_tags):
    staff, contacts = followed
    ContactTag.objects.create(contact=contacts[2], tag=wecom_tags["护肤"])
    fake_wecom.load_world(wecom_world())

    response = api.post(
        "/api/contacts/bulk/",
        {"action": "tag", "ids": [c.pk for c in contacts], "tags": [wecom_tags["护肤"].pk]},
        format="json",
    )

    result = response.json()
    assert response.status_code == 200
    assert (result["requested"], result["done"], result["unchanged"]) == (3, 2, 1)
    assert result["failed"] == []
    assert set(
        ContactTag.objects.filter(tag=wecom_tags["护肤"]).values_list("contact_id", flat=True)
    ) == {c.pk for c in contacts}
    world = {c["external_userid"]: c for c in fake_wecom.world_snapshot()["contacts"]}
    assert all("etTAG1" in world[c.external_userid]["follow_users"][0]["tags"] for c in contacts)


def test_bulk_untagging_on_all_matching_customers_reports_wecom_refusals(
    api, fake_wecom, followed, wecom_tags
):
    staff, contacts = followed
    for contact in contacts:
        ContactTag.objects.create(contact=contact, tag=wecom_tags["母婴"])
    other = ContactFactory()  # matches no filter below: not touched
    ContactTag.objects.create(contact=other, tag=wecom_tags["护肤"])
    fake_wecom.load_world(wecom_world())
    fake_wecom.fail_next("externalcontact/mark_tag", 84061)

    response = api.post(
        f"/api/contacts/bulk/?tags_all={wecom_tags['母婴'].pk}",
        {"action": "untag", "all_matching": True, "tags": [wecom_tags["母婴"].pk]},
        format="json",
    )

    result = response.json()
    assert result["requested"] == 3 and result["done"] == 2
    assert len(result["failed"]) == 1 and "84061" in result["failed"][0]["reason"]
    failed_id = result["failed"][0]["id"]
    assert list(
        ContactTag.objects.filter(tag=wecom_tags["母婴"]).values_list("contact_id", flat=True)
    ) == [failed_id]
    assert ContactTag.objects.filter(contact=other).exists()


def test_assigning_staff_starts_an_in_service_transfer_in_wecom(api, fake_wecom, followed):
    staff, contacts = followed
    successor = StaffFactory(userid="laoli", name="老李")
    follow(contacts[2], successor)  # already theirs
    fake_wecom.load_world(wecom_world())

    response = api.post(
        "/api/contacts/bulk/",
        {"action": "assign_staff", "ids": [c.pk for c in contacts], "staff": successor.pk},
        format="json",
    )

    result = response.json()
    assert (result["done"], result["unchanged"], result["failed"]) == (2, 1, [])
    assert len(fake_wecom.calls("externalcontact/transfer_customer")) == 1
    events = Event.objects.filter(type=EventType.CONTACT_TRANSFERRED).order_by("contact_id")
    assert [e.contact_id for e in events] == [contacts[0].pk, contacts[1].pk]
    assert events[0].staff_id == successor.pk
    assert events[0].payload["from"] == "xiaowang" and events[0].payload["to"] == "laoli"
    # WeCom completes it a day later; until then the follow relations stay as they are.
    assert Follow.objects.filter(staff=staff).count() == 3


def test_a_transfer_wecom_refuses_is_reported_with_its_reason(api, fake_wecom, followed):
    staff, contacts = followed
    successor = StaffFactory(userid="laoli", name="老李")
    world = wecom_world()
    # WeCom no longer has the first customer on 小王's list.
    world["contacts"] = [c for c in world["contacts"] if c["external_userid"] != "wm-bulk-0"]
    fake_wecom.load_world(world)

    result = api.post(
        "/api/contacts/bulk/",
        {"action": "assign_staff", "ids": [contacts[0].pk, contacts[1].pk], "staff": successor.pk},
        format="json",
    ).json()

    assert result["done"] == 1
    assert result["failed"][0]["id"] == contacts[0].pk
    assert "84061" in result["failed"][0]["reason"]


def test_bulk_input_errors_name_the_field_and_change_nothing(api, followed, wecom_tags):
    _, contacts = followed
    ids = [c.pk for c in contacts]

    no_target = api.post("/api/contacts/bulk/", {"action": "tag", "tags": [1]}, format="json")
    no_tags = api.post("/api/contacts/bulk/", {"action": "tag", "ids": ids}, format="json")
    unknown_tag = api.post(
        "/api/contacts/bulk/", {"action": "tag", "ids": ids, "tags": [424242]}, format="json"
    )
    no_staff = api.post(
        "/api/contacts/bulk/", {"action": "assign_staff", "ids": ids}, format="json"
    )
    bad_action = api.post("/api/contacts/bulk/", {"action": "delete", "ids": ids}, format="json")
    too_many = api.post(
        "/api/contacts/bulk/",
        {"action": "tag", "ids": list(range(1, BULK_TAG_MAX + 2)), "tags": [1]},
        format="json",
    )
    too_many_to_assign = api.post(
        "/api/contacts/bulk/",
        {"action": "assign_staff", "ids": list(range(1, BULK_MAX_CONTACTS + 2)), "staff": 1},
        format="json",
    )
    bad_filter = api.post(
        "/api/contacts/bulk/?tags_all=oops",
        {"action": "tag", "all_matching": True, "tags": [wecom_tags["护肤"].pk]},
        format="json",
    )

    assert no_target.status_code == 400 and "ids" in no_target.json()
    assert no_tags.status_code == 400 and "tags" in no_tags.json()
    assert unknown_tag.status_code == 400 and "424242" in unknown_tag.json()["tags"][0]
    assert no_staff.status_code == 400 and "staff" in no_staff.json()
    assert bad_action.status_code == 400 and "action" in bad_action.json()
    assert too_many.status_code == 400 and "ids" in too_many.json()
    assert too_many_to_assign.status_code == 400 and "ids" in too_many_to_assign.json()
    assert bad_filter.status_code == 400 and "tags_all" in bad_filter.json()
    assert not ContactTag.objects.exists()


def test_bulk_export_starts_a_job_for_the_filtered_customers(api, followed):
    pytest.importorskip("contacts.exports", reason="the export service is not built yet")
    _, contacts = followed

    response = api.post(
        "/api/contacts/bulk/",
        {"action": "export", "ids": [c.pk for c in contacts], "format": "xlsx"},
        format="json",
    )

    result = response.json()
    assert response.status_code == 200
    assert result["done"] == 3 and result["job"]["id"]


# --- schema ----------------------------------------------------------------------------------


def test_the_openapi_schema_documents_the_contact_endpoints_and_filters(api):
    schema = api.get("/api/schema/", {"format": "json"}).json()

    listing = schema["paths"]["/api/contacts/"]["get"]
    parameters = {p["name"]: p for p in listing["parameters"]}
    assert {"tags_all", "tags_any", "tags_none", "tier", "stage", "customer_type", "sort"} <= set(
        parameters
    )
    assert parameters["tags_all"]["schema"]["type"] == "array"
    assert "loyal" in parameters["customer_type"]["schema"]["enum"]
    assert "/api/contacts/{id}/" in schema["paths"]
    assert "/api/contacts/{id}/timeline/" in schema["paths"]
    assert "post" in schema["paths"]["/api/contacts/bulk/"]
