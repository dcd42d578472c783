"""Reads behind the dashboard pages: headline counts for the workbench (工作台)."""

from datetime import date, datetime, time, timedelta

from django.db.models import Count, Q, Sum
from django.utils import timezone

from analytics.models import Event
from campaigns.models import Order
from contacts.models import Contact, Follow
from groups.models import Group, GroupMembership

# Windows are whole Asia/Shanghai calendar days ending today, today included.
RECENT_DAYS = 7
REVENUE_DAYS = 30


def _day_start(day: date) -> datetime:
    """00:00 of a calendar day in the product's time zone (Asia/Shanghai)."""
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_default_timezone())


def dashboard_headline(*, user, now: datetime | None = None) -> dict:
    """Headline counts for the workbench: one aggregate query per table, six in all.

    "Last N days" runs from 00:00 of the first day to 24:00 of today, Shanghai time. A person
    in several groups counts once as a group member.
    """
    # Every role sees every count for now; scoping operators to their own customers comes later.
    today = timezone.localdate(now or timezone.now(), timezone.get_default_timezone())
    recent_first_day = today - timedelta(days=RECENT_DAYS - 1)
    revenue_first_day = today - timedelta(days=REVENUE_DAYS - 1)
    recent_since = _day_start(recent_first_day)
    revenue_since = _day_start(revenue_first_day)
    until = _day_start(today + timedelta(days=1))

    contacts = Contact.objects.aggregate(
        total=Count("id"),
        added_recently=Count(
            "id", filter=Q(first_added_at__gte=recent_since, first_added_at__lt=until)
        ),
    )
    active_follows = Follow.objects.filter(
        deleted_by_staff_at__isnull=True, deleted_by_contact_at__isnull=True
    ).count()
    groups = Group.objects.filter(dismissed_at__isnull=True).count()
    group_members = GroupMembership.objects.filter(
        left_at__isnull=True, contact__isnull=False, group__dismissed_at__isnull=True
    ).aggregate(people=Count("contact", distinct=True))["people"]
    recent_events = Event.objects.filter(
        occurred_at__gte=recent_since, occurred_at__lt=until
    ).count()
    # Refunded orders bring no revenue, so only paid ones count.
    orders = Order.objects.filter(
        status=Order.Status.PAID, ordered_at__gte=revenue_since, ordered_at__lt=until
    ).aggregate(count=Count("id"), revenue_fen=Sum("amount_fen"))

    return {
        "today": today,
        "recent_first_day": recent_first_day,
        "revenue_first_day": revenue_first_day,
        "contacts": contacts["total"],
        "contacts_added_recently": contacts["added_recently"],
        "active_follows": active_follows,
        "groups": groups,
        "group_members": group_members,
        "recent_events": recent_events,
        "orders": orders["count"],
        "revenue_fen": orders["revenue_fen"] or 0,
    }
