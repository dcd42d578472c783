"""Rule tags appear and disappear as behaviour changes; rules are checked before they are saved."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics.events import record
from analytics.models import Event, EventType
from contacts.loyalty_tasks import tag_rule_evaluate
from contacts.models import (
    ChannelCode,
    Contact,
    ContactTag,
    Follow,
    MemberTier,
    Tag,
    TagGroup,
    TagRule,
    TagSource,
)
from contacts.tag_rules import tag_rule_apply, tag_rule_matching, tag_rule_validate
from groups.models import Group, GroupMembership
from groups.selectors import wecom_world
from scrm.models import Role, User
from tests.conftest import wait_for
from tests.factories import ContactFactory, GroupFactory, StaffFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=SHANGHAI)
DAY = timedelta(days=1)

pytestmark = pytest.mark.django_db

REPEAT_BUYER = {"all": [{"field": "orders", "within_days": 30, "op": ">=", "value": 2}]}
ASLEEP = {"all": [{"field": "days_since_last_activity", "op": ">=", "value": 30}]}


def paid(contact: Contact, order_no: str, at: datetime, fen: int = 9_900) -> None:
    record(
        type=EventType.ORDER_PAID,
        occurred_at=at,
        key=f"test:paid:{order_no}",
        contact=contact,
        amount=fen,
        payload={"order_no": order_no},
    )


def spoke(contact: Contact, at: datetime) -> None:
    record(
        type=EventType.MESSAGE, occurred_at=at, key=f"test:msg:{contact.pk}:{at}", contact=contact
    )


def rule_for(name: str, conditions: dict) -> TagRule:
    group, _ = TagGroup.objects.get_or_create(name="行为")
    return TagRule.objects.create(
        tag=Tag.objects.create(group=group, name=name), conditions=conditions
    )


def holders(tag: Tag) -> set[str]:
    return set(ContactTag.objects.filter(tag=tag).values_list("contact__name", flat=True))


def tag_events(tag: Tag) -> list[tuple[str, str]]:
    events = Event.objects.filter(
        type__in=[EventType.TAG_ADDED, EventType.TAG_REMOVED], payload__tag_id=tag.pk
    ).order_by("id")
    names = dict(Contact.objects.values_list("pk", "name"))
    return [(EventType(e.type).name, names[e.contact_id]) for e in events]


def test_two_orders_in_30_days_make_a_repeat_buyer_until_the_window_passes():
    rule = rule_for("复购客户", REPEAT_BUYER)
    ann = ContactFactory(name="ann", first_added_at=NOW - 90 * DAY)
    bob = ContactFactory(name="bob", first_added_at=NOW - 90 * DAY)
    cat = ContactFactory(name="cat", first_added_at=NOW - 90 * DAY)
    paid(ann, "A1", NOW - 10 * DAY)
    paid(ann, "A2", NOW - 5 * DAY)
    paid(bob, "B1", NOW - 3 * DAY)
    paid(cat, "C1", NOW - 45 * DAY)
    paid(cat, "C2", NOW - 40 * DAY)

    outcome = tag_rule_apply(rule, now=NOW)

    assert outcome.added == [ann.pk] and outcome.removed == []
    assert holders(rule.tag) == {"ann"}
    assert ContactTag.objects.get(tag=rule.tag).source == TagSource.RULE

    # Three weeks on: ann's first order has left the window; bob has bought again.
    later = NOW + 21 * DAY
    paid(bob, "B2", later - DAY)
    tag_rule_apply(rule, now=later)

    assert holders(rule.tag) == {"bob"}
    assert sorted(tag_events(rule.tag)) == [
        ("TAG_ADDED", "ann"),
        ("TAG_ADDED", "bob"),
        ("TAG_REMOVED", "ann"),
    ]
    rule.refresh_from_db()
    assert rule.evaluated_at == later


def test_no_speech_or_order_in_30_days_puts_a_contact_to_sleep_and_speaking_wakes_them():
    rule = rule_for("沉睡", ASLEEP)
    silent = ContactFactory(name="silent", first_added_at=NOW - 60 * DAY)
    chatty = ContactFactory(name="chatty", first_added_at=NOW - 60 * DAY)
    spoke(chatty, NOW - 10 * DAY)
    ContactFactory(name="newcomer", first_added_at=NOW - 5 * DAY)
    buyer = ContactFactory(name="buyer", first_added_at=NOW - 60 * DAY)
    paid(buyer, "B1", NOW - 29 * DAY)

    tag_rule_apply(rule, now=NOW)
    assert holders(rule.tag) == {"silent"}

    spoke(silent, NOW + DAY)
    tag_rule_apply(rule, now=NOW + 2 * DAY)
    # The buyer's order is now 31 days old.
    assert holders(rule.tag) == {"buyer"}
    assert ("TAG_REMOVED", "silent") in tag_events(rule.tag)


def test_a_rule_takes_back_only_the_tags_it_gave():
    rule = rule_for("复购客户", REPEAT_BUYER)
    by_hand = ContactFactory(name="by_hand")
    ContactTag.objects.create(contact=by_hand, tag=rule.tag, source=TagSource.MANUAL)

    outcome = tag_rule_apply(rule, now=NOW)

    assert outcome.removed == []
    assert holders(rule.tag) == {"by_hand"}


def test_an_inactive_rule_changes_nothing():
    rule = rule_for("沉睡", ASLEEP)
    rule.is_active = False
    rule.save()
    ContactFactory(first_added_at=NOW - 60 * DAY)

    assert tag_rule_apply(rule, now=NOW).added == []
    assert not ContactTag.objects.exists()


def test_checking_one_contact_leaves_everyone_else_alone():
    rule = rule_for("沉睡", ASLEEP)
    one = ContactFactory(name="one", first_added_at=NOW - 60 * DAY)
    ContactFactory(name="two", first_added_at=NOW - 60 * DAY)

    outcome = tag_rule_apply(rule, now=NOW, contact_id=one.pk)

    assert outcome.added == [one.pk]
    assert holders(rule.tag) == {"one"}
    rule.refresh_from_db()
    assert rule.evaluated_at is None  # a full run is still due


def test_evaluation_runs_in_sql_the_same_queries_for_3_or_60_contacts():
    rule = rule_for("沉睡", ASLEEP)

    def queries_for(count: int) -> int:
        ContactTag.objects.all().delete()
        Contact.objects.all().delete()
        ContactFactory.create_batch(count, first_added_at=NOW - 60 * DAY)
        with CaptureQueriesContext(connection) as queries:
            outcome = tag_rule_apply(rule, now=NOW)
        assert len(outcome.added) == count
        return len(queries)

    assert queries_for(3) == queries_for(60)


@pytest.fixture
def cast():
    """Three customers differing in every field a rule can look at."""
    vip1 = MemberTier.objects.create(name="VIP1", level=1)
    vip2 = MemberTier.objects.create(name="VIP2", level=2)
    douyin = ChannelCode.objects.create(name="抖音直播", state="douyin")
    store = ChannelCode.objects.create(name="门店", state="store")
    tea = Tag.objects.create(group=TagGroup.objects.create(name="兴趣"), name="茶")
    benefit = GroupFactory(type=Group.Type.BENEFIT)
    acquisition = GroupFactory(type=Group.Type.ACQUISITION)
    joined = NOW - 100 * DAY
    ann = ContactFactory(name="ann", tier=vip2, source_channel=douyin, first_added_at=joined)
    bob = ContactFactory(name="bob", first_added_at=joined)
    cat = ContactFactory(name="cat", tier=vip1, source_channel=store, first_added_at=joined)
    ContactTag.objects.create(contact=ann, tag=tea)
    GroupMembership.objects.create(group=benefit, contact=ann, joined_at=joined)
    GroupMembership.objects.create(
        group=benefit, contact=bob, joined_at=joined, left_at=joined + DAY
    )
    GroupMembership.objects.create(group=acquisition, contact=bob, joined_at=joined)
    for n, days_ago in enumerate([20, 10, 3]):
        paid(ann, f"A{n}", NOW - days_ago * DAY, fen=10_000)
    spoke(bob, NOW - 40 * DAY)
    paid(cat, "C1", NOW - 50 * DAY, fen=500)
    return {"douyin": douyin.pk, "tea": tea.pk, "acquisition": acquisition.pk}


def _c(field, op, value, **extra):
    return {"field": field, "op": op, "value": value, **extra}


@pytest.mark.parametrize(
    "conditions, expected",
    [
        ({"all": [_c("orders", ">=", 1)]}, {"ann", "cat"}),
        ({"all": [_c("orders", ">=", 1, within_days=30)]}, {"ann"}),
        ({"all": [_c("orders", "<=", 0, within_days=30)]}, {"bob", "cat"}),
        ({"all": [_c("orders", "!=", 1)]}, {"ann", "bob"}),
        ({"all": [_c("orders", "==", 3)]}, {"ann"}),
        ({"all": [_c("spend_fen", ">=", 10_000)]}, {"ann"}),
        ({"all": [_c("spend_fen", "<=", 500, within_days=60)]}, {"bob", "cat"}),
        ({"all": [_c("days_since_last_order", ">=", 30)]}, {"cat"}),
        ({"all": [_c("days_since_last_order", "<=", 5)]}, {"ann"}),
        ({"all": [_c("days_since_last_order", "==", 3)]}, {"ann"}),
        ({"all": [_c("days_since_last_activity", ">=", 30)]}, {"bob", "cat"}),
        ({"all": [_c("days_since_last_activity", "!=", 3)]}, {"bob", "cat"}),
        ({"all": [_c("days_since_last_activity", "==", 40)]}, {"bob"}),
        ({"all": [_c("tier_level", ">=", 1)]}, {"ann", "cat"}),
        ({"all": [_c("tier_level", "==", 0)]}, {"bob"}),
        ({"all": [_c("tier_level", "!=", 2)]}, {"bob", "cat"}),
        ({"all": [_c("in_group", "==", "benefit")]}, {"ann"}),
        ({"all": [_c("in_group", "!=", "benefit")]}, {"bob", "cat"}),
        ({"all": [_c("in_group", "==", "$acquisition")]}, {"bob"}),
        ({"all": [_c("source_channel", "==", "$douyin")]}, {"ann"}),
        ({"all": [_c("source_channel", "!=", "$douyin")]}, {"bob", "cat"}),
        ({"all": [_c("has_tag", "==", "$tea")]}, {"ann"}),
        ({"all": [_c("has_tag", "!=", "$tea")]}, {"bob", "cat"}),
        (
            {"any": [_c("tier_level", ">=", 2), _c("in_group", "==", "$acquisition")]},
            {"ann", "bob"},
        ),
        ({"all": [_c("orders", ">=", 1), _c("tier_level", "<=", 1)]}, {"cat"}),
    ],
)
def test_each_condition_picks_the_right_customers(cast, conditions, expected):
    ((combine, items),) = conditions.items()
    resolved = {
        combine: [
            {**c, "value": cast[c["value"][1:]]}
            if isinstance(c["value"], str) and c["value"].startswith("$")
            else c
            for c in items
        ]
    }
    rule = rule_for("规则", resolved)

    assert set(tag_rule_matching(rule, now=NOW).values_list("name", flat=True)) == expected


@pytest.mark.parametrize(
    "conditions, message",
    [
        ([], 'conditions: an object with exactly one key, "all" or "any"'),
        ({"both": []}, 'conditions: \'both\' is not "all" or "any"'),
        ({"all": []}, "conditions.all: a non-empty list of conditions"),
        ({"all": [_c("age", ">=", 2)]}, "conditions.all[0].field: 'age' is not one of"),
        (
            {"all": [_c("orders", ">=", 1), _c("orders", ">", 2)]},
            "conditions.all[1].op: '>' is not one of >=, <=, ==, != for orders",
        ),
        (
            {"any": [_c("orders", ">=", "2")]},
            "conditions.any[0].value: a whole number of 0 or more",
        ),
        ({"any": [_c("orders", ">=", True)]}, "conditions.any[0].value: a whole number"),
        ({"all": [_c("orders", ">=", -1)]}, "conditions.all[0].value: a whole number"),
        ({"all": [_c("orders", ">=", 1, within_days=0)]}, "conditions.all[0].within_days"),
        ({"all": [_c("tier_level", ">=", 1, within_days=7)]}, "only orders and spend_fen"),
        ({"all": [_c("in_group", ">=", "benefit")]}, "conditions.all[0].op: '>=' is not one of"),
        ({"all": [_c("in_group", "==", "vip")]}, "conditions.all[0].value: 'vip' is not a group"),
        ({"all": [_c("in_group", "==", 987_654)]}, "no group with id 987654"),
        ({"all": [_c("has_tag", "==", 987_654)]}, "no tag with id 987654"),
        ({"all": [_c("source_channel", "==", 987_654)]}, "no channel code with id 987654"),
        ({"all": [{"field": "orders", "op": ">="}]}, "conditions.all[0].value: missing"),
        ({"all": [{**_c("orders", ">=", 1), "days": 3}]}, "conditions.all[0]: unknown key(s) days"),
    ],
)
def test_a_bad_rule_is_refused_with_the_bad_part_named(conditions, message):
    with pytest.raises(ValueError) as refused:
        tag_rule_validate(conditions)

    assert message in str(refused.value)


def test_a_rule_cannot_depend_on_its_own_tag():
    rule = rule_for("茶友", REPEAT_BUYER)

    with pytest.raises(ValueError, match="cannot depend on its own tag"):
        tag_rule_validate({"all": [_c("has_tag", "==", rule.tag_id)]}, tag_id=rule.tag_id)


def test_the_scheduled_task_evaluates_a_rule_and_exits_cleanly_when_it_is_gone():
    rule = rule_for("沉睡", ASLEEP)
    ContactFactory(first_added_at=NOW - 365 * DAY)

    assert tag_rule_evaluate(rule.pk) == "1 added, 0 removed"
    assert tag_rule_evaluate(987_654) == "gone"


# --- the API ---------------------------------------------------------------------------


@pytest.fixture
def users(db):
    operator = User.objects.create_user("op", role=Role.OPERATOR)
    StaffFactory(user=operator)
    return {
        "operator": operator,
        "analyst": User.objects.create_user("ana", role=Role.ANALYST),
    }


def test_operators_save_rules_and_a_bad_condition_is_answered_with_its_place(
    client, users, django_capture_on_commit_callbacks
):
    tag = Tag.objects.create(group=TagGroup.objects.create(name="行为"), name="复购客户")
    client.force_login(users["operator"])
    bad = {"tag": tag.pk, "conditions": {"all": [_c("orders", ">", 2, within_days=30)]}}

    refused = client.post("/api/tag-rules/", bad, content_type="application/json")

    assert refused.status_code == 400
    assert refused.json() == {
        "conditions": ["conditions.all[0].op: '>' is not one of >=, <=, ==, != for orders"]
    }
    assert not TagRule.objects.exists()

    with django_capture_on_commit_callbacks() as queued:
        saved = client.post(
            "/api/tag-rules/",
            {"tag": tag.pk, "conditions": REPEAT_BUYER},
            content_type="application/json",
        )
    assert saved.status_code == 201
    assert saved.json()["tag_name"] == "复购客户"
    assert len(queued) == 1  # evaluated in the background once saved
    missing_tag = client.post(
        "/api/tag-rules/",
        {"tag": 987_654, "conditions": REPEAT_BUYER},
        content_type="application/json",
    )
    assert missing_tag.status_code == 400 and "tag" in missing_tag.json()


def test_a_preview_counts_the_contacts_a_rule_would_tag(client, users):
    ContactFactory.create_batch(3, first_added_at=NOW - 400 * DAY)
    ContactFactory(first_added_at=None)
    client.force_login(users["operator"])

    response = client.post(
        "/api/tag-rules/preview/", {"conditions": ASLEEP}, content_type="application/json"
    )

    assert response.status_code == 200
    assert response.json() == {"matching": 3}


def test_analysts_read_rules_but_cannot_write_them(client, users):
    rule = rule_for("沉睡", ASLEEP)
    client.force_login(users["analyst"])

    assert client.get("/api/tag-rules/").json()["results"][0]["conditions"] == ASLEEP
    assert (
        client.patch(
            f"/api/tag-rules/{rule.pk}/", {"is_active": False}, content_type="application/json"
        ).status_code
        == 403
    )
    assert TagRule.objects.get(pk=rule.pk).is_active


@pytest.mark.django_db(transaction=True)
def test_rule_tags_follow_behaviour_in_wecom_too(fake_wecom, celery_worker_thread):
    """GIVEN a rule tag that is one of WeCom's corp tags
    WHEN the rule gives it to a sleeper and later takes it back
    THEN WeCom's tags on the staff member's contact follow, via the worker."""
    group = TagGroup.objects.create(name="行为", wecom_group_id="etGRP-R")
    tag = Tag.objects.create(group=group, name="沉睡", wecom_tag_id="etTAG-SLEEP")
    rule = TagRule.objects.create(tag=tag, conditions=ASLEEP)
    staff = StaffFactory(userid="li")
    sleeper = ContactFactory(
        name="sleeper", external_userid="wm-sleeper", first_added_at=NOW - 60 * DAY
    )
    Follow.objects.create(contact=sleeper, staff=staff, added_at=NOW - 60 * DAY)
    fake_wecom.load_world(wecom_world())

    def wecom_tags():
        contact = next(
            c
            for c in fake_wecom.world_snapshot()["contacts"]
            if c["external_userid"] == "wm-sleeper"
        )
        return [t for f in contact["follow_users"] for t in f["tags"]]

    tag_rule_evaluate.delay(rule.pk)
    wait_for(lambda: wecom_tags() == ["etTAG-SLEEP"])

    spoke(sleeper, timezone.now())
    tag_rule_evaluate.delay(rule.pk)
    wait_for(lambda: wecom_tags() == [])
    assert not ContactTag.objects.filter(tag=tag).exists()
