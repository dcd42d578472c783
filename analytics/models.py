"""The event log: every fact the product knows, one append-only row each; metrics read it.

Shaped for tens of millions of rows: a small-integer type, plain id columns without foreign
key checks (they would slow bulk loads and the log must outlive what it mentions), a BRIN
index on time that stays a few hundred kilobytes, and a 16-byte idempotency key.
"""

from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class EventType(models.IntegerChoices):
    # Stable numbers: they are stored. Add new ones; never renumber or reuse.
    CONTACT_ADDED = 1, _("Added staff")  # contact, staff, channel
    CONTACT_DELETED = 2, _("Deleted by staff")  # the staff member removed the customer
    CONTACT_BLOCKED = 3, _("Deleted staff")  # the customer removed the staff member (拉黑)
    CONTACT_EDITED = 4, _("Contact edited")
    CHANNEL_EXPOSURE = 5, _("Channel code exposure")  # channel; amount = exposures
    REFERRAL = 6, _("Brought a new contact")  # contact = referrer; payload: referred contact
    GROUP_CREATED = 10, _("Group created")
    GROUP_DISMISSED = 11, _("Group dismissed")
    GROUP_JOINED = 12, _("Joined group")  # payload: join scene
    GROUP_LEFT = 13, _("Left group")  # payload: quit scene
    GROUP_OWNER_CHANGED = 14, _("Group owner changed")
    GROUP_UPDATED = 15, _("Group name or notice changed")
    MESSAGE = 20, _("Spoke in group")  # amount = messages this row stands for (default 1)
    ORDER_PAID = 30, _("Ordered")  # amount = fen
    ORDER_REFUNDED = 31, _("Refunded")  # amount = fen
    TAG_ADDED = 40, _("Tag added")
    TAG_REMOVED = 41, _("Tag removed")
    TIER_CHANGED = 42, _("Tier changed")
    STAGE_CHANGED = 43, _("Lifecycle stage changed")
    POINTS_CHANGED = 44, _("Points changed")  # amount = delta
    DELIVERY_PLANNED = 50, _("Message planned")
    DELIVERY_SKIPPED = 51, _("Message skipped")
    DELIVERY_SENT = 52, _("Message sent")
    DELIVERY_CONFIRMED = 53, _("Message confirmed by staff")
    DELIVERY_DELIVERED = 54, _("Message delivered")
    DELIVERY_FAILED = 55, _("Message failed")
    CAMPAIGN_REACHED = 60, _("Reached by campaign")
    CAMPAIGN_JOINED = 61, _("Joined campaign")
    CAMPAIGN_COMPLETED = 62, _("Completed campaign")
    CAMPAIGN_REWARDED = 63, _("Rewarded by campaign")
    COUPON_ISSUED = 64, _("Coupon issued")
    COUPON_REDEEMED = 65, _("Coupon redeemed")
    CHECKED_IN = 66, _("Checked in")
    COST_RECORDED = 70, _("Cost recorded")  # amount = fen
    STAFF_RESIGNED = 80, _("Staff resigned")
    CONTACT_TRANSFERRED = 81, _("Contact transferred")


# Event kinds of which there are few: indexed by time on their own (event_rare_time).
RARE_TYPES = [
    EventType.CONTACT_BLOCKED,
    EventType.CHANNEL_EXPOSURE,
    EventType.REFERRAL,
    EventType.ORDER_PAID,
    EventType.ORDER_REFUNDED,
    EventType.COST_RECORDED,
]


def _id_column(model: str, verbose_name):
    # A join target for the ORM, but no constraint and no automatic index.
    return models.ForeignKey(
        model,
        verbose_name=verbose_name,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        blank=True,
        related_name="+",
    )


class Event(models.Model):
    id = models.BigAutoField(primary_key=True)
    type = models.PositiveSmallIntegerField(_("type"), choices=EventType.choices)
    occurred_at = models.DateTimeField(_("occurred at"))
    contact = _id_column("contacts.Contact", _("contact"))
    group = _id_column("groups.Group", _("group"))
    staff = _id_column("contacts.Staff", _("staff"))
    channel = _id_column("contacts.ChannelCode", _("channel"))
    campaign = _id_column("campaigns.Campaign", _("campaign"))
    amount = models.BigIntegerField(_("amount"), null=True, blank=True)
    payload = models.JSONField(_("details"), null=True, blank=True)
    # uuid5 of the caller's idempotency key: 16 bytes whatever the key's length.
    key = models.UUIDField(_("idempotency key"), unique=True)

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        indexes = [
            BrinIndex(fields=["occurred_at"], name="event_occurred_brin"),
            # Covering: a group's activity (distinct speakers, messages) over some days is read
            # from the index alone, without a heap visit per event; the group list sorts by it.
            models.Index(
                fields=["group", "occurred_at"],
                include=["type", "contact", "amount"],
                condition=Q(group__isnull=False),
                name="event_group_time_cover",
            ),
            models.Index(
                fields=["contact", "occurred_at"],
                condition=Q(contact__isnull=False),
                name="event_contact_time",
            ),
            # A channel code's exposures and arrivals (channel_code_figures): the few events
            # with a channel, read from the index alone instead of every event of the period.
            models.Index(
                fields=["channel", "occurred_at"],
                include=["type", "amount"],
                condition=Q(channel__isnull=False),
                name="event_channel_time",
            ),
            # The rare kinds over a period (orders, refunds, referrals, blocks, costs,
            # exposures): a few hundred thousand entries beside millions of messages, read
            # from the index alone (the id to fetch an order number only for refunds).
            models.Index(
                fields=["type", "occurred_at"],
                include=["id", "contact", "amount", "group", "channel", "campaign"],
                condition=Q(type__in=RARE_TYPES),
                name="event_rare_time",
            ),
            # A campaign's events (its funnel's reached people): a few tens of thousands
            # beside millions without a campaign, read from the index alone.
            models.Index(
                fields=["campaign", "type"],
                include=["contact"],
                condition=Q(campaign__isnull=False),
                name="event_campaign_type",
            ),
            # A contact's orders and refunds without reading their speech: order counts and
            # spend filters, tiers, customer types.
            models.Index(
                fields=["contact", "occurred_at"],
                condition=Q(type__in=[30, 31]),  # ORDER_PAID, ORDER_REFUNDED
                name="event_contact_orders",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} @ {self.occurred_at:%Y-%m-%d %H:%M}"


class DailyRollup(models.Model):
    """One Shanghai day's headline figures for one slice, kept by analytics.rollups so the
    dashboard never scans the event log for them.

    A slice is "all" (every group, a person counted once), "group:<id>", "type:<group type>",
    "owner:<staff id>" (the groups a staff member owns now) or "channel:<id>" (the contacts
    whose source channel it is). Each figure is metrics.py's for that one day; analytics.rollups
    says exactly how, and how a channel slice differs.
    """

    slice = models.CharField(_("slice"), max_length=40)
    day = models.DateField(_("day"))
    members_end = models.IntegerField(_("members at the end of the day"), default=0)
    joins = models.IntegerField(_("joins"), default=0)
    leaves = models.IntegerField(_("leaves"), default=0)
    speakers = models.IntegerField(_("speakers"), default=0)
    messages = models.BigIntegerField(_("messages"), default=0)
    buyers = models.IntegerField(_("buyers"), default=0)
    orders = models.IntegerField(_("orders"), default=0)
    revenue_fen = models.BigIntegerField(_("revenue (fen)"), default=0)
    exposures = models.BigIntegerField(_("channel code exposures"), default=0)

    class Meta:
        verbose_name = _("daily rollup")
        verbose_name_plural = _("daily rollups")
        constraints = [
            models.UniqueConstraint(fields=["slice", "day"], name="rollup_one_row_per_slice_day"),
        ]
        # A day is replaced whole (DELETE … WHERE day = d, then INSERT).
        indexes = [models.Index(fields=["day"], name="rollup_day")]

    def __str__(self) -> str:
        return f"{self.slice} {self.day}"


class RollupWatermark(models.Model):
    """How far (by event id) the event log has been read into the daily rollups."""

    name = models.CharField(_("name"), max_length=32, unique=True)
    event_id = models.BigIntegerField(_("last event id read"), default=0)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("rollup watermark")
        verbose_name_plural = _("rollup watermarks")

    def __str__(self) -> str:
        return f"{self.name} @ {self.event_id}"


class MultiRangeField(models.Field):
    """A PostgreSQL multirange column (`tstzmultirange`, `datemultirange`, …): a sorted set of
    disjoint ranges, tested with @> and && in SQL. Written and read by SQL only."""

    def __init__(self, *args, range_type: str, **kwargs):
        self.range_type = range_type
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["range_type"] = self.range_type
        return name, path, args, kwargs

    def db_type(self, connection) -> str:
        return self.range_type


class ContactActivity(models.Model):
    """Per customer, when they were in some group, on which days they spoke in one and on
    which they bought: what the numbers for every group at once and the lifecycle weeks
    count people by (analytics.activity keeps it from the memberships and the event log,
    and says how it agrees with analytics.metrics)."""

    contact_id = models.BigIntegerField(_("contact"), primary_key=True)
    # The union of their stays [joined_at, left_at) that last a while.
    member = MultiRangeField(_("member during"), range_type="tstzmultirange")
    # Every left_at, as a point: "left in P" even when a stay elsewhere covers it.
    lefts = MultiRangeField(_("left at"), range_type="tstzmultirange")
    # Stays that ended the instant they began (joined_at = left_at), as points.
    blips = MultiRangeField(_("momentary stays"), range_type="tstzmultirange")
    # Shanghai days with a MESSAGE in a group.
    spoke = MultiRangeField(_("spoke on"), range_type="datemultirange")
    # Shanghai days with an ORDER_PAID, in a group or not.
    bought = MultiRangeField(_("bought on"), range_type="datemultirange")

    class Meta:
        verbose_name = _("contact activity")
        verbose_name_plural = _("contact activity")

    def __str__(self) -> str:
        return str(self.contact_id)


class GroupSpeech(models.Model):
    """Per group and customer, the Shanghai days they spoke there: a group's distinct
    speakers over any period without its every message (analytics.activity keeps it)."""

    id = models.BigAutoField(primary_key=True)
    group_id = models.BigIntegerField(_("group"))
    contact_id = models.BigIntegerField(_("contact"))
    spoke = MultiRangeField(_("spoke on"), range_type="datemultirange")

    class Meta:
        verbose_name = _("group speech")
        verbose_name_plural = _("group speech")
        constraints = [
            models.UniqueConstraint(fields=["group_id", "contact_id"], name="group_speech_once")
        ]

    def __str__(self) -> str:
        return f"{self.group_id}: {self.contact_id}"


class GroupSortSnapshot(models.Model):
    """Every live group's comparison figures over one period, stored by the rollup refresh
    so that sorting a thousand groups by a figure reads them instead of computing them;
    read only while it still holds (analytics.group_snapshot)."""

    first = models.DateField(_("first day"))
    last = models.DateField(_("last day"))
    event_id = models.BigIntegerField(_("events read up to id"))
    # Events from event_id - OVERLAP_IDS on that could change the figures, when taken.
    seen = models.BigIntegerField(_("events seen"))
    # {group id: [its figures]} (analytics.group_snapshot)
    figures = models.JSONField(_("figures"))
    taken_at = models.DateTimeField(_("taken at"), auto_now=True)

    class Meta:
        verbose_name = _("group sort snapshot")
        verbose_name_plural = _("group sort snapshots")
        constraints = [
            models.UniqueConstraint(fields=["first", "last"], name="group_sort_snapshot_period")
        ]

    def __str__(self) -> str:
        return f"{self.first}…{self.last} @ {self.event_id}"
