"""Customer groups (客户群) and who is in them, with the full join/leave history."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from contacts.models import ChannelCode, Contact, Staff


class Group(models.Model):
    class Type(models.TextChoices):
        ACQUISITION = "acquisition", _("Acquisition group (引流群)")
        BENEFIT = "benefit", _("Benefit group (福利群)")
        FLASH = "flash", _("Flash group (快闪群)")

    class Model(models.TextChoices):
        MASS_PROMOTION = "mass_promotion", _("Mass promotion (群发推广型)")
        REFINED = "refined", _("Refined operation (精细化运营型)")
        SERVICE = "service", _("Customer service (客户服务型)")

    class Stage(models.TextChoices):
        FOUNDING = "founding", _("Founding (初建期)")
        ACTIVATION = "activation", _("Activation (激活期)")
        RETENTION = "retention", _("Retention (留存期)")
        MONETIZATION = "monetization", _("Monetization (变现期)")
        PROPAGATION = "propagation", _("Propagation (传播期)")

    chat_id = models.CharField(_("WeCom chat id"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=64, blank=True)
    owner = models.ForeignKey(
        Staff, verbose_name=_("owner"), on_delete=models.PROTECT, related_name="owned_groups"
    )
    admins = models.ManyToManyField(
        Staff, verbose_name=_("admins"), blank=True, related_name="administered_groups"
    )
    type = models.CharField(_("type"), max_length=16, choices=Type.choices, default=Type.BENEFIT)
    model = models.CharField(
        _("commercial model"), max_length=16, choices=Model.choices, default=Model.REFINED
    )
    stage = models.CharField(
        _("stage"), max_length=16, choices=Stage.choices, default=Stage.FOUNDING
    )
    notice = models.TextField(_("notice"), blank=True)
    rules = models.TextField(_("group rules"), blank=True)
    welcome_message = models.TextField(_("welcome message"), blank=True)
    member_cap = models.PositiveIntegerField(_("member cap"), default=500)
    # Our own labels (群标签), e.g. "母婴" or "华东": WeCom has none for groups. SOP plans
    # choose groups by them.
    labels = ArrayField(
        models.CharField(max_length=30), verbose_name=_("labels"), default=list, blank=True
    )
    join_codes = models.ManyToManyField(
        ChannelCode, verbose_name=_("group join codes"), blank=True, related_name="groups"
    )
    wecom_created_at = models.DateTimeField(_("created in WeCom"), null=True, blank=True)
    dismissed_at = models.DateTimeField(_("dismissed at"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("customer group")
        verbose_name_plural = _("customer groups")
        indexes = [
            models.Index(fields=["owner", "type"]),
            GinIndex(fields=["labels"], name="group_labels"),
        ]

    def __str__(self) -> str:
        return self.name or self.chat_id


class GroupMembership(models.Model):
    """One stay of one person in one group. A leave closes the row; a rejoin opens a new one.

    A member is either a customer (contact) or one of our staff (owner, admins, helpers).
    """

    class Role(models.TextChoices):
        OWNER = "owner", _("Owner")
        ADMIN = "admin", _("Admin")
        KOC = "koc", _("KOC (气氛组)")
        MEMBER = "member", _("Member")

    class JoinScene(models.IntegerChoices):
        # WeCom's JoinScene codes.
        INVITED = 0, _("Invited directly")
        LINK = 1, _("Invitation link")
        QR_CODE = 3, _("Scanned QR code")

    class QuitScene(models.IntegerChoices):
        LEFT = 0, _("Left")
        REMOVED = 1, _("Removed by owner or admin")

    # Indexed by membership_group_person, which begins with it.
    group = models.ForeignKey(
        Group, on_delete=models.CASCADE, related_name="memberships", db_index=False
    )
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, null=True, blank=True, related_name="memberships"
    )
    staff = models.ForeignKey(
        Staff, on_delete=models.CASCADE, null=True, blank=True, related_name="memberships"
    )
    role = models.CharField(_("role"), max_length=8, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(_("joined at"))
    join_scene = models.PositiveSmallIntegerField(
        _("join scene"), choices=JoinScene.choices, null=True, blank=True
    )
    invitor_userid = models.CharField(_("invited by"), max_length=64, blank=True)
    channel = models.ForeignKey(
        ChannelCode, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    left_at = models.DateTimeField(_("left at"), null=True, blank=True)
    quit_scene = models.PositiveSmallIntegerField(
        _("quit scene"), choices=QuitScene.choices, null=True, blank=True
    )

    class Meta:
        verbose_name = _("group membership")
        verbose_name_plural = _("group memberships")
        constraints = [
            models.CheckConstraint(
                condition=Q(contact__isnull=False, staff__isnull=True)
                | Q(contact__isnull=True, staff__isnull=False),
                name="membership_is_contact_or_staff",
            ),
            models.CheckConstraint(
                condition=Q(left_at__isnull=True) | Q(left_at__gte=models.F("joined_at")),
                name="membership_leaves_after_joining",
            ),
            # At most one open stay per person per group; history rows are closed ones.
            models.UniqueConstraint(
                fields=["group", "contact"],
                condition=Q(left_at__isnull=True, contact__isnull=False),
                name="membership_one_open_stay_per_contact",
            ),
            models.UniqueConstraint(
                fields=["group", "staff"],
                condition=Q(left_at__isnull=True, staff__isnull=False),
                name="membership_one_open_stay_per_staff",
            ),
        ]
        indexes = [
            # Covering and in the order of each person's stays in each group: a period's
            # stays of many groups (analytics.comparison) are read from the index alone and
            # summed person by person without sorting; one group's stays are a range of it.
            models.Index(
                fields=["group", "contact"],
                include=["joined_at", "left_at"],
                name="membership_group_person",
            ),
            models.Index(
                fields=["contact", "joined_at"],
                include=["group", "left_at"],
                name="membership_contact_time",
            ),
            # Customers who left lately, per group (the workbench's "losing members fast"
            # alert), from the index alone instead of every stay ever.
            models.Index(
                fields=["left_at"],
                include=["group", "contact"],
                condition=Q(left_at__isnull=False, contact__isnull=False),
                name="membership_left_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.contact or self.staff} @ {self.group}"

    @property
    def is_open(self) -> bool:
        return self.left_at is None


class AutoReply(models.Model):
    """A keyword auto-reply (关键词自动回复) in a group."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="auto_replies")
    keyword = models.CharField(_("keyword"), max_length=50)
    reply = models.TextField(_("reply"))
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("auto-reply")
        verbose_name_plural = _("auto-replies")
        constraints = [
            models.UniqueConstraint(fields=["group", "keyword"], name="auto_reply_keyword_once"),
        ]

    def __str__(self) -> str:
        return self.keyword


class Handover(models.Model):
    """A leaver's (or mover's) customers and groups passed to a successor (离职继承)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for WeCom")
        DONE = "done", _("Done")
        PARTLY = "partly", _("Partly done")
        FAILED = "failed", _("Failed")

    handover_staff = models.ForeignKey(
        Staff, on_delete=models.PROTECT, related_name="handovers_given"
    )
    takeover_staff = models.ForeignKey(
        Staff,
        verbose_name=_("successor for customers"),
        on_delete=models.PROTECT,
        related_name="handovers_taken",
    )
    # A leaver's groups may go to someone else than their customers; empty: the same person.
    group_takeover_staff = models.ForeignKey(
        Staff,
        verbose_name=_("successor for groups"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="group_handovers_taken",
    )
    resigned = models.BooleanField(_("staff member resigned"), default=True)
    status = models.CharField(
        _("status"), max_length=8, choices=Status.choices, default=Status.PENDING
    )
    # Per customer / group: WeCom's answer and, later, the transfer's result.
    customers = models.JSONField(_("customers"), default=dict, blank=True)
    groups = models.JSONField(_("groups"), default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    checked_at = models.DateTimeField(_("last checked"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("handover")
        verbose_name_plural = _("handovers")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.handover_staff} → {self.takeover_staff}"

    @property
    def group_successor(self) -> Staff:
        return self.group_takeover_staff or self.takeover_staff
