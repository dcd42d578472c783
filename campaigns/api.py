"""REST API of the operators' campaign section: campaigns, their state moves, funnel and ROI,
participants and rejections, and what each type needs beyond them (coupon batches, stock,
contest entries and draw, group-buys, commissions, invites, streaks). Everyone reads; only
managers change. Thin: selectors read, services write."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response

from analytics.api import RatioSerializer, ratio_data
from campaigns import engagement, offers, selectors, services
from campaigns.models import (
    Campaign,
    Commission,
    Coupon,
    CouponBatch,
    GroupBuy,
    Order,
    Participation,
    Rejection,
    Stock,
)
from campaigns.types import rules_check
from contacts.models import MemberTier, Staff, Tag
from groups.models import Group

State = Campaign.State
LIVE = (State.SCHEDULED, State.RUNNING)


class CampaignPermission(BasePermission):
    """A login for every call; campaigns are brand-wide, so only managers change them."""

    message = "Only managers change campaigns."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or selectors.campaign_may_change(user)


def _rules_api_error(exc: DjangoValidationError) -> ApiValidationError:
    """rules_check / campaign_check errors keyed by the field they name; a rule's own name
    is no field of the campaign, so it is nested under "rules"."""
    if not hasattr(exc, "error_dict"):
        return ApiValidationError({"rules": exc.messages})
    fields = set(CampaignSerializer.Meta.fields)
    errors: dict = {}
    for name, messages in exc.message_dict.items():
        if name in fields:
            errors.setdefault(name, []).extend(messages)
        else:
            errors.setdefault("rules", {})[name] = messages
    return ApiValidationError(errors)


class CampaignSerializer(serializers.ModelSerializer):
    type = serializers.ChoiceField(choices=Campaign.Type.choices)
    state = serializers.ChoiceField(
        choices=State.choices, read_only=True, help_text="changed only by POST …/move/"
    )
    budget_fen = serializers.IntegerField(
        min_value=0, required=False, help_text="caps money rewards, in fen; 0: no cap"
    )
    rules = serializers.JSONField(
        required=False, help_text="an object with the settings of the campaign's type"
    )
    audience_tags = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Tag.objects.all(), required=False
    )
    audience_tiers = serializers.PrimaryKeyRelatedField(
        many=True, queryset=MemberTier.objects.all(), required=False
    )
    audience_groups = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Group.objects.all(), required=False
    )
    staff = serializers.PrimaryKeyRelatedField(
        queryset=Staff.objects.all(),
        required=False,
        allow_null=True,
        help_text="the staff member whose WeCom account sends its announcements",
    )

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "type",
            "state",
            "starts_at",
            "ends_at",
            "budget_fen",
            "rules",
            "audience_tags",
            "audience_tiers",
            "audience_groups",
            "staff",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate_type(self, value: str) -> str:
        campaign = self.instance
        if campaign is not None and campaign.state != State.DRAFT and value != campaign.type:
            raise ApiValidationError("The type stays once the campaign left draft.")
        return value

    def validate_rules(self, value):
        return {} if value is None else value

    def validate(self, data):
        campaign = self.instance
        if campaign is not None and campaign.state == State.ENDED:
            raise ApiValidationError({"state": ["An ended campaign cannot be changed."]})

        def current(name, default=None):
            return data.get(name, getattr(campaign, name) if campaign else default)

        campaign_type, rules = current("type"), current("rules", {})
        starts_at, ends_at = current("starts_at"), current("ends_at")
        live = campaign is not None and campaign.state in LIVE
        if not live and starts_at and ends_at and ends_at <= starts_at:
            raise ApiValidationError({"ends_at": ["The end must come after the start."]})
        if isinstance(rules, dict) and not selectors.type_available(campaign_type):
            raise ApiValidationError({"type": ["This campaign type is not available yet."]})
        try:
            if live:  # it runs or is about to: it must stay fit to run
                services.campaign_check(
                    Campaign(type=campaign_type, rules=rules, starts_at=starts_at, ends_at=ends_at)
                )
            else:
                rules_check(campaign_type, rules)
        except DjangoValidationError as exc:
            raise _rules_api_error(exc) from None
        return data


# Listed inline in the schema: the campaign's state enum already names these values.
@extend_schema_field({"type": "string", "enum": State.values})
class TargetStateField(serializers.ChoiceField):
    pass


class MoveSerializer(serializers.Serializer):
    to = TargetStateField(
        choices=State.choices, help_text="the state to move to (services.TRANSITIONS)"
    )


class CampaignFunnelStepSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="reached, joined, completed, rewarded or ordered")
    label = serializers.CharField()
    count = serializers.IntegerField(help_text="people")
    conversion = RatioSerializer(
        allow_null=True, help_text="this step ÷ the step before; null for the first"
    )


class CampaignResultsSerializer(serializers.Serializer):
    funnel = CampaignFunnelStepSerializer(many=True)
    roi = RatioSerializer(help_text="attributed sales (fen) ÷ recorded cost (fen)")
    first_day = serializers.DateField(help_text="first Shanghai day of the ROI period")
    last_day = serializers.DateField(help_text="last Shanghai day of the ROI period")
    budget_fen = serializers.IntegerField()
    money_spent_fen = serializers.IntegerField(
        help_text="money rewards given (what the budget caps)"
    )


class RejectionCountSerializer(serializers.Serializer):
    # Plain text in the schema: an enum named "reason" is taken by the points ledger's.
    reason = serializers.CharField(help_text=f"one of {', '.join(Rejection.Reason.values)}")
    label = serializers.CharField()
    count = serializers.IntegerField()


class ParticipantSerializer(serializers.ModelSerializer):
    contact_name = serializers.CharField(source="contact.name")
    progress_state = serializers.ChoiceField(
        source="state",
        choices=Participation.State.choices,
        help_text="joined, then completed its task, then rewarded",
    )

    class Meta:
        model = Participation
        fields = [
            "id",
            "contact",
            "contact_name",
            "progress_state",
            "progress",
            "referrer",
            "joined_at",
            "completed_at",
            "rewarded_at",
        ]
        read_only_fields = fields


def _choice_param(params, name: str, allowed) -> str:
    value = params.get(name, "")
    if value and value not in allowed:
        raise ApiValidationError({name: [f"One of {', '.join(allowed)}."]})
    return value


class CampaignViewSet(viewsets.ModelViewSet):
    """Campaigns (活动), brand-wide: every login reads them, managers create, change and move
    them. Filters: ?type=, ?state=, ?q= (name contains)."""

    serializer_class = CampaignSerializer
    permission_classes = [CampaignPermission]
    queryset = Campaign.objects.none()  # typing for the schema; get_queryset scopes by user
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        campaigns = selectors.campaigns_visible_to(self.request.user).prefetch_related(
            "audience_tags", "audience_tiers", "audience_groups"
        )
        if self.action != "list":
            return campaigns.order_by("pk")
        params = self.request.query_params
        return selectors.campaigns_filtered(
            campaigns,
            type=_choice_param(params, "type", Campaign.Type.values),
            state=_choice_param(params, "state", State.values),
            search=params.get("q", "").strip(),
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("type", OpenApiTypes.STR, enum=Campaign.Type.values),
            OpenApiParameter("state", OpenApiTypes.STR, enum=State.values),
            OpenApiParameter("q", OpenApiTypes.STR, description="name contains"),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def perform_create(self, serializer):
        serializer.save(created_by=self.request.user)

    @extend_schema(request=MoveSerializer, responses=CampaignSerializer)
    @action(detail=True, methods=["post"])
    def move(self, request, pk=None):
        """Schedule, start now, end now or take back to draft; going live checks the
        campaign (period, rules) and names each field at fault."""
        campaign = self.get_object()
        move = MoveSerializer(data=request.data)
        move.is_valid(raise_exception=True)
        to = move.validated_data["to"]
        if to in LIVE and not selectors.type_available(campaign.type):
            raise ApiValidationError({"type": ["This campaign type is not available yet."]})
        try:
            services.campaign_move(campaign, to)
        except DjangoValidationError as exc:
            raise _rules_api_error(exc) from None
        return Response(CampaignSerializer(campaign).data)

    @extend_schema(responses=CampaignResultsSerializer)
    @action(detail=True, methods=["get"])
    def results(self, request, pk=None):
        """The funnel (reached → joined → completed → rewarded → ordered) with each step's
        conversion, and ROI over the campaign's days."""
        campaign = self.get_object()
        period = services.campaign_period(campaign)
        funnel = [
            {
                "key": row.key,
                "label": row.label,
                "count": row.count,
                "conversion": ratio_data(row.conversion),
            }
            for row in selectors.campaign_funnel_rows(campaign)
        ]
        data = {
            "funnel": funnel,
            "roi": ratio_data(services.campaign_roi(campaign)),
            "first_day": period.first,
            "last_day": period.last,
            "budget_fen": campaign.budget_fen,
            "money_spent_fen": services.money_spent(campaign),
        }
        return Response(CampaignResultsSerializer(data).data)

    @extend_schema(responses=RejectionCountSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def rejections(self, request, pk=None):
        """Every refusal of the campaign, grouped by reason, most frequent first."""
        rows = selectors.campaign_rejections(self.get_object())
        return Response(RejectionCountSerializer(rows, many=True).data)

    @extend_schema(responses=ParticipantSerializer(many=True))
    @action(detail=True, methods=["get"])
    def participants(self, request, pk=None):
        """The participants this login may see (an operator: their own customers), newest
        first, paged."""
        participants = selectors.campaign_participants(self.get_object(), user=request.user)
        page = self.paginate_queryset(participants)
        return self.get_paginated_response(ParticipantSerializer(page, many=True).data)


# --- what each type needs beyond the generic settings -----------------------------------------

Type = Campaign.Type
STOCK_TYPES = (Type.FLASH_SALE, Type.LOTTERY)
STREAKS_MAX = 100


class CouponBatchSerializer(serializers.ModelSerializer):
    """A coupon batch with its coupons by state; money in fen."""

    stock = serializers.IntegerField(min_value=1, help_text="left to issue")
    per_contact = serializers.IntegerField(min_value=1, required=False, default=1)
    valid_days = serializers.IntegerField(
        min_value=1, required=False, default=30, help_text="from the day each coupon is issued"
    )
    value_fen = serializers.IntegerField(min_value=1)
    min_spend_fen = serializers.IntegerField(min_value=0, required=False, default=0)
    issued = serializers.IntegerField(read_only=True, help_text="in customers' hands")
    redeemed = serializers.IntegerField(read_only=True)
    expired = serializers.IntegerField(read_only=True)

    class Meta:
        model = CouponBatch
        fields = [
            "id",
            "name",
            "value_fen",
            "min_spend_fen",
            "stock",
            "per_contact",
            "valid_days",
            "claim_code",
            "issued",
            "redeemed",
            "expired",
        ]

    def validate_claim_code(self, value: str) -> str:
        code = selectors.code_clean(value)
        taken = self.context["campaign"].coupon_batches.exclude(claim_code="")
        if code and any(selectors.code_clean(batch.claim_code) == code for batch in taken):
            raise ApiValidationError("Another batch of this campaign has this claim code.")
        return code


def _batch_data(row: selectors.BatchRow) -> dict:
    batch = row.batch
    data = {name: getattr(batch, name) for name in CouponBatchSerializer.Meta.fields[:8]}
    return {**data, "issued": row.issued, "redeemed": row.redeemed, "expired": row.expired}


# Listed inline: "segment" is a plain choice of this request, named nowhere else.
@extend_schema_field({"type": "string", "enum": ["audience", "tag"]})
class SegmentField(serializers.ChoiceField):
    pass


class CouponIssueSerializer(serializers.Serializer):
    batch = serializers.IntegerField(help_text="a coupon batch of this campaign")
    segment = SegmentField(
        choices=["audience", "tag"],
        help_text="audience: the campaign's audience; tag: the customers with `tag`",
    )
    tag = serializers.PrimaryKeyRelatedField(
        queryset=Tag.objects.all(), required=False, allow_null=True
    )

    def validate_batch(self, value: int) -> CouponBatch:
        batch = self.context["campaign"].coupon_batches.filter(pk=value).first()
        if batch is None:
            raise ApiValidationError("No coupon batch of this campaign has this id.")
        return batch

    def validate(self, data):
        if data["segment"] == "tag" and not data.get("tag"):
            raise ApiValidationError({"tag": ["Choose the tag whose customers get a coupon."]})
        return data


class IssueResultSerializer(serializers.Serializer):
    issued = serializers.IntegerField()
    already = serializers.IntegerField(help_text="had one from an earlier issue")
    refused = serializers.IntegerField()
    reasons = serializers.DictField(
        child=serializers.IntegerField(), help_text="refused, by rejection reason"
    )


class CouponRedeemSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=40)
    order_no = serializers.CharField(max_length=64)

    def validate_code(self, value: str) -> Coupon:
        coupon = selectors.coupon_of_campaign(self.context["campaign"], value)
        if coupon is None:
            raise ApiValidationError("No coupon of this campaign has this code.")
        return coupon

    def validate_order_no(self, value: str) -> Order:
        order = Order.objects.filter(order_no=value.strip()).first()
        if order is None:
            raise ApiValidationError("No order has this number.")
        return order


class CouponSerializer(serializers.ModelSerializer):
    order_no = serializers.CharField(source="order.order_no", allow_null=True, read_only=True)
    coupon_state = serializers.CharField(source="state", help_text="issued, redeemed or expired")

    class Meta:
        model = Coupon
        fields = [
            "id",
            "code",
            "batch",
            "contact",
            "coupon_state",
            "issued_at",
            "expires_at",
            "redeemed_at",
            "order_no",
        ]
        read_only_fields = fields


class StockSerializer(serializers.ModelSerializer):
    """A flash-sale item or lottery prize; all units remain when it is added."""

    total = serializers.IntegerField(min_value=1)
    price_fen = serializers.IntegerField(min_value=0, required=False, default=0)
    weight = serializers.IntegerField(
        min_value=0, required=False, default=0, help_text="lottery odds weight (at least 1)"
    )
    remaining = serializers.IntegerField(read_only=True)
    claimed = serializers.IntegerField(read_only=True, help_text="claims made on it")

    class Meta:
        model = Stock
        fields = ["id", "name", "price_fen", "total", "remaining", "weight", "claimed"]

    def validate_weight(self, value: int) -> int:
        if self.context["campaign"].type == Type.LOTTERY and value < 1:
            raise ApiValidationError("A prize needs odds weight of at least 1.")
        if self.context["campaign"].type == Type.FLASH_SALE and value:
            raise ApiValidationError("A flash-sale item is bought, not drawn: leave it 0.")
        return value

    def create(self, validated_data) -> Stock:
        return super().create({**validated_data, "remaining": validated_data["total"]})


class EntrySerializer(serializers.Serializer):
    rank = serializers.IntegerField(help_text="by votes among all entries; ties to the earlier")
    id = serializers.IntegerField(source="entry.pk")
    title = serializers.CharField(source="entry.title")
    contact = serializers.IntegerField(source="entry.contact_id")
    contact_name = serializers.CharField(source="entry.contact.name")
    votes = serializers.IntegerField(source="entry.votes")
    won = serializers.BooleanField(help_text="rewarded by the draw")


class WinnerSerializer(serializers.Serializer):
    contact = serializers.IntegerField(source="contact_id")
    contact_name = serializers.CharField(source="contact.name")
    description = serializers.CharField()
    reward_kind = serializers.CharField(source="kind", help_text="points or coupon")
    amount = serializers.IntegerField(help_text="points, or fen")


class GroupBuySerializer(serializers.ModelSerializer):
    leader_name = serializers.CharField(source="leader.name")
    group_state = serializers.CharField(source="state", help_text="open, succeeded or failed")
    seats = serializers.IntegerField(help_text="seats taken (not released)")
    size = serializers.IntegerField(help_text="people needed")

    class Meta:
        model = GroupBuy
        fields = ["id", "leader", "leader_name", "group_state", "seats", "size", "deadline"]
        read_only_fields = fields


class CommissionSerializer(serializers.ModelSerializer):
    beneficiary_name = serializers.CharField(source="beneficiary.name")
    order_no = serializers.CharField(source="order.order_no")

    class Meta:
        model = Commission
        fields = [
            "id",
            "beneficiary",
            "beneficiary_name",
            "order_no",
            "level",
            "amount_fen",
            "created_at",
        ]
        read_only_fields = fields


class CommissionTotalSerializer(serializers.Serializer):
    beneficiary = serializers.IntegerField()
    beneficiary_name = serializers.CharField()
    orders = serializers.IntegerField()
    amount_fen = serializers.IntegerField()


class InviteCountSerializer(serializers.Serializer):
    invite_state = serializers.CharField(
        source="state", help_text="pending, counted or rejected (not counted)"
    )
    state_label = serializers.CharField()
    reason = serializers.CharField(help_text="why not counted; blank otherwise")
    reason_label = serializers.CharField()
    count = serializers.IntegerField()


class InviteProgressSerializer(serializers.Serializer):
    contact = serializers.IntegerField(source="contact_id")
    contact_name = serializers.CharField(source="contact.name")
    counted = serializers.IntegerField()
    pending = serializers.IntegerField()
    rejected = serializers.IntegerField()
    progress_state = serializers.CharField(source="state")


class InvitesSerializer(serializers.Serializer):
    by_state = InviteCountSerializer(many=True)
    invites_needed = serializers.IntegerField(allow_null=True)
    progress = InviteProgressSerializer(many=True, help_text="the first 50 participants")


class StreakSerializer(serializers.Serializer):
    contact = serializers.IntegerField(source="contact.pk")
    contact_name = serializers.CharField(source="contact.name")
    streak = serializers.IntegerField(help_text="days in a row up to today (or the last day)")
    days = serializers.IntegerField(help_text="days checked in")
    makeups = serializers.IntegerField()


def _only(campaign: Campaign, *types: str) -> None:
    if campaign.type not in types:
        raise NotFound(f"Only for {', '.join(types)} campaigns.")


def _not_ended(campaign: Campaign) -> None:
    if campaign.state == State.ENDED:
        raise ApiValidationError({"state": ["The campaign has ended."]})


class CampaignTypeViewSet(viewsets.GenericViewSet):
    """What each campaign type needs beyond the generic settings, under
    /api/campaigns/<id>/…: coupon batches (any type), stock (flash sale, lottery), entries and
    the draw (contest), group-buys, commissions (referral), invites (invite task), streaks
    (check-in). Everyone reads (an operator: their own customers); managers change."""

    permission_classes = [CampaignPermission]
    queryset = Campaign.objects.none()  # typing for the schema; get_queryset scopes by user
    serializer_class = CouponBatchSerializer  # each action names its own

    def get_queryset(self):
        return selectors.campaigns_visible_to(self.request.user).order_by("pk")

    def _created(self, serializer_class, campaign: Campaign, **save):
        serializer = serializer_class(data=self.request.data, context={"campaign": campaign})
        serializer.is_valid(raise_exception=True)
        _not_ended(campaign)
        return serializer.save(campaign=campaign, **save)

    @extend_schema(methods=["GET"], responses=CouponBatchSerializer(many=True))
    @extend_schema(
        methods=["POST"], request=CouponBatchSerializer, responses={201: CouponBatchSerializer}
    )
    @action(detail=True, methods=["get", "post"], url_path="coupon-batches", pagination_class=None)
    def coupon_batches(self, request, pk=None):
        """The campaign's coupon batches with coupons in hand, redeemed and expired and the
        stock left; POST creates one (money in fen)."""
        campaign = self.get_object()
        if request.method == "POST":
            batch = self._created(CouponBatchSerializer, campaign)
            row = selectors.BatchRow(batch, 0, 0, 0)
            return Response(_batch_data(row), status=status.HTTP_201_CREATED)
        return Response([_batch_data(row) for row in selectors.campaign_coupon_batches(campaign)])

    @extend_schema(request=CouponIssueSerializer, responses=IssueResultSerializer)
    @action(detail=True, methods=["post"], url_path="coupons/issue", url_name="coupons-issue")
    def coupons_issue(self, request, pk=None):
        """Issue one coupon of a batch to each customer of a segment; again issues nobody a
        second one. Answers how many were issued, already had one, or were refused (by
        reason)."""
        campaign = self.get_object()
        issue = CouponIssueSerializer(data=request.data, context={"campaign": campaign})
        issue.is_valid(raise_exception=True)
        _not_ended(campaign)
        data = issue.validated_data
        tag = data.get("tag") if data["segment"] == "tag" else None
        counts = offers.coupons_issue_to(
            data["batch"], selectors.segment_contacts(campaign, tag=tag)
        )
        return Response(IssueResultSerializer(counts).data)

    @extend_schema(request=CouponRedeemSerializer, responses=CouponSerializer)
    @action(detail=True, methods=["post"], url_path="coupons/redeem", url_name="coupons-redeem")
    def coupons_redeem(self, request, pk=None):
        """Use a coupon of this campaign on an order of its holder, once; refused (400,
        the reason under "code") when already used, expired or below the minimum spend."""
        campaign = self.get_object()
        redeem = CouponRedeemSerializer(data=request.data, context={"campaign": campaign})
        redeem.is_valid(raise_exception=True)
        coupon, order = redeem.validated_data["code"], redeem.validated_data["order_no"]
        try:
            coupon = offers.coupon_redeem(coupon.code, order=order)
        except services.CampaignRefused as refused:
            raise ApiValidationError(
                {"code": [f"Refused: {refused}."], "reason": [refused.reason]}
            ) from None
        except DjangoValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"code": exc.messages}
            if "order" in errors:
                errors["order_no"] = errors.pop("order")
            raise ApiValidationError(errors) from None
        return Response(CouponSerializer(coupon).data)

    @extend_schema(methods=["GET"], responses=StockSerializer(many=True))
    @extend_schema(methods=["POST"], request=StockSerializer, responses={201: StockSerializer})
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def stock(self, request, pk=None):
        """Flash-sale items or lottery prizes: remaining of total and claims on each; POST
        adds one (price in fen; a prize needs an odds weight)."""
        campaign = self.get_object()
        _only(campaign, *STOCK_TYPES)
        if request.method == "POST":
            item = self._created(StockSerializer, campaign)
            item.claimed = 0
            return Response(StockSerializer(item).data, status=status.HTTP_201_CREATED)
        return Response(StockSerializer(selectors.campaign_stock(campaign), many=True).data)

    @extend_schema(responses=EntrySerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def entries(self, request, pk=None):
        """Contest entries ranked by votes (those of customers this login may see), each
        marked when the draw rewarded it."""
        campaign = self.get_object()
        _only(campaign, Type.CONTEST)
        rows = selectors.contest_entries(campaign, user=request.user)
        return Response(EntrySerializer(rows, many=True).data)

    @extend_schema(request=None, responses=WinnerSerializer(many=True))
    @action(detail=True, methods=["post"])
    def draw(self, request, pk=None):
        """After the contest ends: the top entries by votes get the reward, once each (a
        second draw gives nothing twice). Answers the winners."""
        campaign = self.get_object()
        _only(campaign, Type.CONTEST)
        try:
            rewards = engagement.contest_draw(campaign)
        except DjangoValidationError as exc:
            raise ApiValidationError(exc.message_dict) from None
        except services.CampaignRefused as refused:
            raise ApiValidationError(
                {"reward": [f"The draw stopped: {refused}."], "reason": [refused.reason]}
            ) from None
        return Response(WinnerSerializer(rewards, many=True).data)

    @extend_schema(responses=GroupBuySerializer(many=True))
    @action(detail=True, methods=["get"], url_path="group-buys")
    def group_buys(self, request, pk=None):
        """Group-buys led by customers this login may see: state, seats taken of those
        needed, deadline; newest first, paged."""
        campaign = self.get_object()
        _only(campaign, Type.GROUP_BUY)
        page = self.paginate_queryset(selectors.campaign_group_buys(campaign, user=request.user))
        return self.get_paginated_response(GroupBuySerializer(page, many=True).data)

    @extend_schema(responses=CommissionSerializer(many=True))
    @action(detail=True, methods=["get"])
    def commissions(self, request, pk=None):
        """The commission ledger (beneficiaries this login may see), newest first, paged."""
        campaign = self.get_object()
        _only(campaign, Type.REFERRAL)
        rows = selectors.campaign_commissions(campaign, user=request.user)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(CommissionSerializer(page, many=True).data)

    @extend_schema(responses=CommissionTotalSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="commission-totals", pagination_class=None)
    def commission_totals(self, request, pk=None):
        """Commission per beneficiary (those this login may see), the largest first."""
        campaign = self.get_object()
        _only(campaign, Type.REFERRAL)
        rows = selectors.commission_totals(campaign, user=request.user)
        return Response(CommissionTotalSerializer(rows, many=True).data)

    @extend_schema(responses=InvitesSerializer)
    @action(detail=True, methods=["get"])
    def invites(self, request, pk=None):
        """Invites by state, with the reason of those not counted (whole campaign), and the
        progress of the first 50 participants this login may see, most counted first."""
        campaign = self.get_object()
        _only(campaign, Type.INVITE_TASK)
        data = {
            "by_state": selectors.invite_counts(campaign),
            "invites_needed": campaign.rules.get("invites_needed"),
            "progress": selectors.invite_progress(campaign, user=request.user)[:50],
        }
        return Response(InvitesSerializer(data).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "limit",
                OpenApiTypes.INT,
                description=f"how many (default 20, at most {STREAKS_MAX})",
            )
        ],
        responses=StreakSerializer(many=True),
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def streaks(self, request, pk=None):
        """The longest current check-in streaks among participants this login may see."""
        campaign = self.get_object()
        _only(campaign, Type.CHECKIN)
        limit = request.query_params.get("limit", str(selectors.STREAKS_SHOWN))
        if not limit.isdigit() or not 1 <= int(limit) <= STREAKS_MAX:
            raise ApiValidationError({"limit": [f"A whole number from 1 to {STREAKS_MAX}."]})
        rows = selectors.checkin_streaks(campaign, user=request.user, limit=int(limit))
        return Response(StreakSerializer(rows, many=True).data)
