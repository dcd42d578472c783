"""REST API for tiers, points, the points mall, tags and tag rules, mounted under /api/."""

import uuid
from contextlib import contextmanager

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from contacts import points as points_service
from contacts import tags as tag_service
from contacts.loyalty_tasks import tag_rule_evaluate, tiers_refresh_all
from contacts.models import (
    Contact,
    MallItem,
    MemberTier,
    PointsEntry,
    PointsRule,
    Redemption,
    Tag,
    TagGroup,
    TagRule,
)
from contacts.selectors import contacts_visible_to
from contacts.tag_rules import conditions_q, tag_rule_validate
from scrm.roles import RolePermission
from wecom.errors import WeComError

# --- permissions and errors --------------------------------------------------------------


class ManagersWrite(BasePermission):
    """Everyone signed in reads; only managers change (tiers, points rules, the mall)."""

    message = _("Only managers may change this.")

    def has_permission(self, request, view) -> bool:
        return request.method in SAFE_METHODS or request.user.is_manager


class WeComRefused(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "wecom_refused"


class WeComUnreachable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "wecom_unavailable"


class PointsConflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "points_error"


def _wecom_error(exc: WeComError) -> exceptions.APIException:
    message = _("WeCom did not accept the change, nothing was changed: %(error)s") % {"error": exc}
    return WeComUnreachable(message) if exc.transient else WeComRefused(message)


@contextmanager
def _tag_api_errors():
    """A refused tag change as an API answer: our own check (400) or WeCom's (502/503)."""
    try:
        yield
    except tag_service.TagError as exc:
        raise exceptions.ValidationError({exc.field: [str(exc)]}) from None
    except WeComError as exc:
        raise _wecom_error(exc) from None


def _visible_contact(request, contact_id) -> Contact:
    """The contact if the user may see it; else 404, so others' customers do not leak."""
    try:
        return contacts_visible_to(request.user).get(pk=int(contact_id))
    except (ValueError, TypeError, Contact.DoesNotExist):
        raise exceptions.NotFound(_("No such contact among yours.")) from None


# --- tiers, points rules, mall -----------------------------------------------------------


class MemberTierSerializer(serializers.ModelSerializer):
    rights = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, max_length=30
    )

    class Meta:
        model = MemberTier
        fields = ["id", "name", "level", "min_orders", "min_order_fen", "min_spend_fen", "rights"]


class MemberTierViewSet(viewsets.ModelViewSet):
    """Member tiers with thresholds and rights; a change re-tiers every contact."""

    queryset = MemberTier.objects.order_by("level")
    serializer_class = MemberTierSerializer
    permission_classes = [RolePermission, ManagersWrite]

    def _retier_after_commit(self) -> None:
        transaction.on_commit(tiers_refresh_all.delay)

    def perform_create(self, serializer):
        serializer.save()
        self._retier_after_commit()

    def perform_update(self, serializer):
        serializer.save()
        self._retier_after_commit()

    def perform_destroy(self, instance):
        instance.delete()
        self._retier_after_commit()


class PointsRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = PointsRule
        fields = ["id", "reason", "points", "daily_cap", "is_active"]


class PointsRuleViewSet(viewsets.ModelViewSet):
    """Points earned per action (check-in, speaking, inviting, ordering) with a daily cap."""

    queryset = PointsRule.objects.order_by("reason")
    serializer_class = PointsRuleSerializer
    permission_classes = [RolePermission, ManagersWrite]


class MallItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = MallItem
        fields = ["id", "name", "points_cost", "stock", "is_active", "description"]


class RedeemSerializer(serializers.Serializer):
    contact = serializers.IntegerField(help_text="The contact who redeems.")
    key = serializers.CharField(
        max_length=100,
        required=False,
        help_text="Idempotency key: send the same one when retrying, to redeem only once.",
    )


class RedemptionSerializer(serializers.ModelSerializer):
    balance_after = serializers.IntegerField(source="entry.balance_after", read_only=True)

    class Meta:
        model = Redemption
        fields = ["id", "contact", "item", "points", "balance_after", "created_at"]


class MallItemViewSet(viewsets.ModelViewSet):
    """The points mall: managers keep the catalogue; operators redeem for their customers."""

    queryset = MallItem.objects.order_by("points_cost", "pk")
    serializer_class = MallItemSerializer
    permission_classes = [RolePermission, ManagersWrite]

    def get_permissions(self):
        if self.action == "redeem":
            return [RolePermission()]
        return super().get_permissions()

    @extend_schema(request=RedeemSerializer, responses={201: RedemptionSerializer})
    @action(detail=True, methods=["post"])
    def redeem(self, request, pk=None):
        """Spend the contact's points on one unit of this item."""
        item = self.get_object()
        data = RedeemSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        contact = _visible_contact(request, data.validated_data["contact"])
        key = data.validated_data.get("key") or str(uuid.uuid4())
        try:
            redemption = points_service.mall_redeem(
                contact, item, key=f"redeem:{contact.pk}:{item.pk}:{key}"
            )
        except points_service.PointsError as exc:
            raise PointsConflict(str(exc), code=exc.code) from None
        return Response(RedemptionSerializer(redemption).data, status=status.HTTP_201_CREATED)


# --- the points ledger -------------------------------------------------------------------


class PointsEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = PointsEntry
        fields = ["id", "contact", "delta", "balance_after", "reason", "note", "created_at"]


class PointsAdjustSerializer(serializers.Serializer):
    contact = serializers.IntegerField()
    delta = serializers.IntegerField(help_text="Points to add (positive) or take (negative).")
    note = serializers.CharField(max_length=200, help_text="Why: shown in the ledger.")
    key = serializers.CharField(max_length=100, required=False)

    def validate_delta(self, value: int) -> int:
        if value == 0:
            raise serializers.ValidationError(_("An adjustment must change the balance."))
        return value


class PointsEntryViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The points ledger (积分流水), newest first; operators see only their own customers'."""

    serializer_class = PointsEntrySerializer

    def get_permissions(self):
        if self.action == "adjust":
            return [RolePermission(), ManagersWrite()]
        return super().get_permissions()

    def get_queryset(self):
        entries = PointsEntry.objects.order_by("-created_at", "-pk")
        contact_id = self.request.query_params.get("contact")
        if contact_id is not None:
            return entries.filter(contact=_visible_contact(self.request, contact_id))
        return entries.filter(contact__in=contacts_visible_to(self.request.user))

    @extend_schema(
        parameters=[
            OpenApiParameter("contact", int, description="Only this contact's ledger."),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=PointsAdjustSerializer, responses={201: PointsEntrySerializer})
    @action(detail=False, methods=["post"])
    def adjust(self, request):
        """A manager's correction of a contact's balance, up or down (never below zero)."""
        data = PointsAdjustSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        contact = _visible_contact(request, data.validated_data["contact"])
        key = data.validated_data.get("key") or str(uuid.uuid4())
        try:
            entry = points_service.points_adjust(
                contact,
                delta=data.validated_data["delta"],
                key=f"adjust:{contact.pk}:{key}",
                occurred_at=timezone.now(),
                note=data.validated_data["note"],
                by_user=request.user,
            )
        except points_service.PointsError as exc:
            raise PointsConflict(str(exc), code=exc.code) from None
        return Response(PointsEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


# --- tags --------------------------------------------------------------------------------


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "group", "name", "order", "source", "wecom_tag_id"]
        read_only_fields = ["source", "wecom_tag_id"]
        # Name clashes are checked by the service, with WeCom's 30-character limit.
        validators = []

    def validate_group(self, group: TagGroup) -> TagGroup:
        if self.instance is not None and group != self.instance.group:
            raise serializers.ValidationError(_("A tag cannot move to another group."))
        return group


class TagInGroupSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "name", "order", "source", "wecom_tag_id"]


class TagGroupSerializer(serializers.ModelSerializer):
    tags = TagInGroupSerializer(many=True, read_only=True)
    tag_names = serializers.ListField(
        child=serializers.CharField(max_length=30),
        write_only=True,
        required=False,
        help_text="Tags to create with the group (WeCom keeps no empty group).",
    )
    name = serializers.CharField(max_length=30)

    class Meta:
        model = TagGroup
        fields = ["id", "name", "order", "source", "wecom_group_id", "tags", "tag_names"]
        read_only_fields = ["source", "wecom_group_id"]


class TagGroupViewSet(viewsets.ModelViewSet):
    """Tag groups with their tags, kept in step with WeCom's corp tag groups."""

    queryset = TagGroup.objects.prefetch_related("tags").order_by("order", "name")
    serializer_class = TagGroupSerializer

    def perform_create(self, serializer):
        data = serializer.validated_data
        with _tag_api_errors():
            serializer.instance = tag_service.tag_group_create(
                name=data["name"], tag_names=data.get("tag_names", []), order=data.get("order", 0)
            )

    def perform_update(self, serializer):
        group = serializer.instance
        data = serializer.validated_data
        with _tag_api_errors():
            if "name" in data:
                tag_service.tag_group_rename(group, name=data["name"])
            if "order" in data and data["order"] != group.order:
                group.order = data["order"]
                group.save(update_fields=["order"])

    def perform_destroy(self, instance):
        with _tag_api_errors():
            tag_service.tag_group_delete(instance)


class TagViewSet(viewsets.ModelViewSet):
    """Tags, kept in step with WeCom's corp tags; filter with ?group=<id>."""

    serializer_class = TagSerializer

    def get_queryset(self):
        tags = Tag.objects.select_related("group").order_by("group__order", "order", "name")
        if group := self.request.query_params.get("group"):
            tags = tags.filter(group_id=group if group.isdigit() else -1)
        return tags

    @extend_schema(parameters=[OpenApiParameter("group", int, description="Only this group.")])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def perform_create(self, serializer):
        data = serializer.validated_data
        with _tag_api_errors():
            serializer.instance = tag_service.tag_create(
                group=data["group"], name=data["name"], order=data.get("order", 0)
            )

    def perform_update(self, serializer):
        tag = serializer.instance
        data = serializer.validated_data
        with _tag_api_errors():
            if "name" in data:
                tag_service.tag_rename(tag, name=data["name"])
            if "order" in data and data["order"] != tag.order:
                tag.order = data["order"]
                tag.save(update_fields=["order"])

    def perform_destroy(self, instance):
        with _tag_api_errors():
            tag_service.tag_delete(instance)


# --- tag rules ---------------------------------------------------------------------------


class TagRuleSerializer(serializers.ModelSerializer):
    tag_name = serializers.CharField(source="tag.name", read_only=True)
    conditions = serializers.JSONField(
        help_text='{"all"|"any": [{"field", "op", "value", "within_days"?}, ...]}; '
        "see contacts/tag_rules.py for the fields."
    )

    class Meta:
        model = TagRule
        fields = ["id", "tag", "tag_name", "conditions", "is_active", "evaluated_at"]
        read_only_fields = ["evaluated_at"]

    def validate(self, attrs):
        tag = attrs.get("tag") or getattr(self.instance, "tag", None)
        if "conditions" in attrs:
            try:
                attrs["conditions"] = tag_rule_validate(
                    attrs["conditions"], tag_id=tag.pk if tag else None
                )
            except ValueError as exc:
                raise serializers.ValidationError({"conditions": [str(exc)]}) from None
        return attrs


class ConditionsPreviewSerializer(serializers.Serializer):
    conditions = serializers.JSONField()

    def validate_conditions(self, value):
        try:
            return tag_rule_validate(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class TagRuleViewSet(viewsets.ModelViewSet):
    """Rules that give a tag to whoever meets their conditions, and take it back after.

    Saving a rule evaluates it over every contact in the background; so does the hourly job.
    """

    queryset = TagRule.objects.select_related("tag").order_by("pk")
    serializer_class = TagRuleSerializer

    def _evaluate_after_commit(self, rule: TagRule) -> None:
        transaction.on_commit(lambda: tag_rule_evaluate.delay(rule.pk))

    def perform_create(self, serializer):
        self._evaluate_after_commit(serializer.save())

    def perform_update(self, serializer):
        self._evaluate_after_commit(serializer.save())

    @extend_schema(
        request=ConditionsPreviewSerializer,
        responses={200: inline_serializer("RulePreview", {"matching": serializers.IntegerField()})},
    )
    @action(detail=False, methods=["post"])
    def preview(self, request):
        """How many contacts these conditions match right now (nothing is saved)."""
        data = ConditionsPreviewSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        q = conditions_q(data.validated_data["conditions"], now=timezone.now())
        return Response({"matching": Contact.objects.filter(q).count()})


router = SimpleRouter()
router.register("tiers", MemberTierViewSet, basename="member-tier")
router.register("points-rules", PointsRuleViewSet, basename="points-rule")
router.register("mall-items", MallItemViewSet, basename="mall-item")
router.register("points-entries", PointsEntryViewSet, basename="points-entry")
router.register("tag-groups", TagGroupViewSet, basename="tag-group")
router.register("tags", TagViewSet, basename="tag")
router.register("tag-rules", TagRuleViewSet, basename="tag-rule")
urlpatterns = router.urls
