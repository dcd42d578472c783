"""REST API of the operators' campaign section: campaigns, their state moves, funnel and ROI,
participants and rejections. Everyone reads; only managers change. Thin: selectors read,
services write."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response

from analytics.api import RatioSerializer, ratio_data
from campaigns import selectors, services
from campaigns.models import Campaign, Participation, Rejection
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
