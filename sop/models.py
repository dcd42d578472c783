"""SOP plans and steps, the content library, and the delivery ledger the planner writes."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from contacts.models import Contact, MemberTier, Staff, Tag
from groups.models import Group


class ContentItem(models.Model):
    """A piece of the content library (素材库): text with variables and attachments."""

    class Purpose(models.TextChoices):
        ACTIVATION = "activation", _("Activation")
        CONVERSION = "conversion", pgettext_lazy("content purpose", "Conversion")
        BRAND = "brand", _("Brand")

    title = models.CharField(_("title"), max_length=100)
    purpose = models.CharField(_("purpose"), max_length=16, choices=Purpose.choices)
    category = models.CharField(_("category"), max_length=50, blank=True)
    # May use {name}, {tier} and {coupon}; see sop.content.render.
    text = models.TextField(_("text"), blank=True)
    # [{"kind": "image" | "link" | "miniprogram", ...}], checked by sop.content.validate.
    attachments = models.JSONField(_("attachments"), default=list, blank=True)
    archived = models.BooleanField(_("archived"), default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("content item")
        verbose_name_plural = _("content library")
        ordering = ["purpose", "category", "title"]

    def __str__(self) -> str:
        return self.title


class Plan(models.Model):
    """An SOP: a day/week rhythm for groups, a journey relative to an event, or a one-off
    broadcast (what campaigns use to reach people under the same budget)."""

    class Kind(models.TextChoices):
        GROUP = "group", _("Group plan")
        JOURNEY = "journey", _("Customer journey")
        BROADCAST = "broadcast", _("One-off broadcast")

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        ACTIVE = "active", pgettext_lazy("plan status", "Active")
        PAUSED = "paused", _("Paused")
        ARCHIVED = "archived", _("Archived")

    class Trigger(models.TextChoices):
        CONTACT_ADDED = "contact_added", _("Added a staff member")
        GROUP_JOINED = "group_joined", _("Joined a group")
        ORDER_PAID = "order_paid", _("Placed an order")
        INACTIVE = "inactive", _("Went quiet (no speech or order)")

    class HolidayPolicy(models.TextChoices):
        SEND = "send", _("Send on public holidays")
        SKIP = "skip", _("Skip public holidays")
        SHIFT = "shift", _("Move to the next working day")

    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.DRAFT
    )
    # Decides who gets a contact's or group's slot when the push budget is short.
    priority = models.PositiveSmallIntegerField(
        _("priority"), default=50, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    holiday_policy = models.CharField(
        _("public holidays"),
        max_length=8,
        choices=HolidayPolicy.choices,
        default=HolidayPolicy.SEND,
    )
    # Set for an operator's plan: it reaches only that staff member's groups and customers.
    staff = models.ForeignKey(
        Staff,
        verbose_name=_("limited to staff member"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="sop_plans",
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        verbose_name=_("campaign"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="sop_plans",
    )

    # Which groups a group plan reaches: hand-picked groups, else every live group matching
    # the filters (an empty filter matches all).
    groups = models.ManyToManyField(
        Group, verbose_name=_("groups"), blank=True, related_name="sop_plans"
    )
    group_types = ArrayField(
        models.CharField(max_length=16, choices=Group.Type.choices),
        verbose_name=_("group types"),
        default=list,
        blank=True,
    )
    group_stages = ArrayField(
        models.CharField(max_length=16, choices=Group.Stage.choices),
        verbose_name=_("group stages"),
        default=list,
        blank=True,
    )
    owners = models.ManyToManyField(
        Staff, verbose_name=_("group owners"), blank=True, related_name="+"
    )
    group_labels = ArrayField(
        models.CharField(max_length=30),
        verbose_name=_("group labels (any of)"),
        default=list,
        blank=True,
    )

    # Who a journey or broadcast reaches.
    trigger = models.CharField(_("trigger"), max_length=16, choices=Trigger.choices, blank=True)
    inactive_days = models.PositiveSmallIntegerField(
        _("days without activity"), default=30, validators=[MinValueValidator(1)]
    )
    contacts = models.ManyToManyField(
        Contact, verbose_name=_("customers"), blank=True, related_name="+"
    )
    tags_all = models.ManyToManyField(
        Tag, verbose_name=_("has all of these tags"), blank=True, related_name="+"
    )
    tags_any = models.ManyToManyField(
        Tag, verbose_name=_("has any of these tags"), blank=True, related_name="+"
    )
    tags_none = models.ManyToManyField(
        Tag, verbose_name=_("has none of these tags"), blank=True, related_name="+"
    )
    tiers = models.ManyToManyField(
        MemberTier, verbose_name=_("member tiers"), blank=True, related_name="+"
    )
    stages = ArrayField(
        models.CharField(max_length=16, choices=Contact.Stage.choices),
        verbose_name=_("lifecycle stages"),
        default=list,
        blank=True,
    )

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    activated_at = models.DateTimeField(_("activated at"), null=True, blank=True)
    # The planner has planned every slot up to here (its watermark).
    planned_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("SOP plan")
        verbose_name_plural = _("SOP plans")
        indexes = [models.Index(fields=["status", "kind"])]

    def __str__(self) -> str:
        return self.name


class Step(models.Model):
    """One message of a plan and when it goes out.

    Group plans: at `at_time` (Shanghai) on the chosen weekdays (none = every day),
    optionally only to groups in `group_stages`. Journeys: `offset_days` after the trigger,
    at `at_time` if given (else the trigger's time plus `offset_minutes`), moved forward to
    the first of `weekdays` if given (e.g. "the next weekend morning"). Broadcasts: `send_at`.
    """

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    name = models.CharField(_("name"), max_length=100, blank=True)
    content = models.ForeignKey(
        ContentItem, verbose_name=_("content"), on_delete=models.PROTECT, related_name="steps"
    )
    at_time = models.TimeField(_("time of day"), null=True, blank=True)
    # 0 = Monday … 6 = Sunday.
    weekdays = ArrayField(
        models.PositiveSmallIntegerField(validators=[MaxValueValidator(6)]),
        verbose_name=_("weekdays"),
        default=list,
        blank=True,
    )
    group_stages = ArrayField(
        models.CharField(max_length=16, choices=Group.Stage.choices),
        verbose_name=_("only groups in stages"),
        default=list,
        blank=True,
    )
    offset_days = models.PositiveSmallIntegerField(_("days after the trigger"), default=0)
    offset_minutes = models.PositiveIntegerField(_("minutes after the trigger"), default=0)
    send_at = models.DateTimeField(_("send at"), null=True, blank=True)
    only_if_no_order_since_trigger = models.BooleanField(
        _("only if no order since the trigger"), default=False
    )
    coupon_code = models.CharField(_("coupon code"), max_length=64, blank=True)
    # Steps with deliveries are switched off rather than deleted, so history stays whole.
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("SOP step")
        verbose_name_plural = _("SOP steps")
        ordering = ["plan", "position", "id"]

    def __str__(self) -> str:
        return self.name or f"{self.plan} #{self.position}"


class Enrolment(models.Model):
    """A contact entering a journey: the trigger its steps are timed from."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="enrolments")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    # The staff member the trigger came through (the one who sends), when known.
    staff = models.ForeignKey(Staff, on_delete=models.SET_NULL, null=True, related_name="+")
    trigger_at = models.DateTimeField(_("triggered at"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("journey enrolment")
        verbose_name_plural = _("journey enrolments")
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "contact", "trigger_at"], name="enrolment_once_per_trigger"
            ),
        ]
        indexes = [models.Index(fields=["plan", "trigger_at"])]

    def __str__(self) -> str:
        return f"{self.plan_id}: {self.contact_id} @ {self.trigger_at:%Y-%m-%d %H:%M}"


class SkipReason(models.TextChoices):
    """Why a delivery did not go out (or was held): every one is recorded."""

    QUIET_HOURS = "quiet_hours", _("Held for quiet hours")
    HOLIDAY = "holiday", _("Public holiday")
    HOLIDAY_SHIFTED = "holiday_shifted", _("Moved past a public holiday")
    BUDGET_DAY = "budget_day", _("Daily push budget used up")
    BUDGET_WEEK = "budget_week", _("Weekly push budget used up")
    WECOM_CAP = "wecom_cap", _("WeCom's mass-message cap reached")
    OPTED_OUT = "opted_out", _("Opted out")
    BLOCKED = "blocked", _("No active staff relation (deleted or blocked)")
    NO_SENDER = "no_sender", _("No active staff member to send")
    GROUP_GONE = "group_gone", _("Group dismissed")
    CONDITIONS = "conditions", _("No longer matches the plan's conditions")
    ORDERED = "ordered", _("Ordered since the trigger")
    PLAN_PAUSED = "plan_paused", _("Plan paused")
    EXPIRED = "expired", _("Missed by more than the catch-up window")
    WECOM_REFUSED = "wecom_refused", _("WeCom refused")
    NOT_FRIEND = "not_friend", _("No longer a contact of the sender")
    RECEIVER_LIMIT = "receiver_limit", _("Over the receiver's WeCom limit")
    NOT_CONFIRMED = "not_confirmed", _("The staff member never confirmed")


class MassMessage(models.Model):
    """One WeCom mass-message task (add_msg_template): one sender, one content, many
    receivers. A task with a msgid is never sent again."""

    class ChatType(models.TextChoices):
        GROUP = "group", _("Groups")
        SINGLE = "single", _("Customers")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")  # the call went out; its answer is not stored yet
        SENT = "sent", _("Waiting for the staff member")
        CONFIRMED = "confirmed", _("Confirmed by the staff member")
        FINISHED = "finished", _("Finished")
        FAILED = "failed", _("Failed")

    sender = models.ForeignKey(Staff, on_delete=models.PROTECT, related_name="mass_messages")
    chat_type = models.CharField(max_length=8, choices=ChatType.choices)
    content = models.ForeignKey(ContentItem, on_delete=models.PROTECT, related_name="+")
    text = models.TextField(blank=True)  # as rendered for these receivers
    attachments = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    msgid = models.CharField(max_length=64, null=True, blank=True, unique=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    queued_at = models.DateTimeField(null=True, blank=True)  # last put on the broker
    send_started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    reminded_at = ArrayField(models.DateTimeField(), default=list, blank=True)
    polled_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("mass message")
        verbose_name_plural = _("mass messages")
        indexes = [
            models.Index(
                fields=["status", "created_at"],
                condition=Q(status__in=["queued", "sending", "sent", "confirmed"]),
                name="massmessage_open",
            ),
            models.Index(fields=["sender", "created_at"]),
        ]

    def __str__(self) -> str:
        return self.msgid or f"#{self.pk}"


class Delivery(models.Model):
    """One message for one target in one slot: the ledger that makes sending exactly-once.

    The slot is the Shanghai day for group plans, the enrolment for journeys, and the step
    itself for broadcasts, so editing a step's time never plans the same slot twice.
    """

    class Status(models.TextChoices):
        PLANNED = "planned", _("Planned")
        QUEUED = "queued", _("Queued")
        SENT = "sent", _("Sent to the staff member")
        CONFIRMED = "confirmed", _("Confirmed by the staff member")
        DELIVERED = "delivered", _("Delivered")
        SKIPPED = "skipped", _("Skipped")
        FAILED = "failed", _("Failed")

    # The planner writes these rows by the hundred thousand from rows it has just joined,
    # so the references hold by construction: no database FK checks (they cost more than
    # the insert itself), and no index where another one already leads with the column.
    plan = models.ForeignKey(
        Plan,
        on_delete=models.CASCADE,
        related_name="deliveries",
        db_constraint=False,
        db_index=False,  # (plan, due_at) serves
    )
    step = models.ForeignKey(
        Step,
        on_delete=models.PROTECT,
        related_name="deliveries",
        db_constraint=False,
        db_index=False,  # the unique constraint leads with step
    )
    slot_day = models.DateField(null=True, blank=True)
    enrolment = models.ForeignKey(
        Enrolment,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="deliveries",
        db_constraint=False,
        # Only deleting an enrolment looks deliveries up by it, and the unique constraint
        # serves that (a skip scan over its leading columns); journeys write 200,000 a run.
        db_index=False,
    )
    group = models.ForeignKey(
        Group,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="deliveries",
        db_constraint=False,
        db_index=False,  # delivery_group_day serves
    )
    contact = models.ForeignKey(
        Contact,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="deliveries",
        db_constraint=False,
        db_index=False,  # delivery_contact_day serves
    )
    sender = models.ForeignKey(
        Staff,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="deliveries",
        db_constraint=False,
    )
    priority = models.PositiveSmallIntegerField(default=50)
    slot_at = models.DateTimeField(_("slot"))  # when the plan meant it to go
    due_at = models.DateTimeField(_("due"))  # after quiet hours and holidays
    due_day = models.DateField()  # Shanghai day of due_at: the budget's day
    due_week = models.DateField()  # the Monday of due_day's week: the budget's week
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PLANNED)
    reason = models.CharField(max_length=16, choices=SkipReason.choices, blank=True)
    detail = models.CharField(max_length=200, blank=True)
    message = models.ForeignKey(
        MassMessage,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="deliveries",
        db_constraint=False,
        db_index=False,  # delivery_message serves, without the planned rows' NULLs
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        constraints = [
            models.UniqueConstraint(
                fields=["step", "slot_day", "enrolment", "group", "contact"],
                nulls_distinct=False,
                name="delivery_once_per_slot",
            ),
            models.CheckConstraint(
                condition=Q(group__isnull=True, contact__isnull=False)
                | Q(group__isnull=False, contact__isnull=True),
                name="delivery_one_target",
            ),
        ]
        indexes = [
            models.Index(fields=["due_at"], condition=Q(status="planned"), name="delivery_due"),
            models.Index(
                fields=["contact", "due_day"],
                condition=Q(contact__isnull=False),
                name="delivery_contact_day",
            ),
            models.Index(
                fields=["group", "due_day"],
                condition=Q(group__isnull=False),
                name="delivery_group_day",
            ),
            models.Index(fields=["plan", "due_at"]),
            models.Index(
                fields=["message"],
                condition=Q(message__isnull=False),
                name="delivery_message",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.step_id} → {self.group_id or self.contact_id} @ {self.slot_at}"
