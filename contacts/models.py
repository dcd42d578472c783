"""Staff, contacts and what we know of them: follows, tags, tiers, points, channel codes."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Staff(models.Model):
    """A WeCom member (成员) who follows customers and owns groups; may have a dashboard login."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        RESIGNED = "resigned", _("Resigned")

    userid = models.CharField(_("WeCom userid"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=64)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("login"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="staff",
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE
    )
    resigned_at = models.DateTimeField(_("resigned at"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("staff member")
        verbose_name_plural = _("staff")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def role(self) -> str | None:
        """The login's role (admin / operator / analyst); None for staff without a login."""
        return self.user.role if self.user_id else None


class ChannelCode(models.Model):
    """A QR code (渠道活码 / 群活码) that brings people to a staff member or into groups.

    WeCom hands our ``state`` back on the add or join event, which is how a newcomer is tied
    to the code that brought them. Exposures are counted as events for the join rate.
    """

    class Kind(models.TextChoices):
        STAFF = "staff", _("Add staff (渠道活码)")
        GROUP = "group", _("Join group (群活码)")

    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices, default=Kind.STAFF)
    # WeCom caps `state` at 30 characters.
    state = models.CharField(_("state"), max_length=30, unique=True)
    config_id = models.CharField(_("WeCom config id"), max_length=64, blank=True)
    qr_url = models.URLField(_("QR code URL"), max_length=500, blank=True)
    staff = models.ManyToManyField(Staff, verbose_name=_("staff"), blank=True)
    tags = models.ManyToManyField(
        "Tag", verbose_name=_("tags given on arrival"), blank=True, related_name="+"
    )
    welcome_message = models.TextField(_("welcome message"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("channel code")
        verbose_name_plural = _("channel codes")

    def __str__(self) -> str:
        return self.name


class MemberTier(models.Model):
    """A member tier (会员等级): reached by thresholds, grants rights (权益)."""

    name = models.CharField(_("name"), max_length=32, unique=True)
    level = models.PositiveSmallIntegerField(_("level"), unique=True)
    min_orders = models.PositiveIntegerField(_("minimum orders"), default=0)
    min_order_fen = models.PositiveBigIntegerField(
        _("minimum single order (fen)"),
        default=0,
        help_text=_("e.g. 100 fen: a first order of at least 1 yuan"),
    )
    min_spend_fen = models.PositiveBigIntegerField(_("minimum total spend (fen)"), default=0)
    rights = models.JSONField(_("rights"), default=list, blank=True)

    class Meta:
        verbose_name = _("member tier")
        verbose_name_plural = _("member tiers")
        ordering = ["level"]

    def __str__(self) -> str:
        return self.name


class Contact(models.Model):
    """A WeCom external contact (客户)."""

    class Gender(models.IntegerChoices):
        # WeCom's codes.
        UNKNOWN = 0, _("Unknown")
        MALE = 1, _("Male")
        FEMALE = 2, _("Female")

    class Stage(models.TextChoices):
        NEW = "new", _("New")
        FIRST_ORDER = "first_order", _("First order")
        REPEAT = "repeat", _("Repeat buyer")
        DORMANT = "dormant", _("Dormant")
        CHURNED = "churned", _("Churned")

    class Influence(models.TextChoices):
        NONE = "", _("None")
        KOC = "koc", _("KOC")
        KOL = "kol", _("KOL")

    external_userid = models.CharField(_("external userid"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=64, blank=True)
    gender = models.PositiveSmallIntegerField(
        _("gender"), choices=Gender.choices, default=Gender.UNKNOWN
    )
    avatar = models.URLField(_("avatar"), max_length=500, blank=True)
    unionid = models.CharField(_("unionid"), max_length=64, blank=True)
    source_channel = models.ForeignKey(
        ChannelCode,
        verbose_name=_("source channel"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="contacts",
    )
    referrer = models.ForeignKey(
        "self",
        verbose_name=_("referrer"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="referrals",
    )
    tier = models.ForeignKey(
        MemberTier,
        verbose_name=_("tier"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="contacts",
    )
    stage = models.CharField(
        _("lifecycle stage"), max_length=16, choices=Stage.choices, default=Stage.NEW
    )
    influence = models.CharField(
        _("KOC/KOL"), max_length=3, choices=Influence.choices, default=Influence.NONE, blank=True
    )
    opted_out = models.BooleanField(_("opted out"), default=False)
    opted_out_at = models.DateTimeField(_("opted out at"), null=True, blank=True)
    points_balance = models.BigIntegerField(_("points balance"), default=0)
    first_added_at = models.DateTimeField(_("first added at"), null=True, blank=True)
    last_active_at = models.DateTimeField(_("last active at"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        constraints = [
            # The ledger may never go below zero, whatever concurrent redemptions try.
            models.CheckConstraint(
                condition=Q(points_balance__gte=0), name="contact_points_not_negative"
            ),
        ]
        indexes = [
            models.Index(fields=["stage"]),
            # The contact list's usual narrowing: tier and stage together.
            models.Index(fields=["stage", "tier"], name="contact_stage_tier"),
            models.Index(fields=["last_active_at"]),
        ]

    def __str__(self) -> str:
        return self.name or self.external_userid


class Follow(models.Model):
    """The follow relation (跟进关系): a contact added by a staff member, with WeCom's remark."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="follows")
    staff = models.ForeignKey(Staff, on_delete=models.PROTECT, related_name="follows")
    remark = models.CharField(_("remark"), max_length=20, blank=True)  # WeCom: ≤ 20 chars
    description = models.CharField(_("description"), max_length=150, blank=True)
    added_at = models.DateTimeField(_("added at"))
    add_way = models.PositiveSmallIntegerField(_("add way"), default=0)
    state = models.CharField(_("channel state"), max_length=30, blank=True)
    channel = models.ForeignKey(
        ChannelCode, on_delete=models.SET_NULL, null=True, blank=True, related_name="follows"
    )
    # The staff member removed the customer (del_external_contact).
    deleted_by_staff_at = models.DateTimeField(_("deleted by staff at"), null=True, blank=True)
    # The customer removed (blocked) the staff member (del_follow_user).
    deleted_by_contact_at = models.DateTimeField(_("deleted by customer at"), null=True, blank=True)

    class Meta:
        verbose_name = _("follow relation")
        verbose_name_plural = _("follow relations")
        constraints = [
            models.UniqueConstraint(fields=["contact", "staff"], name="follow_unique_pair"),
        ]
        indexes = [models.Index(fields=["staff", "contact"])]

    def __str__(self) -> str:
        return f"{self.staff} → {self.contact}"

    @property
    def is_active(self) -> bool:
        return self.deleted_by_staff_at is None and self.deleted_by_contact_at is None


class TagSource(models.TextChoices):
    MANUAL = "manual", _("Manual")
    WECOM = "wecom", _("WeCom")
    RULE = "rule", _("Rule")
    IMPORT = "import", _("Import")


class TagGroup(models.Model):
    """A tag group (标签组), e.g. basic attributes, behaviour, interest."""

    name = models.CharField(_("name"), max_length=30, unique=True)
    wecom_group_id = models.CharField(
        _("WeCom tag group id"), max_length=64, unique=True, null=True, blank=True
    )
    source = models.CharField(
        _("source"), max_length=8, choices=TagSource.choices, default=TagSource.MANUAL
    )
    order = models.PositiveIntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("tag group")
        verbose_name_plural = _("tag groups")
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    group = models.ForeignKey(TagGroup, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(_("name"), max_length=30)
    wecom_tag_id = models.CharField(
        _("WeCom tag id"), max_length=64, unique=True, null=True, blank=True
    )
    source = models.CharField(
        _("source"), max_length=8, choices=TagSource.choices, default=TagSource.MANUAL
    )
    order = models.PositiveIntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ["group__order", "order", "name"]
        constraints = [
            models.UniqueConstraint(fields=["group", "name"], name="tag_unique_name_in_group"),
        ]

    def __str__(self) -> str:
        return self.name


class ContactTag(models.Model):
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="contact_tags")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="contact_tags")
    source = models.CharField(max_length=8, choices=TagSource.choices, default=TagSource.MANUAL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact", "tag"], name="contact_tag_unique"),
        ]
        # Tag filters walk tag → contacts; the unique index covers contact → tags.
        indexes = [models.Index(fields=["tag", "contact"])]

    def __str__(self) -> str:
        return f"{self.contact_id}: {self.tag_id}"


class PointsEntry(models.Model):
    """One line of the points ledger (积分流水); the balance on Contact is the running sum."""

    class Reason(models.TextChoices):
        CHECKIN = "checkin", _("Check-in")
        SPEAK = "speak", _("Speaking")
        INVITE = "invite", _("Inviting")
        ORDER = "order", _("Order")
        REDEEM = "redeem", _("Redemption")
        REWARD = "reward", _("Campaign reward")
        ADJUST = "adjust", _("Adjustment")
        EXPIRE = "expire", _("Expiry")

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="points_entries")
    delta = models.BigIntegerField(_("points"))
    balance_after = models.BigIntegerField(_("balance after"))
    reason = models.CharField(_("reason"), max_length=16, choices=Reason.choices)
    note = models.CharField(_("note"), max_length=200, blank=True)
    # Retried jobs and callbacks must not earn twice.
    idempotency_key = models.CharField(max_length=128, unique=True)
    # When the earning action happened (a check-in, an order), not when a job got to it: the
    # daily cap counts by this Shanghai day.
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        verbose_name = _("points entry")
        verbose_name_plural = _("points ledger")
        indexes = [models.Index(fields=["contact", "-created_at"])]
        constraints = [
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="points_entry_balance"),
        ]

    def __str__(self) -> str:
        return f"{self.delta:+d} ({self.get_reason_display()})"


class ContactNote(models.Model):
    """An operator's remark on a customer (备注): who they are, what they bought or asked."""

    class Kind(models.TextChoices):
        IDENTITY = "identity", _("Identity")
        PURCHASE = "purchase", _("Purchases")
        INQUIRY = "inquiry", _("Inquiries")
        PREFERENCE = "preference", _("Preferences")

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="notes")
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    text = models.TextField(_("text"))
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("remark")
        verbose_name_plural = _("remarks")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.text[:30]}"


class TagRule(models.Model):
    """A rule that gives a tag to whoever meets its conditions and takes it back after."""

    tag = models.OneToOneField(Tag, on_delete=models.CASCADE, related_name="rule")
    # e.g. {"all": [{"field": "orders", "within_days": 30, "op": ">=", "value": 2}]}
    conditions = models.JSONField(_("conditions"))
    is_active = models.BooleanField(_("active"), default=True)
    evaluated_at = models.DateTimeField(_("last evaluated"), null=True, blank=True)

    class Meta:
        verbose_name = _("tag rule")
        verbose_name_plural = _("tag rules")

    def __str__(self) -> str:
        return f"→ {self.tag}"


class PointsRule(models.Model):
    """How many points an action earns, with a daily cap per contact."""

    reason = models.CharField(
        _("action"), max_length=16, choices=PointsEntry.Reason.choices, unique=True
    )
    points = models.PositiveIntegerField(_("points"))
    daily_cap = models.PositiveIntegerField(_("daily cap"), default=0, help_text=_("0: no cap"))
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("points rule")
        verbose_name_plural = _("points rules")

    def __str__(self) -> str:
        return f"{self.get_reason_display()} +{self.points}"


class MallItem(models.Model):
    """Something in the points mall (积分商城)."""

    name = models.CharField(_("name"), max_length=100)
    points_cost = models.PositiveIntegerField(_("points"))
    stock = models.PositiveIntegerField(_("stock"), default=0)
    is_active = models.BooleanField(_("on sale"), default=True)
    description = models.TextField(_("description"), blank=True)

    class Meta:
        verbose_name = _("points-mall item")
        verbose_name_plural = _("points mall")

    def __str__(self) -> str:
        return self.name


class Redemption(models.Model):
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="redemptions")
    item = models.ForeignKey(MallItem, on_delete=models.PROTECT, related_name="redemptions")
    points = models.PositiveIntegerField(_("points"))
    entry = models.OneToOneField(PointsEntry, on_delete=models.PROTECT, related_name="redemption")
    created_at = models.DateTimeField(_("redeemed at"), auto_now_add=True)

    class Meta:
        verbose_name = _("redemption")
        verbose_name_plural = _("redemptions")

    def __str__(self) -> str:
        return f"{self.contact} → {self.item}"
