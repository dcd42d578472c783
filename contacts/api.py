"""REST API of contacts: the filtered list, the contact page's data, timeline, remarks, bulk."""

from django import forms
from django.utils.text import format_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from analytics.models import Event
from contacts.filters import (
    FILTER_PARAMETERS,
    ContactFilterError,
    IdField,
    IdListField,
    contact_filters_parse,
)
from contacts.models import Contact, ContactNote, ContactTag, Follow
from contacts.remarks import (
    BULK_MAX_CONTACTS,
    BULK_TAG_IN_REQUEST,
    BULK_TAG_MAX,
    EXPORT_FORMATS,
    BulkAction,
    RemarkError,
    contact_note_add,
    contact_note_edit,
    contacts_bulk_act,
)
from contacts.selectors import (
    contact_profile,
    contact_rows,
    contact_rows_attach,
    contact_timeline,
    contacts_filtered,
    contacts_visible_to,
    timeline_details,
)

# --- OpenAPI: the filter parameters, read from the one filter form ------------------------


def _filter_parameter(name: str, field: forms.Field) -> OpenApiParameter:
    kind, many, enum, ids = OpenApiTypes.STR, False, None, ""
    model = field.model._meta.model_name if getattr(field, "model", None) else "group"
    if isinstance(field, IdField):
        kind, ids = OpenApiTypes.INT, f" (a {model} id)"
    elif isinstance(field, IdListField):
        kind, many = OpenApiTypes.INT, True
        ids = f" ({model} ids: repeat the parameter or separate them with commas)"
    elif isinstance(field, forms.MultipleChoiceField):
        many, enum = True, [value for value, _ in field.choices]
    elif isinstance(field, forms.ChoiceField):
        enum = [value for value, _ in field.choices if value]
    elif isinstance(field, forms.DateField):
        kind = OpenApiTypes.DATE
    elif isinstance(field, forms.IntegerField):
        kind = OpenApiTypes.INT
    elif isinstance(field, forms.DecimalField):
        kind = OpenApiTypes.NUMBER
    return OpenApiParameter(
        name,
        kind,
        OpenApiParameter.QUERY,
        required=False,
        many=many,
        enum=enum,
        # Lazy, so the schema speaks the language it is asked in.
        description=format_lazy("{}. {}{}", field.label, field.help_text or "", ids),
    )


FILTER_OPENAPI_PARAMETERS = [
    _filter_parameter(name, field) for name, field in FILTER_PARAMETERS.items()
]


def _filters_or_400(request):
    try:
        return contact_filters_parse(request.query_params, strict=True)
    except ContactFilterError as exc:
        raise ValidationError(exc.errors) from None


# --- serializers ------------------------------------------------------------------------


class NamedRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ContactTierRefSerializer(NamedRefSerializer):
    level = serializers.IntegerField()


class ContactListTagSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    group_id = serializers.IntegerField()
    source = serializers.CharField()


class ContactListSerializer(serializers.ModelSerializer):
    """One row of the list: what the list page shows."""

    tier = ContactTierRefSerializer(allow_null=True)
    source_channel = NamedRefSerializer(allow_null=True)
    staff = NamedRefSerializer(many=True, source="staff_list", help_text="Staff following now")
    tags = ContactListTagSerializer(many=True, source="tag_list")
    order_count = serializers.IntegerField(help_text="Paid orders not refunded in full")
    spend_fen = serializers.IntegerField(help_text="Total paid minus refunds, in fen")
    customer_type = serializers.CharField()

    class Meta:
        model = Contact
        fields = [
            "id",
            "external_userid",
            "name",
            "avatar",
            "gender",
            "stage",
            "influence",
            "opted_out",
            "points_balance",
            "first_added_at",
            "last_active_at",
            "tier",
            "source_channel",
            "staff",
            "tags",
            "order_count",
            "spend_fen",
            "customer_type",
        ]


class ContactFollowSerializer(serializers.ModelSerializer):
    staff = NamedRefSerializer()
    channel = NamedRefSerializer(allow_null=True)
    is_active = serializers.BooleanField()

    class Meta:
        model = Follow
        fields = [
            "staff",
            "remark",
            "description",
            "added_at",
            "state",
            "channel",
            "is_active",
            "deleted_by_staff_at",
            "deleted_by_contact_at",
        ]


class ContactRemarkSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", allow_null=True, default=None)

    class Meta:
        model = ContactNote
        fields = ["id", "kind", "text", "author", "created_at"]


class ContactRemarkInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ContactNote.Kind.choices)
    text = serializers.CharField(max_length=2000)


class ContactTagDetailSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(source="tag.id")
    name = serializers.CharField(source="tag.name")
    group = NamedRefSerializer(source="tag.group")

    class Meta:
        model = ContactTag
        fields = ["id", "name", "group", "source", "created_at"]


class ContactPointsEntrySerializer(serializers.Serializer):
    delta = serializers.IntegerField()
    balance_after = serializers.IntegerField()
    reason = serializers.CharField()
    note = serializers.CharField()
    created_at = serializers.DateTimeField()


class ContactEventSerializer(serializers.ModelSerializer):
    type_display = serializers.CharField(source="get_type_display")
    detail = serializers.CharField(default="")
    group = NamedRefSerializer(allow_null=True)
    staff = NamedRefSerializer(allow_null=True)
    channel = NamedRefSerializer(allow_null=True)
    campaign = NamedRefSerializer(allow_null=True)

    class Meta:
        model = Event
        fields = [
            "id",
            "type",
            "type_display",
            "occurred_at",
            "amount",
            "payload",
            "detail",
            "group",
            "staff",
            "channel",
            "campaign",
        ]


class ContactOrderEventSerializer(ContactEventSerializer):
    order_no = serializers.SerializerMethodField()

    class Meta(ContactEventSerializer.Meta):
        fields = [
            "id",
            "type",
            "type_display",
            "occurred_at",
            "amount",
            "order_no",
            "group",
            "campaign",
        ]

    def get_order_no(self, event) -> str:
        payload = event.payload if isinstance(event.payload, dict) else {}
        return str(payload.get("order_no") or "")


class ContactGroupStaySerializer(serializers.Serializer):
    role = serializers.CharField()
    joined_at = serializers.DateTimeField()
    join_scene = serializers.IntegerField(allow_null=True)
    join_scene_display = serializers.CharField(source="get_join_scene_display", allow_null=True)
    left_at = serializers.DateTimeField(allow_null=True)
    quit_scene = serializers.IntegerField(allow_null=True)
    quit_scene_display = serializers.CharField(source="get_quit_scene_display", allow_null=True)


class ContactGroupStaysSerializer(serializers.Serializer):
    group = NamedRefSerializer()
    is_member = serializers.BooleanField()
    stays = ContactGroupStaySerializer(many=True)


class ReferralContactSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    first_added_at = serializers.DateTimeField(allow_null=True)


class ContactDetailSerializer(serializers.Serializer):
    """The contact page (客户 360) as data; the timeline pages at .../timeline/."""

    id = serializers.IntegerField(source="contact.id")
    external_userid = serializers.CharField(source="contact.external_userid")
    name = serializers.CharField(source="contact.name")
    avatar = serializers.CharField(source="contact.avatar")
    gender = serializers.IntegerField(source="contact.gender")
    source_channel = NamedRefSerializer(source="contact.source_channel", allow_null=True)
    first_added_at = serializers.DateTimeField(source="contact.first_added_at", allow_null=True)
    last_active_at = serializers.DateTimeField(source="contact.last_active_at", allow_null=True)
    influence = serializers.CharField(source="contact.influence")
    opted_out = serializers.BooleanField(source="contact.opted_out")
    stage = serializers.CharField(source="contact.stage")
    customer_type = serializers.CharField()
    tier = ContactTierRefSerializer(source="contact.tier", allow_null=True)
    tier_rights = serializers.ListField(child=serializers.CharField())
    points_balance = serializers.IntegerField(source="contact.points_balance")
    points_entries = ContactPointsEntrySerializer(many=True)
    follows = ContactFollowSerializer(many=True)
    notes = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()
    order_count = serializers.IntegerField()
    spend_fen = serializers.IntegerField()
    orders = ContactOrderEventSerializer(many=True)
    groups = ContactGroupStaysSerializer(many=True)
    referrer = serializers.SerializerMethodField()
    referral_count = serializers.IntegerField()
    referrals = ReferralContactSerializer(many=True)

    @extend_schema_field(ContactRemarkSerializer(many=True))
    def get_notes(self, profile) -> list:
        notes = [note for _, _, kind_notes in profile.notes_by_kind for note in kind_notes]
        return ContactRemarkSerializer(notes, many=True).data

    @extend_schema_field(ContactTagDetailSerializer(many=True))
    def get_tags(self, profile) -> list:
        tags = [ct for _, contact_tags in profile.tags_by_group for ct in contact_tags]
        return ContactTagDetailSerializer(tags, many=True).data

    @extend_schema_field(ReferralContactSerializer(allow_null=True))
    def get_referrer(self, profile) -> dict | None:
        referrer = profile.contact.referrer
        return ReferralContactSerializer(referrer).data if referrer else None


class ContactBulkInputSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=BulkAction.choices)
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        help_text="The customers to act on; or set all_matching",
    )
    all_matching = serializers.BooleanField(
        default=False,
        help_text="Act on every customer the query parameters' filters match",
    )
    tags = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        default=list,
        help_text="Tag ids (tag, untag)",
    )
    staff = serializers.IntegerField(
        required=False, allow_null=True, help_text="Staff id (assign_staff)"
    )
    format = serializers.ChoiceField(choices=EXPORT_FORMATS, default="csv")

    def validate(self, data):
        if bool(data.get("ids")) == bool(data.get("all_matching")):
            raise ValidationError({"ids": ["Give ids, or all_matching: true; exactly one."]})
        return data


class ContactBulkFailureSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    reason = serializers.CharField()


class ContactBulkResultSerializer(serializers.Serializer):
    action = serializers.CharField()
    requested = serializers.IntegerField()
    done = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    queued = serializers.IntegerField(
        help_text="Customers handed to the background job (tagging many); see the job"
    )
    failed = ContactBulkFailureSerializer(many=True)
    job = inline_serializer(
        "ContactBulkJob",
        {
            "id": serializers.IntegerField(),
            "kind": serializers.CharField(),
            "status": serializers.CharField(),
            "percent": serializers.IntegerField(),
        },
        allow_null=True,
        help_text="An export, or tagging many customers: follow it at /io/api/jobs/<id>",
    )


def _bulk_result_data(result) -> dict:
    job = result.job
    return {
        "action": result.action,
        "requested": result.requested,
        "done": len(result.done),
        "unchanged": len(result.unchanged),
        "queued": len(result.queued),
        "failed": [
            {"id": pk, "name": name, "reason": reason} for pk, name, reason in result.failures()
        ],
        "job": {"id": job.pk, "kind": job.kind, "status": job.status, "percent": job.percent}
        if job
        else None,
    }


def _remark_error(exc: RemarkError) -> ValidationError:
    return ValidationError({exc.field: [str(exc)]})


# --- the viewset ----------------------------------------------------------------------


class ContactViewSet(viewsets.GenericViewSet):
    """Customers: operators see their own (an active follow by their staff member)."""

    serializer_class = ContactListSerializer
    lookup_value_regex = r"[0-9]+"

    def get_permissions(self):
        if self.action == "bulk":
            # Analysts may export; contacts_bulk_act refuses them every other action.
            return [IsAuthenticated()]
        return super().get_permissions()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Contact.objects.none()
        return contacts_visible_to(self.request.user)

    def _profile(self, pk):
        try:
            return contact_profile(user=self.request.user, contact_id=int(pk))
        except (Contact.DoesNotExist, ValueError):
            raise NotFound("No such customer.") from None

    @extend_schema(
        summary="List customers",
        parameters=FILTER_OPENAPI_PARAMETERS,
        responses=ContactListSerializer(many=True),
    )
    def list(self, request):
        filters = _filters_or_400(request)
        contacts = contact_rows(contacts_filtered(user=request.user, filters=filters))
        page = self.paginate_queryset(contacts)
        contact_rows_attach(page)
        return self.get_paginated_response(ContactListSerializer(page, many=True).data)

    @extend_schema(summary="One customer (客户 360)", responses=ContactDetailSerializer)
    def retrieve(self, request, pk=None):
        return Response(ContactDetailSerializer(self._profile(pk)).data)

    @extend_schema(
        summary="A customer's events, newest first", responses=ContactEventSerializer(many=True)
    )
    @action(detail=True, methods=["get"])
    def timeline(self, request, pk=None):
        if not contacts_visible_to(request.user).filter(pk=pk).exists():
            raise NotFound("No such customer.")
        page = self.paginate_queryset(contact_timeline(contact_id=int(pk)))
        timeline_details(page)
        return self.get_paginated_response(ContactEventSerializer(page, many=True).data)

    @extend_schema(
        summary="Add a remark",
        request=ContactRemarkInputSerializer,
        responses={201: ContactRemarkSerializer},
    )
    @action(detail=True, methods=["post"])
    def notes(self, request, pk=None):
        contact = self._visible(pk)
        data = _valid(ContactRemarkInputSerializer, request.data)
        try:
            note = contact_note_add(user=request.user, contact=contact, **data)
        except RemarkError as exc:
            raise _remark_error(exc) from None
        return Response(ContactRemarkSerializer(note).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Correct a remark",
        request=ContactRemarkInputSerializer,
        responses=ContactRemarkSerializer,
        parameters=[OpenApiParameter("note_id", OpenApiTypes.INT, OpenApiParameter.PATH)],
    )
    @action(detail=True, methods=["patch"], url_path=r"notes/(?P<note_id>[0-9]+)")
    def note_edit(self, request, pk=None, note_id=None):
        contact = self._visible(pk)
        note = ContactNote.objects.filter(pk=note_id, contact=contact).first()
        if note is None:
            raise NotFound("No such remark.")
        data = _valid(ContactRemarkInputSerializer, {"kind": note.kind, **request.data})
        try:
            note = contact_note_edit(user=request.user, note=note, **data)
        except RemarkError as exc:
            raise _remark_error(exc) from None
        return Response(ContactRemarkSerializer(note).data)

    @extend_schema(
        summary="Tag, untag, assign staff or export many customers",
        description=(
            "Act on the given ids, or (all_matching: true) on every customer the query "
            "parameters' filters match, the same filters as the list. Analysts may only export. "
            f"Tagging up to {BULK_TAG_IN_REQUEST} customers is done before the answer; more "
            f"(up to {BULK_TAG_MAX:,}) and exports run as a background job, given in `job`. "
            f"Assigning staff takes up to {BULK_MAX_CONTACTS} customers."
        ),
        parameters=FILTER_OPENAPI_PARAMETERS,
        request=ContactBulkInputSerializer,
        responses=ContactBulkResultSerializer,
    )
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        data = _valid(ContactBulkInputSerializer, request.data)
        if data["all_matching"]:
            filters = _filters_or_400(request)
            contact_ids = list(
                contacts_filtered(user=request.user, filters=filters).values_list("pk", flat=True)
            )
        else:
            contact_ids = data["ids"]
        try:
            result = contacts_bulk_act(
                user=request.user,
                action=data["action"],
                contact_ids=contact_ids,
                tag_ids=data["tags"],
                staff_id=data.get("staff"),
                fmt=data["format"],
            )
        except RemarkError as exc:
            raise _remark_error(exc) from None
        # PermissionDenied (an analyst tagging) becomes a 403 in DRF's exception handler.
        return Response(_bulk_result_data(result))

    def _visible(self, pk) -> Contact:
        contact = contacts_visible_to(self.request.user).filter(pk=pk).first()
        if contact is None:
            raise NotFound("No such customer.")
        return contact


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
