"""The demo history is deterministic, loads once, and reads like real private-domain life."""

import hashlib
import re
from collections import Counter, defaultdict
from datetime import date
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Count, Max, Sum

from analytics.demo import (
    ALREADY_LOADED,
    LOADED,
    OTHER_DEMO_LOADED,
    SHANGHAI,
    demo_config,
    demo_data_load,
)
from analytics.models import Event, EventType
from campaigns.models import Campaign, Cost, Order
from contacts.models import (
    ChannelCode,
    Contact,
    ContactTag,
    Follow,
    MemberTier,
    PointsEntry,
    Staff,
    Tag,
    TagGroup,
)
from groups.models import Group, GroupMembership

END = date(2026, 3, 1)
# Long and big enough for rarer shapes: rejoins, dormancy, third orders.
LONGER = {"contacts": 400, "days": 45}
# Ordered so that deleting in turn never trips a PROTECT foreign key.
TABLES = [
    Event,
    Order,
    Cost,
    Campaign,
    PointsEntry,
    ContactTag,
    GroupMembership,
    Group,
    Follow,
    Contact,
    ChannelCode,
    Staff,
    Tag,
    TagGroup,
    MemberTier,
]


def load(seed: int = 42, **overrides):
    options = {"contacts": 150, "days": 20, "end_date": END} | overrides
    return demo_data_load(demo_config(seed=seed, **options))


def wipe() -> None:
    for model in TABLES:
        model.objects.all().delete()


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in TABLES}


def canonical(rows) -> list[str]:
    return sorted(repr(row) for row in rows)  # rows hold None, which doesn't sort


def digest() -> str:
    """A fingerprint of the data in natural keys only, so database ids don't matter."""
    contacts = dict(Contact.objects.values_list("pk", "external_userid"))
    staff = dict(Staff.objects.values_list("pk", "userid"))
    groups = dict(Group.objects.values_list("pk", "chat_id"))
    channels = dict(ChannelCode.objects.values_list("pk", "state"))
    campaigns = dict(Campaign.objects.values_list("pk", "name"))
    parts = [
        canonical(
            (
                c.external_userid, c.name, c.gender, c.tier.name, c.stage, c.influence,
                c.opted_out, c.points_balance, c.first_added_at, c.last_active_at,
                channels.get(c.source_channel_id), contacts.get(c.referrer_id),
            )
            for c in Contact.objects.select_related("tier")
        ),
        canonical(
            (groups[m.group_id], contacts.get(m.contact_id), staff.get(m.staff_id), m.role,
             m.joined_at, m.left_at, m.join_scene, m.quit_scene)
            for m in GroupMembership.objects.all()
        ),
        canonical(
            (o.order_no, contacts[o.contact_id], o.amount_fen, o.ordered_at,
             groups.get(o.group_id), channels.get(o.channel_id), campaigns.get(o.campaign_id),
             contacts.get(o.referrer_id), o.used_coupon)
            for o in Order.objects.all()
        ),
        canonical(
            (contacts[p.contact_id], p.idempotency_key, p.delta, p.balance_after, p.created_at)
            for p in PointsEntry.objects.all()
        ),
        canonical(
            (contacts[f.contact_id], staff[f.staff_id], f.added_at, f.state,
             f.deleted_by_contact_at, f.deleted_by_staff_at)
            for f in Follow.objects.all()
        ),
        canonical(
            (e.type, e.occurred_at, contacts.get(e.contact_id), groups.get(e.group_id),
             staff.get(e.staff_id), channels.get(e.channel_id), campaigns.get(e.campaign_id),
             e.amount)
            for e in Event.objects.all()
        ),
    ]  # fmt: skip
    return hashlib.sha256(repr(parts).encode()).hexdigest()


@pytest.mark.django_db
def test_the_same_seed_gives_the_same_history_and_another_seed_a_different_one():
    load(seed=42)
    first = digest()
    wipe()
    load(seed=42)
    again = digest()
    wipe()
    load(seed=43)
    other = digest()

    assert again == first
    assert other != first


@pytest.mark.django_db
def test_a_second_run_with_the_same_arguments_adds_nothing():
    first = load()
    before = counts()

    second = load()

    assert (first.outcome, first.entities_created) == (LOADED, True)
    assert (second.outcome, second.entities_created, second.events_added) == (
        ALREADY_LOADED,
        False,
        0,
    )
    assert counts() == before


@pytest.mark.django_db
def test_an_interrupted_event_load_is_completed_by_running_again():
    load()
    complete = counts()
    last_days = Event.objects.order_by("-occurred_at").values_list("occurred_at", flat=True)[500]
    Event.objects.filter(occurred_at__gte=last_days).delete()  # as if the load died there

    result = load()

    assert result.outcome == LOADED and not result.entities_created
    assert counts() == complete


@pytest.mark.django_db
def test_a_run_with_other_arguments_leaves_the_loaded_demo_alone():
    load(seed=42)
    before = counts()

    result = load(seed=7)

    assert result.outcome == OTHER_DEMO_LOADED
    assert counts() == before


@pytest.mark.django_db
def test_someone_left_a_group_and_came_back_in_a_second_stay():
    load(**LONGER)

    stays = defaultdict(list)
    for stay in GroupMembership.objects.filter(contact__isnull=False).order_by("joined_at"):
        stays[(stay.group_id, stay.contact_id)].append(stay)
    rejoined = [history for history in stays.values() if len(history) > 1]

    assert rejoined
    for history in rejoined:
        for earlier, later in zip(history, history[1:], strict=False):
            assert earlier.left_at is not None and earlier.left_at <= later.joined_at


@pytest.mark.django_db
def test_most_members_never_speak_while_a_few_speak_a_lot():
    load(**LONGER)

    members = GroupMembership.objects.filter(contact__isnull=False)
    member_pairs = set(members.values_list("group_id", "contact_id"))
    spoken = {
        (row["group_id"], row["contact_id"]): row["messages"]
        for row in Event.objects.filter(type=EventType.MESSAGE)
        .values("group_id", "contact_id")
        .annotate(messages=Sum("amount"))
    }
    lurkers = member_pairs - set(spoken)
    loudest = sorted(spoken.values(), reverse=True)
    top_tenth = loudest[: max(1, len(loudest) // 10)]

    assert set(spoken) <= member_pairs
    assert len(lurkers) > len(member_pairs) / 2
    assert sum(top_tenth) > 0.4 * sum(loudest)  # a few KOCs carry the conversation
    assert loudest[0] >= 20 * loudest[len(loudest) // 2]


@pytest.mark.django_db
def test_every_message_falls_in_waking_hours_while_the_speaker_was_in_the_group():
    load()

    for event in Event.objects.filter(type=EventType.MESSAGE):
        local = event.occurred_at.astimezone(SHANGHAI)
        assert 7 <= local.hour < 23
        assert (
            GroupMembership.objects.filter(
                group_id=event.group_id,
                contact_id=event.contact_id,
                joined_at__lte=event.occurred_at,
            )
            .exclude(left_at__lte=event.occurred_at)
            .exists()
        )


@pytest.mark.django_db
def test_every_order_is_credited_to_a_group_the_buyer_was_in_when_ordering():
    load()

    orders = Order.objects.all()
    credited = orders.filter(group__isnull=False)
    assert credited.count() > orders.count() / 2
    for order in credited:
        assert (
            GroupMembership.objects.filter(
                group_id=order.group_id,
                contact_id=order.contact_id,
                joined_at__lte=order.ordered_at,
            )
            .exclude(left_at__lte=order.ordered_at)
            .exists()
        ), order.order_no
    paid_events = Event.objects.filter(type=EventType.ORDER_PAID)
    assert canonical(paid_events.values_list("group_id", "amount")) == canonical(
        orders.values_list("group_id", "amount_fen")
    )


@pytest.mark.django_db
def test_points_balances_equal_the_ledger_and_never_go_below_zero():
    load()

    ledger = defaultdict(list)
    for entry in PointsEntry.objects.order_by("created_at", "idempotency_key"):
        ledger[entry.contact_id].append(entry)
    assert ledger
    for contact in Contact.objects.all():
        running = 0
        for entry in ledger.get(contact.pk, []):
            running += entry.delta
            assert entry.balance_after == running >= 0
        assert contact.points_balance == running


@pytest.mark.django_db
def test_open_memberships_equal_joins_minus_leaves_in_the_event_log():
    load()

    events = Event.objects.filter(type__in=[EventType.GROUP_JOINED, EventType.GROUP_LEFT])
    net = Counter()
    for group_id, event_type in events.values_list("group_id", "type"):
        net[group_id] += 1 if event_type == EventType.GROUP_JOINED else -1
    open_stays = Counter(
        GroupMembership.objects.filter(contact__isnull=False, left_at__isnull=True).values_list(
            "group_id", flat=True
        )
    )

    assert +net == open_stays
    assert sum(open_stays.values()) > 0


@pytest.mark.django_db
def test_tiers_follow_the_tier_thresholds_for_each_contacts_orders():
    load(**LONGER)

    tiers = {tier.level: tier for tier in MemberTier.objects.all()}
    orders = {
        row["contact_id"]: row
        for row in Order.objects.filter(status=Order.Status.PAID)
        .values("contact_id")
        .annotate(count=Count("pk"), spend=Sum("amount_fen"), biggest=Max("amount_fen"))
    }
    for contact in Contact.objects.select_related("tier"):
        row = orders.get(contact.pk, {"count": 0, "spend": 0, "biggest": 0})
        vip3, vip2 = tiers[3], tiers[2]
        if row["count"] >= vip3.min_orders and row["spend"] >= vip3.min_spend_fen:
            expected = 3
        elif row["count"] >= vip2.min_orders and row["biggest"] >= vip2.min_order_fen:
            expected = 2
        else:
            expected = 1
        assert contact.tier.level == expected, contact.external_userid
    assert {c.tier.level for c in Contact.objects.select_related("tier")} == {1, 2, 3}


@pytest.mark.django_db
def test_lifecycle_stages_and_behaviour_tags_follow_what_people_did():
    load(**LONGER)

    order_counts = dict(
        Order.objects.values("contact_id").annotate(n=Count("pk")).values_list("contact_id", "n")
    )
    repeat_tagged = set(
        ContactTag.objects.filter(tag__name="复购客户").values_list("contact_id", flat=True)
    )
    for contact in Contact.objects.prefetch_related("follows"):
        ordered = order_counts.get(contact.pk, 0)
        assert (contact.pk in repeat_tagged) == (ordered >= 2)
        gone = all(not follow.is_active for follow in contact.follows.all())
        assert (contact.stage == Contact.Stage.CHURNED) == gone
        if contact.stage == Contact.Stage.REPEAT:
            assert ordered >= 2
        if contact.stage == Contact.Stage.FIRST_ORDER:
            assert ordered == 1
        if contact.stage == Contact.Stage.NEW:
            assert ordered == 0
    assert Contact.objects.filter(stage=Contact.Stage.DORMANT).exists()


@pytest.mark.django_db
def test_each_code_was_seen_more_often_than_it_brought_people_in():
    load()

    exposures = Event.objects.filter(type=EventType.CHANNEL_EXPOSURE)
    assert exposures.count() == ChannelCode.objects.count() * 20  # one per code per day
    for channel in ChannelCode.objects.all():
        seen = exposures.filter(channel=channel).aggregate(n=Sum("amount"))["n"]
        came = Event.objects.filter(
            channel=channel, type__in=[EventType.CONTACT_ADDED, EventType.GROUP_JOINED]
        ).count()
        assert seen > came


@pytest.mark.django_db
def test_the_demo_operator_owns_several_groups_and_follows_many_contacts():
    load()

    operator = Staff.objects.get(userid="demo-staff-01")

    assert operator.owned_groups.count() >= 2
    assert operator.follows.count() >= Contact.objects.count() / 5
    assert GroupMembership.objects.filter(staff=operator, role="owner").count() == (
        operator.owned_groups.count()
    )


@pytest.mark.django_db
def test_the_command_loads_the_demo_and_prints_a_summary():
    out = StringIO()
    options = {"contacts": 150, "days": 20, "end_date": END, "stdout": out}
    call_command("demo_data", **options)
    call_command("demo_data", **options)

    printed = out.getvalue()
    assert "demo data already loaded" in printed
    assert re.search(r"contacts\s+150\n", printed)
    assert "MESSAGE" in printed
    assert Contact.objects.count() == 150


@pytest.mark.django_db
def test_the_scale_preset_logs_a_row_per_message_as_the_chat_archive_would():
    load(scale=True, contacts=300, days=10)

    messages = Event.objects.filter(type=EventType.MESSAGE)
    assert messages.exists()
    assert set(messages.values_list("amount", flat=True)) == {1}
    # A talker's burst in one group on one day is several rows, each its own fact.
    busiest = (
        messages.values("contact", "group", "occurred_at__date")
        .annotate(rows=Count("id"))
        .order_by("-rows")
        .first()
    )
    assert busiest["rows"] > 1
