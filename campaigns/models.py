"""Campaigns, the orders they and the groups bring, and what they cost."""

from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from contacts.models import ChannelCode, Contact
from groups.models import Group


class Campaign(models.Model):
    class Type(models.TextChoices):
        REFERRAL = "referral", _("Referral / distribution (分销)")
        INVITE_TASK = "invite_task", _("Invite task (任务宝)")
        GROUP_FISSION = "group_fission", _("Group fission (群裂变)")
        CHECKIN = "checkin", _("Check-in streak (打卡)")
        GROUP_BUY = "group_buy", _("Group-buy (拼团)")
        COUPON = "coupon", _("Coupons (优惠券)")
        FLASH_SALE = "flash_sale", _("Flash sale (秒杀)")
        LOTTERY = "lottery", _("Lottery (抽奖)")
        SPEND_AND_GET = "spend_and_get", _("Spend and get (满赠)")
        POINTS = "points", _("Points for sharing (积分裂变)")
        CONTEST = "contest", _("Vote / contest (比赛)")

    class State(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SCHEDULED = "scheduled", _("Scheduled")
        RUNNING = "running", _("Running")
        ENDED = "ended", _("Ended")

    name = models.CharField(_("name"), max_length=100)
    type = models.CharField(_("type"), max_length=16, choices=Type.choices)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.DRAFT)
    starts_at = models.DateTimeField(_("starts at"), null=True, blank=True)
    ends_at = models.DateTimeField(_("ends at"), null=True, blank=True)
    budget_fen = models.PositiveBigIntegerField(_("budget (fen)"), default=0)
    rules = models.JSONField(_("rules"), default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True)
                | Q(starts_at__isnull=True)
                | Q(ends_at__gt=models.F("starts_at")),
                name="campaign_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Order(models.Model):
    """An order posted by the shop or imported, with what brought it."""

    class Status(models.TextChoices):
        PAID = "paid", _("Paid")
        REFUNDED = "refunded", _("Refunded")

    order_no = models.CharField(_("order number"), max_length=64, unique=True)
    contact = models.ForeignKey(
        Contact, verbose_name=_("buyer"), on_delete=models.PROTECT, related_name="orders"
    )
    amount_fen = models.PositiveBigIntegerField(_("amount (fen)"))
    items = models.JSONField(_("items"), default=list, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default="paid")
    used_coupon = models.BooleanField(_("paid with a coupon"), default=False)
    ordered_at = models.DateTimeField(_("ordered at"))
    group = models.ForeignKey(
        Group, on_delete=models.SET_NULL, null=True, blank=True, related_name="orders"
    )
    channel = models.ForeignKey(
        ChannelCode, on_delete=models.SET_NULL, null=True, blank=True, related_name="orders"
    )
    campaign = models.ForeignKey(
        Campaign, on_delete=models.SET_NULL, null=True, blank=True, related_name="orders"
    )
    referrer = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="referred_orders"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        indexes = [
            models.Index(fields=["contact", "ordered_at"]),
            models.Index(fields=["ordered_at"]),
        ]

    def __str__(self) -> str:
        return self.order_no


class Cost(models.Model):
    """Money spent on a group, channel or campaign over a period, for ROI and CLV."""

    amount_fen = models.PositiveBigIntegerField(_("amount (fen)"))
    period_start = models.DateField(_("from"))
    period_end = models.DateField(_("to"))
    group = models.ForeignKey(Group, on_delete=models.CASCADE, null=True, blank=True)
    channel = models.ForeignKey(ChannelCode, on_delete=models.CASCADE, null=True, blank=True)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, null=True, blank=True)
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("cost")
        verbose_name_plural = _("costs")
        constraints = [
            models.CheckConstraint(
                condition=Q(period_end__gte=models.F("period_start")), name="cost_period_order"
            ),
            models.CheckConstraint(
                condition=Q(group__isnull=False)
                | Q(channel__isnull=False)
                | Q(campaign__isnull=False),
                name="cost_has_a_target",
            ),
        ]

    def __str__(self) -> str:
        return f"¥{Decimal(self.amount_fen) / 100:.2f} {self.period_start}–{self.period_end}"
