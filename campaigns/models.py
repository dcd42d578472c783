"""Campaigns, the orders they and the groups bring, and what they cost."""

from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

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
    # The type's own settings (campaigns.rules says which, and checks them).
    rules = models.JSONField(_("rules"), default=dict, blank=True)
    # Who may take part: customers with any of these tags, in any of these tiers, in any of
    # these groups; no condition of a kind means everyone for that kind.
    audience_tags = models.ManyToManyField(
        "contacts.Tag", verbose_name=_("audience tags"), blank=True, related_name="+"
    )
    audience_tiers = models.ManyToManyField(
        "contacts.MemberTier", verbose_name=_("audience tiers"), blank=True, related_name="+"
    )
    audience_groups = models.ManyToManyField(
        Group, verbose_name=_("audience groups"), blank=True, related_name="+"
    )
    # The staff member whose WeCom account sends its announcements and progress messages.
    staff = models.ForeignKey(
        "contacts.Staff",
        verbose_name=_("sender"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_by = models.ForeignKey(
        "scrm.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

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


# --- taking part ------------------------------------------------------------------------------


class Participation(models.Model):
    """A customer in a campaign: joined, then completed its task, then rewarded."""

    class State(models.TextChoices):
        JOINED = "joined", pgettext_lazy("campaign", "Joined")
        COMPLETED = "completed", _("Completed")
        REWARDED = "rewarded", _("Rewarded")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="participants")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="participations")
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default="joined")
    progress = models.PositiveIntegerField(_("progress"), default=0)  # invites, check-ins, …
    # Who shared the link this customer came in by (their referrer in this campaign).
    referrer = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    joined_at = models.DateTimeField(_("joined at"))
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    rewarded_at = models.DateTimeField(_("rewarded at"), null=True, blank=True)

    class Meta:
        verbose_name = _("participation")
        verbose_name_plural = _("participations")
        constraints = [
            models.UniqueConstraint(fields=["campaign", "contact"], name="participation_once")
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}: {self.contact_id} ({self.state})"


class Rejection(models.Model):
    """Something a campaign refused, and why: every anti-abuse decision leaves one."""

    class Reason(models.TextChoices):
        NOT_RUNNING = "not_running", _("Campaign not running")
        NOT_IN_AUDIENCE = "not_in_audience", _("Not in the audience")
        SELF_REFERRAL = "self_referral", _("Invited themselves")
        ALREADY_COUNTED = "already_counted", _("Already counted once (left and came back)")
        NOT_NEW = "not_new", _("Not a new customer")
        LEFT_IN_WINDOW = "left_in_window", _("Left or deleted staff within the window")
        RATE_LIMITED = "rate_limited", _("Too many attempts")
        SOLD_OUT = "sold_out", _("Sold out")
        LIMIT_REACHED = "limit_reached", _("Limit per customer reached")
        BUDGET_SPENT = "budget_spent", _("Budget spent")
        EXPIRED = "expired", _("Expired")
        ALREADY_USED = "already_used", _("Already used")
        BELOW_THRESHOLD = "below_threshold", _("Below the threshold")
        DUPLICATE = "duplicate", _("Already done")
        BAD_TOKEN = "bad_token", _("Link not valid")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="rejections")
    contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(_("reason"), max_length=24, choices=Reason.choices)
    detail = models.CharField(_("detail"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("rejection")
        verbose_name_plural = _("rejections")
        indexes = [models.Index(fields=["campaign", "reason"])]

    def __str__(self) -> str:
        return f"{self.campaign_id}: {self.reason}"


class Reward(models.Model):
    """A reward given, once: `key` says what for (a completion, a draw, an order)."""

    class Kind(models.TextChoices):
        POINTS = "points", _("Points")
        COUPON = "coupon", _("Coupon")
        COMMISSION = "commission", _("Commission")
        GIFT = "gift", _("Gift")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="rewards")
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="rewards")
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    amount = models.BigIntegerField(_("amount"), default=0)  # points, or fen
    description = models.CharField(_("description"), max_length=100, blank=True)
    coupon = models.ForeignKey(
        "Coupon", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    key = models.CharField(_("idempotency key"), max_length=120, unique=True)
    created_at = models.DateTimeField(_("given at"), auto_now_add=True)

    class Meta:
        verbose_name = _("reward")
        verbose_name_plural = _("rewards")
        indexes = [models.Index(fields=["campaign", "contact"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} → {self.contact_id}"


# --- referral, invite task, group fission ------------------------------------------------------


class Invite(models.Model):
    """A new customer a participant brought (任务宝 / 分销): counted once they stayed."""

    class State(models.TextChoices):
        PENDING = "pending", _("Waiting for the window")
        COUNTED = "counted", _("Counted")
        REJECTED = "rejected", _("Not counted")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="invites")
    inviter = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    invitee = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default="pending")
    reason = models.CharField(
        _("reason"), max_length=24, choices=Rejection.Reason.choices, blank=True
    )
    invited_at = models.DateTimeField(_("invited at"))
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)

    class Meta:
        verbose_name = _("invite")
        verbose_name_plural = _("invites")
        constraints = [
            # A customer counts for one inviter once per campaign, however often they rejoin.
            models.UniqueConstraint(fields=["campaign", "invitee"], name="invite_once"),
        ]
        indexes = [models.Index(fields=["state", "invited_at"])]

    def __str__(self) -> str:
        return f"{self.inviter_id} → {self.invitee_id} ({self.state})"


class Commission(models.Model):
    """分销 commission on an attributed order, one row per level of the referral chain."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="commissions")
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="commissions")
    beneficiary = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="+")
    level = models.PositiveSmallIntegerField(_("level"))  # 1 = the buyer's own referrer
    amount_fen = models.BigIntegerField(_("amount (fen)"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("commission")
        verbose_name_plural = _("commissions")
        constraints = [
            models.UniqueConstraint(fields=["order", "level"], name="commission_once_per_level")
        ]

    def __str__(self) -> str:
        return f"L{self.level} {self.amount_fen} → {self.beneficiary_id}"


# --- check-in, group-buy, contest -------------------------------------------------------------


class CheckIn(models.Model):
    """One day of a check-in streak (打卡); a makeup fills a missed day later."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="checkins")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    day = models.DateField(_("day"))  # Shanghai
    makeup = models.BooleanField(_("makeup"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("check-in")
        verbose_name_plural = _("check-ins")
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "contact", "day"], name="checkin_once_a_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} {self.day}"


class GroupBuy(models.Model):
    """A 拼团: opened by a leader, unlocked when `size` people join before the deadline."""

    class State(models.TextChoices):
        OPEN = "open", pgettext_lazy("group-buy", "Open")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="group_buys")
    leader = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    size = models.PositiveSmallIntegerField(_("people needed"))
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default="open")
    deadline = models.DateTimeField(_("deadline"))
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("group-buy")
        verbose_name_plural = _("group-buys")
        indexes = [models.Index(fields=["state", "deadline"])]

    def __str__(self) -> str:
        return f"{self.campaign_id}/{self.pk} ({self.state})"


class GroupBuyMember(models.Model):
    """A seat held in a group-buy: released (released_at) if the group fails."""

    group_buy = models.ForeignKey(GroupBuy, on_delete=models.CASCADE, related_name="members")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    joined_at = models.DateTimeField(auto_now_add=True)
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("group-buy member")
        verbose_name_plural = _("group-buy members")
        constraints = [
            models.UniqueConstraint(fields=["group_buy", "contact"], name="groupbuy_seat_once")
        ]

    def __str__(self) -> str:
        return f"{self.group_buy_id}: {self.contact_id}"


class Entry(models.Model):
    """A contest (比赛) entry."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="entries")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    title = models.CharField(_("title"), max_length=100)
    content = models.TextField(pgettext_lazy("contest entry", "content"), blank=True)
    votes = models.PositiveIntegerField(_("votes"), default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("entry")
        verbose_name_plural = _("entries")
        constraints = [models.UniqueConstraint(fields=["campaign", "contact"], name="entry_once")]

    def __str__(self) -> str:
        return self.title


class Vote(models.Model):
    """One vote per person per (Shanghai) day in a contest."""

    entry = models.ForeignKey(Entry, on_delete=models.CASCADE, related_name="vote_rows")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    voter = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    day = models.DateField(_("day"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("vote")
        verbose_name_plural = _("votes")
        constraints = [
            models.UniqueConstraint(fields=["campaign", "voter", "day"], name="vote_once_a_day")
        ]

    def __str__(self) -> str:
        return f"{self.voter_id} → {self.entry_id} {self.day}"


# --- coupons, flash sale, lottery --------------------------------------------------------------


class CouponBatch(models.Model):
    """A kind of coupon: its value, minimum spend, how many there are and for how long."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="coupon_batches")
    name = models.CharField(_("name"), max_length=100)
    value_fen = models.PositiveBigIntegerField(_("value (fen)"))
    min_spend_fen = models.PositiveBigIntegerField(_("minimum spend (fen)"), default=0)
    stock = models.PositiveIntegerField(_("left to issue"))  # taken atomically, never < 0
    per_contact = models.PositiveSmallIntegerField(_("per customer"), default=1)
    valid_days = models.PositiveSmallIntegerField(_("valid for days"), default=30)
    # A public code anyone may type to claim one (by code); blank: issued only.
    claim_code = models.CharField(_("claim code"), max_length=32, blank=True)

    class Meta:
        verbose_name = _("coupon batch")
        verbose_name_plural = _("coupon batches")

    def __str__(self) -> str:
        return self.name


class Coupon(models.Model):
    """One coupon in a customer's hands: redeemed once, or expired."""

    class State(models.TextChoices):
        ISSUED = "issued", _("Issued")
        REDEEMED = "redeemed", _("Redeemed")
        EXPIRED = "expired", _("Expired")

    batch = models.ForeignKey(CouponBatch, on_delete=models.PROTECT, related_name="coupons")
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="coupons")
    code = models.CharField(_("code"), max_length=32, unique=True)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default="issued")
    issued_at = models.DateTimeField(_("issued at"))
    expires_at = models.DateTimeField(_("expires at"))
    redeemed_at = models.DateTimeField(_("redeemed at"), null=True, blank=True)
    order = models.ForeignKey(
        Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="coupons"
    )
    key = models.CharField(_("idempotency key"), max_length=120, unique=True)

    class Meta:
        verbose_name = _("coupon")
        verbose_name_plural = _("coupons")
        indexes = [models.Index(fields=["contact", "state"])]

    def __str__(self) -> str:
        return self.code


class Stock(models.Model):
    """Units on offer (秒杀 items, lottery prizes): taken one at a time by a conditional
    UPDATE, so concurrent claims never take more than there is."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="stock")
    name = models.CharField(_("name"), max_length=100)
    price_fen = models.PositiveBigIntegerField(_("price (fen)"), default=0)
    total = models.PositiveIntegerField(_("total"))
    remaining = models.PositiveIntegerField(_("remaining"))
    # Lottery: relative odds of drawing this prize (0 for a flash-sale item).
    weight = models.PositiveIntegerField(_("odds weight"), default=0)

    class Meta:
        verbose_name = _("stock")
        verbose_name_plural = _("stock")
        constraints = [
            models.CheckConstraint(
                condition=Q(remaining__lte=models.F("total")), name="stock_within_total"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.remaining}/{self.total}"


class Claim(models.Model):
    """A unit taken: a flash-sale purchase right or a lottery draw (stock null: no prize)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="claims")
    stock = models.ForeignKey(
        Stock, on_delete=models.PROTECT, null=True, blank=True, related_name="claims"
    )
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(_("idempotency key"), max_length=120, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("claim")
        verbose_name_plural = _("claims")
        indexes = [models.Index(fields=["campaign", "contact"])]

    def __str__(self) -> str:
        return f"{self.contact_id}: {self.stock_id}"
