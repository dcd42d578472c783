"""REST API of groups: the group list and pages, auto-replies, members in several groups,
channel codes and leaver transfer. Thin: selectors read, services write."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response

from contacts.models import ChannelCode, Staff, Tag
from groups import channel_codes, handover, selectors, services, tasks
from groups.models import AutoReply, Group, GroupMembership, Handover
from scrm.roles import RolePermission


def _api_error(exc: DjangoValidationError) -> ApiValidationError:
    """A service's errors as the API's 400, keyed by the field they name."""
    if hasattr(exc, "error_dict"):
        return ApiValidationError(exc.message_dict)
    return ApiValidationError({"non_field_errors": exc.messages})


class StaffBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Staff
        fields = ["id", "userid", "name", "status"]


# --- groups --------------------------------------------------------------------------------


class GroupFilterSerializer(serializers.Serializer):
    q = serializers.CharField(required=False, allow_blank=True, max_length=64)
    type = serializers.ChoiceField(choices=Group.Type.choices, required=False)
    model = serializers.ChoiceField(choices=Group.Model.choices, required=False)
    stage = serializers.ChoiceField(choices=Group.Stage.choices, required=False)
    owner = serializers.IntegerField(required=False, min_value=1, help_text="staff id")
    members_min = serializers.IntegerField(required=False, min_value=0)
    members_max = serializers.IntegerField(required=False, min_value=0)
    speakers_min = serializers.IntegerField(
        required=False, min_value=0, help_text="distinct speakers in the last 7 days"
    )
    messages_min = serializers.IntegerField(
        required=False, min_value=0, help_text="messages in the last 7 days"
    )
    dismissed = serializers.ChoiceField(
        choices=selectors.DISMISSED_CHOICES, required=False, default="no"
    )
    sort = serializers.ChoiceField(choices=selectors.SORTS, required=False, default="-members")

    def validate(self, data):
        low, high = data.get("members_min"), data.get("members_max")
        if low is not None and high is not None and low > high:
            raise ApiValidationError({"members_max": ["Must be at least members_min."]})
        return data


class GroupSerializer(serializers.ModelSerializer):
    owner = StaffBriefSerializer(read_only=True)
    member_count = serializers.IntegerField(read_only=True, help_text="customers in it now")
    speakers_7d = serializers.SerializerMethodField(help_text="distinct speakers, last 7 days")
    messages_7d = serializers.SerializerMethodField(help_text="messages, last 7 days")
    created = serializers.DateTimeField(read_only=True)

    class Meta:
        model = Group
        fields = [
            "id",
            "chat_id",
            "name",
            "type",
            "model",
            "stage",
            "owner",
            "member_count",
            "member_cap",
            "speakers_7d",
            "messages_7d",
            "created",
            "dismissed_at",
        ]

    def get_speakers_7d(self, group: Group) -> int:
        return selectors.activity_speakers(group)

    def get_messages_7d(self, group: Group) -> int:
        return selectors.activity_messages(group)


class GroupDetailSerializer(serializers.ModelSerializer):
    owner = StaffBriefSerializer(read_only=True)
    admins = StaffBriefSerializer(many=True, read_only=True)
    member_count = serializers.IntegerField(read_only=True)
    staff_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Group
        fields = [
            "id",
            "chat_id",
            "name",
            "owner",
            "admins",
            "type",
            "model",
            "stage",
            "member_count",
            "staff_count",
            "member_cap",
            "rules",
            "notice",
            "welcome_message",
            "wecom_created_at",
            "dismissed_at",
        ]
        read_only_fields = ["chat_id", "name", "wecom_created_at", "dismissed_at"]
        extra_kwargs = {
            "notice": {
                "help_text": "Kept here only: WeCom's API cannot set a group notice; post it "
                "in the WeCom app."
            },
            "rules": {"help_text": "Kept here only."},
        }


class MembershipSerializer(serializers.ModelSerializer):
    person = serializers.SerializerMethodField()
    join_scene_display = serializers.CharField(source="get_join_scene_display", read_only=True)
    quit_scene_display = serializers.CharField(source="get_quit_scene_display", read_only=True)
    channel = serializers.CharField(source="channel.name", read_only=True, default=None)

    class Meta:
        model = GroupMembership
        fields = [
            "id",
            "person",
            "role",
            "joined_at",
            "join_scene",
            "join_scene_display",
            "invitor_userid",
            "channel",
            "left_at",
            "quit_scene",
            "quit_scene_display",
        ]

    @extend_schema_field(
        {
            "type": "object",
            "properties": {
                "kind": {"type": "string", "enum": ["contact", "staff"]},
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "userid": {"type": "string"},
            },
        }
    )
    def get_person(self, stay: GroupMembership) -> dict:
        if stay.contact_id:
            c = stay.contact
            return {"kind": "contact", "id": c.pk, "name": c.name, "userid": c.external_userid}
        s = stay.staff
        return {"kind": "staff", "id": s.pk, "name": s.name, "userid": s.userid}


class RoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=[(r.value, r.label) for r in services.SETTABLE_ROLES])


class SummarySerializer(serializers.Serializer):
    people = serializers.IntegerField(help_text="customers across the groups, each once")
    stays = serializers.IntegerField(help_text="places taken: one per person per group")
    in_several = serializers.IntegerField(help_text="customers in two or more of the groups")


class OverlapSerializer(serializers.Serializer):
    contact_id = serializers.IntegerField()
    name = serializers.CharField()
    external_userid = serializers.CharField()
    group_count = serializers.IntegerField()
    groups = serializers.SerializerMethodField()

    @extend_schema_field(
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
            },
        }
    )
    def get_groups(self, row: dict) -> list[dict]:
        return [{"id": pk, "name": name} for pk, name in row["groups"]]


FILTER_PARAMETERS = [
    OpenApiParameter(name, OpenApiTypes.STR, description=str(field.help_text or ""))
    for name, field in GroupFilterSerializer().fields.items()
]


class GroupViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Customer groups the user may see. PATCH changes type, model, stage, cap, rules,
    notice and welcome message (rules and notice are kept here only)."""

    http_method_names = ["get", "patch", "post", "head", "options"]
    serializer_class = GroupSerializer
    queryset = Group.objects.none()  # typing for the schema; get_queryset scopes by user

    def _filters(self) -> dict:
        params = GroupFilterSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        return dict(params.validated_data)

    def get_queryset(self):
        if self.action == "list":
            return selectors.group_list(user=self.request.user, **self._filters())
        return (
            selectors.groups_visible_to(self.request.user)
            .select_related("owner")
            .prefetch_related("admins")
            .annotate(member_count=selectors.customers_now(), staff_count=selectors.staff_now())
        )

    def get_serializer_class(self):
        return GroupSerializer if self.action == "list" else GroupDetailSerializer

    @extend_schema(parameters=FILTER_PARAMETERS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=GroupDetailSerializer, responses=GroupDetailSerializer)
    def partial_update(self, request, pk=None):
        group = self.get_object()
        serializer = GroupDetailSerializer(group, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        values = {
            name: value
            for name, value in serializer.validated_data.items()
            if name in services.GROUP_SETTINGS
        }
        try:
            services.group_settings_update(group=Group.objects.get(pk=group.pk), **values)
        except DjangoValidationError as exc:
            raise _api_error(exc) from None
        return Response(GroupDetailSerializer(self.get_queryset().get(pk=group.pk)).data)

    @extend_schema(parameters=FILTER_PARAMETERS, responses=SummarySerializer)
    @action(detail=False, methods=["get"])
    def summary(self, request):
        """People across the listed groups, each counted once (filters as for the list)."""
        groups = selectors.group_list(user=request.user, **self._filters())
        return Response(SummarySerializer(selectors.group_list_summary(groups)).data)

    @extend_schema(responses=OverlapSerializer(many=True))
    @action(detail=False, methods=["get"])
    def overlap(self, request):
        """群成员去重: customers in two or more of the groups the user may see."""
        groups = selectors.groups_visible_to(request.user).filter(dismissed_at__isnull=True)
        people = selectors.contacts_in_several_groups(user=request.user, groups=groups)
        page = selectors.overlap_rows(
            self.paginate_queryset(people), user=request.user, groups=groups
        )
        return self.get_paginated_response(OverlapSerializer(page, many=True).data)

    @extend_schema(responses=MembershipSerializer(many=True))
    @action(detail=True, methods=["get"])
    def members(self, request, pk=None):
        """Who is in the group now: owner, admins, KOC, members."""
        group = self.get_object()
        page = self.paginate_queryset(selectors.group_members(group=group))
        return self.get_paginated_response(MembershipSerializer(page, many=True).data)

    @extend_schema(responses=MembershipSerializer(many=True))
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        """Every stay in the group, newest first."""
        group = self.get_object()
        page = self.paginate_queryset(selectors.group_history(group=group))
        return self.get_paginated_response(MembershipSerializer(page, many=True).data)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"], url_path="stage-numbers")
    def stage_numbers(self, request, pk=None):
        """The headline numbers of the group's stage; null means undefined (nothing to divide)."""
        group = self.get_object()
        numbers = selectors.stage_numbers(group=group)
        return Response({"stage": group.stage, **numbers})

    @extend_schema(request=RoleSerializer, responses=MembershipSerializer)
    @action(detail=True, methods=["post"], url_path=r"members/(?P<stay_pk>\d+)/role")
    def role(self, request, pk=None, stay_pk=None):
        """Make a member an admin (at most 3), a KOC (气氛组) or a plain member."""
        group = self.get_object()
        stay = get_object_or_404(GroupMembership, pk=stay_pk, group=group)
        serializer = RoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            stay = services.membership_role_set(stay=stay, role=serializer.validated_data["role"])
        except DjangoValidationError as exc:
            raise _api_error(exc) from None
        return Response(MembershipSerializer(stay).data)


class AutoReplySerializer(serializers.ModelSerializer):
    group = serializers.PrimaryKeyRelatedField(queryset=Group.objects.all())

    class Meta:
        model = AutoReply
        fields = ["id", "group", "keyword", "reply", "is_active"]
        validators = []  # the service checks the keyword per group and names the field

    def validate_group(self, group: Group) -> Group:
        visible = selectors.groups_visible_to(self.context["request"].user)
        if not visible.filter(pk=group.pk).exists():
            raise ApiValidationError("No such group.")
        if self.instance is not None and self.instance.group_id != group.pk:
            raise ApiValidationError("An auto-reply stays in its group.")
        return group


class AutoReplyViewSet(viewsets.ModelViewSet):
    """Keyword auto-replies (关键词自动回复) of the groups the user may see; ?group=<id>."""

    serializer_class = AutoReplySerializer
    queryset = AutoReply.objects.none()  # typing for the schema; get_queryset scopes by user
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        replies = AutoReply.objects.filter(
            group__in=selectors.groups_visible_to(self.request.user).values("pk")
        ).order_by("group_id", "keyword")
        group = self.request.query_params.get("group", "")
        if group.isdigit():
            replies = replies.filter(group_id=int(group))
        return replies

    @extend_schema(parameters=[OpenApiParameter("group", OpenApiTypes.INT)])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def perform_create(self, serializer):
        data = serializer.validated_data
        try:
            serializer.instance = services.auto_reply_create(
                group=data["group"],
                keyword=data["keyword"],
                reply=data["reply"],
                is_active=data.get("is_active", True),
            )
        except DjangoValidationError as exc:
            raise _api_error(exc) from None

    def perform_update(self, serializer):
        current = serializer.instance
        data = serializer.validated_data
        try:
            serializer.instance = services.auto_reply_update(
                auto_reply=current,
                keyword=data.get("keyword", current.keyword),
                reply=data.get("reply", current.reply),
                is_active=data.get("is_active", current.is_active),
            )
        except DjangoValidationError as exc:
            raise _api_error(exc) from None

    def perform_destroy(self, instance):
        services.auto_reply_delete(auto_reply=instance)


# --- channel codes --------------------------------------------------------------------------


class ChannelCodeSerializer(serializers.ModelSerializer):
    staff = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Staff.objects.all(), required=False
    )
    groups = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Group.objects.all(), required=False
    )
    tags = serializers.PrimaryKeyRelatedField(many=True, queryset=Tag.objects.all(), required=False)
    exposures = serializers.SerializerMethodField()
    arrivals = serializers.SerializerMethodField()
    join_rate = serializers.SerializerMethodField()

    class Meta:
        model = ChannelCode
        fields = [
            "id",
            "name",
            "kind",
            "state",
            "config_id",
            "qr_url",
            "staff",
            "groups",
            "tags",
            "welcome_message",
            "is_active",
            "created_at",
            "exposures",
            "arrivals",
            "join_rate",
        ]
        read_only_fields = ["state", "config_id", "qr_url", "is_active", "created_at"]

    def _figure(self, code: ChannelCode, name: str):
        return self.context.get("figures", {}).get(code.pk, {}).get(name)

    def get_exposures(self, code: ChannelCode) -> int | None:
        return self._figure(code, "exposures")

    def get_arrivals(self, code: ChannelCode) -> int | None:
        return self._figure(code, "arrivals")

    def get_join_rate(self, code: ChannelCode) -> float | None:
        """arrivals ÷ exposures; null when there were no exposures."""
        return self._figure(code, "join_rate")

    def validate(self, data):
        user = self.context["request"].user
        errors = {}
        if not selectors.user_sees_all(user):
            own = selectors.user_staff(user)
            present = {s.pk for s in self.instance.staff.all()} if self.instance else set()
            allowed = present | ({own.pk} if own else set())
            if any(s.pk not in allowed for s in data.get("staff", [])):
                errors["staff"] = ["An operator's codes add only themselves."]
        chosen = {g.pk for g in data.get("groups", [])}
        allowed = set(
            selectors.groups_visible_to(user).filter(pk__in=chosen).values_list("pk", flat=True)
        )
        if self.instance is not None:  # groups the code already fills may stay
            allowed |= set(self.instance.groups.values_list("pk", flat=True))
        if chosen - allowed:
            errors["groups"] = ["No such group."]
        if self.instance is not None and data.get("kind", self.instance.kind) != self.instance.kind:
            errors["kind"] = ["The kind of a code cannot change."]
        if errors:
            raise ApiValidationError(errors)
        return data


class ChannelCodeViewSet(viewsets.ModelViewSet):
    """Channel codes (渠道活码, kind staff) and group join codes (群活码, kind group, up to 5
    groups), made and changed in WeCom; figures cover ?period=7|30|90|all days (default 30).
    DELETE stops the code in WeCom and keeps it here, inactive, with its history."""

    serializer_class = ChannelCodeSerializer
    queryset = ChannelCode.objects.none()  # typing for the schema; get_queryset scopes by user
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        kind = self.request.query_params.get("kind", "")
        retired = self.request.query_params.get("retired") == "1"
        return selectors.channel_code_list(
            user=self.request.user,
            kind=kind if kind in ChannelCode.Kind.values else "",
            # A deleted code can still be read by its id.
            include_retired=retired or self.action != "list",
        )

    def _days(self) -> int | None:
        period = self.request.query_params.get("period", "30")
        if period not in selectors.CODE_PERIODS:
            raise ApiValidationError({"period": ["Use 7, 30, 90 or all."]})
        return selectors.CODE_PERIODS[period]

    def _serialize(self, codes, *, many: bool):
        items = list(codes) if many else [codes]
        figures = selectors.channel_code_figures(codes=items, days=self._days())
        context = {**self.get_serializer_context(), "figures": figures}
        return ChannelCodeSerializer(codes, many=many, context=context).data

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", OpenApiTypes.STR, enum=ChannelCode.Kind.values),
            OpenApiParameter("period", OpenApiTypes.STR, enum=list(selectors.CODE_PERIODS)),
            OpenApiParameter("retired", OpenApiTypes.STR, description="1: include deleted codes"),
        ]
    )
    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self._serialize(page, many=True))

    def retrieve(self, request, *args, **kwargs):
        return Response(self._serialize(self.get_object(), many=False))

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        own = selectors.user_staff(request.user)
        staff = list(data.get("staff", []))
        if data["kind"] == ChannelCode.Kind.GROUP and own is not None:
            staff = [own]
        try:
            code = channel_codes.channel_code_create(
                kind=data["kind"],
                name=data["name"],
                staff=staff,
                groups=data.get("groups", []),
                tags=data.get("tags", []),
                welcome_message=data.get("welcome_message", ""),
            )
        except DjangoValidationError as exc:
            raise _api_error(exc) from None
        return Response(self._serialize(code, many=False), status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        code = self.get_object()
        serializer = self.get_serializer(code, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        own = selectors.user_staff(request.user)
        if code.kind == ChannelCode.Kind.GROUP:
            staff = [own] if own is not None else []
        else:
            staff = list(data.get("staff", code.staff.all()))
        try:
            channel_codes.channel_code_update(
                code=code,
                name=data.get("name", code.name),
                staff=staff,
                groups=data.get("groups", code.groups.all()),
                tags=data.get("tags", code.tags.all()),
                welcome_message=data.get("welcome_message", code.welcome_message),
            )
        except DjangoValidationError as exc:
            raise _api_error(exc) from None
        return Response(self._serialize(self.get_queryset().get(pk=code.pk), many=False))

    def destroy(self, request, *args, **kwargs):
        code = self.get_object()
        try:
            channel_codes.channel_code_delete(code=code)
        except DjangoValidationError as exc:
            raise _api_error(exc) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- leaver transfer ------------------------------------------------------------------------


class HandoverPermission(BasePermission):
    """Managers run leaver transfers, analysts read them, operators have no access."""

    message = "Leaver transfer is for managers."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            return user.is_manager or user.is_read_only
        return user.is_manager


class HandoverSerializer(serializers.ModelSerializer):
    handover_staff = StaffBriefSerializer(read_only=True)
    takeover_staff = StaffBriefSerializer(read_only=True)
    group_takeover_staff = StaffBriefSerializer(source="group_successor", read_only=True)
    counts = serializers.SerializerMethodField()

    class Meta:
        model = Handover
        fields = [
            "id",
            "handover_staff",
            "takeover_staff",
            "group_takeover_staff",
            "status",
            "counts",
            "customers",
            "groups",
            "created_at",
            "checked_at",
            "finished_at",
        ]

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_counts(self, item: Handover) -> dict:
        return selectors.handover_counts(item)


class HandoverStartSerializer(serializers.Serializer):
    handover_staff = serializers.PrimaryKeyRelatedField(
        queryset=Staff.objects.all(), help_text="the staff member who leaves"
    )
    takeover_staff = serializers.PrimaryKeyRelatedField(
        queryset=Staff.objects.all(), help_text="successor for customers"
    )
    group_takeover_staff = serializers.PrimaryKeyRelatedField(
        queryset=Staff.objects.all(),
        required=False,
        allow_null=True,
        help_text="successor for groups; empty: the successor for customers",
    )


class HandoverViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """离职继承: mark a staff member resigned and pass their customers and groups on."""

    permission_classes = [RolePermission, HandoverPermission]
    serializer_class = HandoverSerializer

    def get_queryset(self):
        return selectors.handover_list()

    @extend_schema(request=HandoverStartSerializer, responses={201: HandoverSerializer})
    def create(self, request):
        serializer = HandoverStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            started = handover.handover_start(
                leaver=data["handover_staff"],
                successor=data["takeover_staff"],
                group_successor=data.get("group_takeover_staff"),
                by=request.user,
            )
        except DjangoValidationError as exc:
            raise _api_error(exc) from None
        return Response(
            HandoverSerializer(self.get_queryset().get(pk=started.pk)).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=None, responses={202: None, 400: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def check(self, request, pk=None):
        """Ask WeCom for the transfer results now instead of at the next periodic check."""
        item = self.get_object()
        if item.status != Handover.Status.PENDING:
            raise ApiValidationError({"status": ["This handover is finished."]})
        transaction.on_commit(lambda: tasks.poll_handover.delay(item.pk))
        return Response(status=status.HTTP_202_ACCEPTED)
