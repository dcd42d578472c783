"""A member's history in a group survives leaving and rejoining."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError

from analytics.models import Event, EventType
from groups.models import GroupMembership
from groups.services import membership_join, membership_leave
from tests.factories import ContactFactory, GroupFactory

T0 = datetime(2026, 10, 1, 1, 30, tzinfo=UTC)


@pytest.mark.django_db
def test_leaving_and_rejoining_keeps_the_first_stay_and_opens_a_new_one():
    group, contact = GroupFactory(), ContactFactory()

    membership_join(group=group, contact=contact, joined_at=T0, join_scene=3)
    membership_leave(group=group, contact=contact, left_at=T0 + timedelta(days=2), quit_scene=0)
    membership_join(group=group, contact=contact, joined_at=T0 + timedelta(days=5), join_scene=0)

    stays = list(GroupMembership.objects.filter(group=group, contact=contact).order_by("joined_at"))
    assert [(s.joined_at, s.left_at) for s in stays] == [
        (T0, T0 + timedelta(days=2)),
        (T0 + timedelta(days=5), None),
    ]
    assert [s.join_scene for s in stays] == [3, 0]
    assert stays[0].quit_scene == 0
    events = Event.objects.filter(group=group, contact=contact).order_by("occurred_at")
    assert [e.type for e in events] == [
        EventType.GROUP_JOINED,
        EventType.GROUP_LEFT,
        EventType.GROUP_JOINED,
    ]


@pytest.mark.django_db
def test_a_repeated_join_or_leave_changes_nothing():
    group, contact = GroupFactory(), ContactFactory()

    _, created = membership_join(group=group, contact=contact, joined_at=T0, key="cb:1")
    _, created_again = membership_join(group=group, contact=contact, joined_at=T0, key="cb:1")
    membership_leave(group=group, contact=contact, left_at=T0 + timedelta(hours=1), key="cb:2")
    assert membership_leave(group=group, contact=contact, left_at=T0, key="cb:2") is None

    assert (created, created_again) == (True, False)
    assert GroupMembership.objects.count() == 1
    assert Event.objects.count() == 2


@pytest.mark.django_db
def test_the_database_refuses_two_open_stays_for_one_person():
    group, contact = GroupFactory(), ContactFactory()
    GroupMembership.objects.create(group=group, contact=contact, joined_at=T0)

    with pytest.raises(IntegrityError):
        GroupMembership.objects.create(group=group, contact=contact, joined_at=T0)
