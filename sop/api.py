"""REST API of the SOP engine: plans and steps, go-live actions, preview, deliveries, the
content library and mass-message completion. Thin: selectors read, services write."""

from datetime import datetime, time, timedelta

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied as ApiPermissionDenied
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from contacts.models import Contact, MemberTier, Staff, Tag
from groups.models import Group
from groups.selectors import groups_visible_to
from sop import selectors, services
from sop.content import validate
from sop.models import ContentItem, Delivery, Plan, SkipReason, Step


def _api_error(exc: DjangoValidationError) -> ApiValidationError:
    """A service's errors as the API's 400, keyed by the field they name."""
    if hasattr(exc, "error_dict"):
        return ApiValidationError(exc.message_dict)
    return ApiValidationError({"non_field_errors": exc.messages})


def _choices(choices, **kwargs) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=choices), required=False, **kwargs
    )


# --- content -------------------------------------------------------------------------------


class ContentSerializer(serializers.ModelSerializer):
    purpose = serializers.ChoiceField(choices=ContentItem.Purpose.choices)
    attachments = serializers.JSONField(
        required=False,
        help_text='[{"kind": "image"|"link"|"miniprogram", ...}]; checked as WeCom needs them',
    )

    class Meta:
        model = ContentItem
        fields = [
            "id",
            "title",
            "purpose",
            "category",
            "text",
            "attachments",
            "archived",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate(self, data):
        text = data.get("text", self.instance.text if self.instance else "")
        attachments = data.get("attachments", self.instance.attachments if self.instance else [])
        if attachments is None:
            attachments = data["attachments"] = []
        try:
            validate(text, attachments)
        except DjangoValidationError as exc:
            raise _api_error(exc) from None
        return data


class ContentResultSerializer(serializers.Serializer):
    delivered = serializers.IntegerField(help_text="deliveries that reached a group or customer")
    confirmations = serializers.IntegerField(help_text="mass messages a staff member confirmed")
    confirming_staff = serializers.IntegerField()
    group_messages = serializers.IntegerField(help_text="messages in reached groups, 72 h after")
    contacts_reached = serializers.IntegerField()
    contacts_responded = serializers.IntegerField(help_text="spoke or ordered within 72 h")
    orders = serializers.IntegerField()
    order_fen = serializers.IntegerField(help_text="order amount in fen")


class ContentViewSet(viewsets.ModelViewSet):
    """The content library (素材库). DELETE archives: steps keep what they sent.
    ?purpose=, ?archived=true|false (default false); GET …/{id}/results/ for its results."""

    serializer_class = ContentSerializer
    queryset = ContentItem.objects.none()  # typing for the schema; get_queryset scopes by user
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        items = selectors.content_visible_to(self.request.user)
        if self.action == "list":
            items = items.filter(archived=self.request.query_params.get("archived") == "true")
            purpose = self.request.query_params.get("purpose", "")
            if purpose in ContentItem.Purpose.values:
                items = items.filter(purpose=purpose)
        return items

    @extend_schema(
        parameters=[
            OpenApiParameter("purpose", OpenApiTypes.STR, enum=ContentItem.Purpose.values),
            OpenApiParameter("archived", OpenApiTypes.BOOL),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def _check_may_change(self, item: ContentItem) -> None:
        if not services.content_may_change(self.request.user, item):
            raise ApiPermissionDenied("Operators change only the content they made.")

    def perform_create(self, serializer):
        serializer.save(created_by=self.request.user)

    def perform_update(self, serializer):
        self._check_may_change(serializer.instance)
        serializer.save()

    def perform_destroy(self, instance):
        self._check_may_change(instance)
        instance.archived = True
        instance.save(update_fields=["archived", "updated_at"])

    @extend_schema(
        parameters=[OpenApiParameter("window_hours", OpenApiTypes.INT)],
        responses=ContentResultSerializer,
    )
    @action(detail=True, methods=["get"])
    def results(self, request, pk=None):
        """What it reached and what followed within the window (72 hours unless given)."""
        item = self.get_object()
        hours = request.query_params.get("window_hours", "72")
        if not hours.isdigit() or not 1 <= int(hours) <= 24 * 30:
            raise ApiValidationError({"window_hours": ["A whole number of hours, 1–720."]})
        result = selectors.content_results([item.pk], window_hours=int(hours))[item.pk]
        return Response(ContentResultSerializer(result).data)


# --- plans and steps -----------------------------------------------------------------------


class StepSerializer(serializers.ModelSerializer):
    plan = serializers.PrimaryKeyRelatedField(queryset=Plan.objects.all())
    content = serializers.PrimaryKeyRelatedField(queryset=ContentItem.objects.all())
    weekdays = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6),
        required=False,
        help_text="0 = Monday … 6 = Sunday; empty = every day",
    )
    group_stages = _choices(Group.Stage.choices)

    class Meta:
        model = Step
        fields = [
            "id",
            "plan",
            "position",
            "name",
            "content",
            "at_time",
            "weekdays",
            "group_stages",
            "offset_days",
            "offset_minutes",
            "send_at",
            "only_if_no_order_since_trigger",
            "coupon_code",
            "active",
        ]
        read_only_fields = ["active"]
        extra_kwargs = {"at_time": {"help_text": "Shanghai time of day, HH:MM"}}

    def validate_plan(self, plan: Plan) -> Plan:
        user = self.context["request"].user
        if not selectors.plans_visible_to(user).filter(pk=plan.pk).exists():
            raise ApiValidationError("No such plan.")
        if self.instance is not None and self.instance.plan_id != plan.pk:
            raise ApiValidationError("A step stays in its plan.")
        if plan.status == Plan.Status.ARCHIVED:
            raise ApiValidationError("The plan is archived.")
        return plan

    def validate_content(self, content: ContentItem) -> ContentItem:
        changed = self.instance is None or self.instance.content_id != content.pk
        if content.archived and changed:
            raise ApiValidationError("This content is archived.")
        return content

    def validate(self, data):
        plan = data.get("plan") or self.instance.plan
        at_time = data.get("at_time", self.instance.at_time if self.instance else None)
        send_at = data.get("send_at", self.instance.send_at if self.instance else None)
        if plan.kind == Plan.Kind.GROUP and at_time is None:
            raise ApiValidationError({"at_time": ["A group plan step needs a time."]})
        if plan.kind == Plan.Kind.BROADCAST and send_at is None:
            raise ApiValidationError({"send_at": ["A broadcast needs a send time."]})
        return data


class PlanSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=Plan.Kind.choices)
    status = serializers.ChoiceField(choices=Plan.Status.choices, read_only=True)
    holiday_policy = serializers.ChoiceField(choices=Plan.HolidayPolicy.choices, required=False)
    trigger = serializers.ChoiceField(
        choices=Plan.Trigger.choices, required=False, allow_blank=True
    )
    group_types = _choices(Group.Type.choices)
    group_stages = _choices(Group.Stage.choices)
    group_labels = serializers.ListField(
        child=serializers.CharField(max_length=30),
        required=False,
        help_text="groups carrying any of these labels",
    )
    stages = _choices(Contact.Stage.choices, help_text="customers' lifecycle stages")
    groups = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Group.objects.all(), required=False
    )
    owners = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Staff.objects.all(), required=False
    )
    tags_all = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Tag.objects.all(), required=False
    )
    tags_any = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Tag.objects.all(), required=False
    )
    tags_none = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Tag.objects.all(), required=False
    )
    tiers = serializers.PrimaryKeyRelatedField(
        many=True, queryset=MemberTier.objects.all(), required=False
    )
    staff = serializers.PrimaryKeyRelatedField(
        read_only=True, help_text="set for an operator's plan: it reaches only their groups"
    )
    steps = StepSerializer(many=True, read_only=True)

    class Meta:
        model = Plan
        fields = [
            "id",
            "name",
            "description",
            "kind",
            "status",
            "priority",
            "holiday_policy",
            "staff",
            "groups",
            "group_types",
            "group_stages",
            "group_labels",
            "owners",
            "trigger",
            "inactive_days",
            "tags_all",
            "tags_any",
            "tags_none",
            "tiers",
            "stages",
            "steps",
            "activated_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["activated_at", "created_at", "updated_at"]

    def validate_kind(self, kind: str) -> str:
        if self.instance is not None and self.instance.kind != kind:
            raise ApiValidationError("A plan keeps its kind once made.")
        return kind

    def validate_groups(self, groups: list[Group]) -> list[Group]:
        user = self.context["request"].user
        present = set(self.instance.groups.values_list("pk", flat=True)) if self.instance else set()
        visible = set(
            groups_visible_to(user)
            .filter(Q(pk__in=[g.pk for g in groups]))
            .values_list("pk", flat=True)
        )
        hidden = [g.pk for g in groups if g.pk not in visible and g.pk not in present]
        if hidden:
            raise ApiValidationError(f"No such group: {', '.join(map(str, hidden))}.")
        return groups

    def validate(self, data):
        kind = data.get("kind", self.instance.kind if self.instance else None)
        trigger = data.get("trigger", self.instance.trigger if self.instance else "")
        if kind == Plan.Kind.JOURNEY and not trigger:
            raise ApiValidationError({"trigger": ["A journey needs a trigger."]})
        if not self.context["request"].user.is_manager:
            # An operator's plan reaches only their own groups: owners mean nothing there.
            data.pop("owners", None)
        return data


PLAN_FILTERS = [
    OpenApiParameter("kind", OpenApiTypes.STR, enum=Plan.Kind.values),
    OpenApiParameter(
        "status", OpenApiTypes.STR, enum=Plan.Status.values, description="default: not archived"
    ),
]


class PreviewDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    planned = serializers.IntegerField()
    skipped = serializers.DictField(child=serializers.IntegerField(), help_text="reason → count")


class PreviewRowSerializer(serializers.Serializer):
    due_at = serializers.DateTimeField()
    step = serializers.CharField()
    content = serializers.CharField()
    target = serializers.CharField()
    status = serializers.CharField(help_text="planned or skipped")
    reason = serializers.CharField(help_text="a skip reason, or empty")
    reason_display = serializers.SerializerMethodField()

    def get_reason_display(self, row) -> str:
        return str(SkipReason(row.reason).label) if row.reason else ""


class PreviewSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    planned = serializers.IntegerField()
    skipped = serializers.IntegerField()
    days = PreviewDaySerializer(many=True)
    rows = PreviewRowSerializer(many=True)


class PlanViewSet(viewsets.ModelViewSet):
    """SOP plans the user may see; an operator's plans are limited to their own groups and
    customers. Steps are read here and written at /api/sop/steps/. DELETE only removes a
    draft that never went live; archive the others."""

    serializer_class = PlanSerializer
    queryset = Plan.objects.none()  # typing for the schema; get_queryset scopes by user
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        plans = (
            selectors.plans_visible_to(self.request.user)
            .prefetch_related(
                "groups", "owners", "tags_all", "tags_any", "tags_none", "tiers", "steps"
            )
            .order_by("-priority", "name", "pk")
        )
        if self.action == "list":
            params = self.request.query_params
            if params.get("kind") in Plan.Kind.values:
                plans = plans.filter(kind=params["kind"])
            if params.get("status") in Plan.Status.values:
                plans = plans.filter(status=params["status"])
            else:
                plans = plans.exclude(status=Plan.Status.ARCHIVED)
        return plans

    @extend_schema(parameters=PLAN_FILTERS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def perform_create(self, serializer):
        user = self.request.user
        staff = services.plan_staff_for(user)  # Django's PermissionDenied answers 403
        extra = {"owners": []} if staff is not None else {}
        serializer.save(created_by=user, staff=staff, **extra)

    def perform_update(self, serializer):
        if serializer.instance.status == Plan.Status.ARCHIVED:
            raise ApiValidationError({"status": ["An archived plan cannot be changed."]})
        serializer.save()

    def perform_destroy(self, instance):
        if instance.activated_at is not None or instance.deliveries.exists():
            raise ApiValidationError(
                {
                    "status": [
                        "Only a draft that never went live is deleted; archive this plan instead."
                    ]
                }
            )
        with transaction.atomic():
            instance.delete()

    def _act(self, request, change) -> Response:
        plan = self.get_object()
        try:
            change(plan)
        except DjangoValidationError as exc:
            raise _api_error(exc) from None
        return Response(PlanSerializer(self.get_queryset().get(pk=plan.pk)).data)

    @extend_schema(request=None, responses=PlanSerializer)
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        """Put a draft plan live; 400 naming the field if it cannot go live as it is."""
        return self._act(request, lambda plan: services.plan_activate(plan, user=request.user))

    @extend_schema(request=None, responses=PlanSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        """Stop a live plan; what it planned and has not queued is skipped."""
        return self._act(request, lambda plan: services.plan_pause(plan, user=request.user))

    @extend_schema(request=None, responses=PlanSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Put a paused plan live again, from now on."""

        return self._act(request, lambda plan: services.plan_resume(plan, user=request.user))

    @extend_schema(request=None, responses=PlanSerializer)
    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        """Retire a plan (pausing it first if live); its history stays."""
        return self._act(request, lambda plan: services.plan_archive(plan, user=request.user))

    @extend_schema(
        parameters=[OpenApiParameter("days", OpenApiTypes.INT, description="1–31, default 7")],
        responses=PreviewSerializer,
    )
    @action(detail=True, methods=["get"])
    def preview(self, request, pk=None):
        """Who would get what and when over the next days; nothing is kept."""
        plan = self.get_object()
        days = request.query_params.get("days", "7")
        if not days.isdigit() or not 1 <= int(days) <= 31:
            raise ApiValidationError({"days": ["A whole number of days, 1–31."]})
        return Response(PreviewSerializer(services.plan_preview(plan, days=int(days))).data)


class StepViewSet(viewsets.ModelViewSet):
    """Steps of the plans the user may see; ?plan=<id>. DELETE switches off a step that has
    deliveries (its history stays) and removes one that has none."""

    serializer_class = StepSerializer
    queryset = Step.objects.none()  # typing for the schema; get_queryset scopes by user
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        steps = Step.objects.filter(
            plan__in=selectors.plans_visible_to(self.request.user).values("pk")
        ).order_by("plan_id", "position", "pk")
        plan = self.request.query_params.get("plan", "")
        if plan.isdigit():
            steps = steps.filter(plan_id=int(plan))
        return steps

    @extend_schema(parameters=[OpenApiParameter("plan", OpenApiTypes.INT)])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def perform_update(self, serializer):
        if serializer.instance.plan.status == Plan.Status.ARCHIVED:
            raise ApiValidationError({"plan": ["The plan is archived."]})
        serializer.save()

    def perform_destroy(self, instance):
        services.step_remove(instance, user=self.request.user)


# --- deliveries ----------------------------------------------------------------------------


class DeliverySerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=Delivery.Status.choices)
    reason = serializers.CharField(help_text="a skip reason when it did not go out")
    reason_display = serializers.CharField(source="get_reason_display")
    content = serializers.IntegerField(source="step.content_id")

    class Meta:
        model = Delivery
        fields = [
            "id",
            "plan",
            "step",
            "content",
            "group",
            "contact",
            "sender",
            "slot_at",
            "due_at",
            "status",
            "reason",
            "reason_display",
            "message",
            "updated_at",
        ]
        read_only_fields = fields


DELIVERY_FILTERS = [
    OpenApiParameter("plan", OpenApiTypes.INT),
    OpenApiParameter("status", OpenApiTypes.STR, enum=Delivery.Status.values),
    OpenApiParameter("reason", OpenApiTypes.STR, enum=SkipReason.values),
    OpenApiParameter("contact", OpenApiTypes.INT),
    OpenApiParameter("group", OpenApiTypes.INT),
]


class DeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The delivery ledger the user may see (an operator's: those they send), newest due
    first. Filters: plan, status, reason, contact, group."""

    serializer_class = DeliverySerializer
    queryset = Delivery.objects.none()  # typing for the schema; get_queryset scopes by user

    def get_queryset(self):
        deliveries = (
            selectors.deliveries_visible_to(self.request.user)
            .select_related("step")
            .order_by("-due_at", "-pk")
        )
        params = self.request.query_params
        for name in ("plan", "contact", "group"):
            value = params.get(name, "")
            if value:
                if not value.isdigit():
                    raise ApiValidationError({name: ["Give an id."]})
                deliveries = deliveries.filter(**{f"{name}_id": int(value)})
        for name, allowed in (("status", Delivery.Status.values), ("reason", SkipReason.values)):
            value = params.get(name, "")
            if value:
                if value not in allowed:
                    raise ApiValidationError({name: [f"One of {', '.join(allowed)}."]})
                deliveries = deliveries.filter(**{name: value})
        return deliveries

    @extend_schema(parameters=DELIVERY_FILTERS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)


# --- completion ----------------------------------------------------------------------------


class CompletionRowSerializer(serializers.Serializer):
    staff_id = serializers.IntegerField(source="staff.pk")
    staff_name = serializers.CharField(source="staff.name")
    messages = serializers.IntegerField(help_text="mass messages created in the period")
    confirmed = serializers.IntegerField(help_text="of those, confirmed by the staff member")
    rate = serializers.FloatField(
        allow_null=True, help_text="confirmed ÷ messages; null when there were none"
    )
    delivered = serializers.IntegerField()
    failed = serializers.IntegerField()


class CompletionQuerySerializer(serializers.Serializer):
    since = serializers.DateField(required=False, help_text="first Shanghai day, included")
    until = serializers.DateField(required=False, help_text="last Shanghai day, included")

    def validate(self, data):
        until = data.get("until") or timezone.localdate()
        since = data.get("since") or until - timedelta(days=6)
        if since > until:
            raise ApiValidationError({"until": ["Must be on or after since."]})
        return {"since": since, "until": until}


class CompletionView(APIView):
    """群发完成率: per staff member, mass messages created in the period (the last 7 days
    unless given) and how many they confirmed. An operator sees their own row."""

    @extend_schema(
        parameters=[
            OpenApiParameter("since", OpenApiTypes.DATE),
            OpenApiParameter("until", OpenApiTypes.DATE),
        ],
        responses=CompletionRowSerializer(many=True),
    )
    def get(self, request):
        query = CompletionQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        tz = timezone.get_current_timezone()
        since = datetime.combine(query.validated_data["since"], time.min, tzinfo=tz)
        until = datetime.combine(
            query.validated_data["until"] + timedelta(days=1), time.min, tzinfo=tz
        )
        rows = selectors.completion_by_staff(since, until, user=request.user)
        return Response(CompletionRowSerializer(rows, many=True).data, status=status.HTTP_200_OK)
