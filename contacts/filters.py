"""The contact filter language: query parameters → validated ContactFilters, for page and API."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django import forms
from django.apps import apps
from django.db.models import Q, TextChoices
from django.utils.translation import gettext_lazy as _

from contacts.models import ChannelCode, Contact, MemberTier, Staff, Tag, TagGroup
from scrm.widgets import ManyOptionsSelect

FEN_PER_YUAN = 100
# Query parameters that are not filters but may sit beside them in the same URL.
NON_FILTER_PARAMS = frozenset({"page", "format", "timeline_page"})


class CustomerType(TextChoices):
    """PRODUCT.md's four customer types (传播期), applied in this order; see selectors."""

    LOW_NEED = "low_need", _("Low-need (低需求)")
    LOYAL = "loyal", _("Loyal (忠实)")
    BARGAIN = "bargain", _("Bargain hunter (羊毛)")
    NEED_DRIVEN = "need_driven", _("Need-driven (需求)")
    UNCLASSIFIED = "unclassified", _("Unclassified")


class ContactSort(TextChoices):
    LAST_ACTIVE_DESC = "-last_active", _("Last active, newest first")
    LAST_ACTIVE = "last_active", _("Last active, oldest first")
    ADDED_DESC = "-added", _("Added, newest first")
    ADDED = "added", _("Added, oldest first")
    NAME = "name", _("Name, A to Z")
    NAME_DESC = "-name", _("Name, Z to A")
    ORDERS_DESC = "-orders", _("Most orders first")
    ORDERS = "orders", _("Fewest orders first")
    SPEND_DESC = "-spend", _("Highest spend first")
    SPEND = "spend", _("Lowest spend first")
    POINTS_DESC = "-points", _("Most points first")
    POINTS = "points", _("Fewest points first")


DEFAULT_SORT = ContactSort.LAST_ACTIVE_DESC


@dataclass(frozen=True)
class ContactFilters:
    """What the operator asked for; empty values mean "no condition"."""

    q: str = ""
    tags_all: tuple[int, ...] = ()
    tags_any: tuple[int, ...] = ()
    tags_none: tuple[int, ...] = ()
    tag_group: tuple[int, ...] = ()
    tier: tuple[int, ...] = ()
    stage: tuple[str, ...] = ()
    staff: int | None = None
    channel: int | None = None
    group: int | None = None
    active_since: date | None = None
    active_until: date | None = None
    inactive_days: int | None = None
    orders_min: int | None = None
    orders_max: int | None = None
    spend_min_fen: int | None = None
    spend_max_fen: int | None = None
    customer_type: str = ""
    sort: str = DEFAULT_SORT

    @property
    def needs_order_stats(self) -> bool:
        return any(
            value is not None
            for value in (self.orders_min, self.orders_max, self.spend_min_fen, self.spend_max_fen)
        )


class ContactFilterError(Exception):
    """Bad filter parameters: `errors` maps each bad parameter to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{name}: {' '.join(m)}" for name, m in errors.items()))
        self.errors = errors


class IdListWidget(forms.SelectMultiple):
    """Repeated parameters (?tier=1&tier=2), comma-separated (?tier=1,2), or both."""

    def value_from_datadict(self, data, files, name):
        values = data.getlist(name) if hasattr(data, "getlist") else data.get(name)
        if values is None:
            return []
        if isinstance(values, str | int):
            values = [values]
        return [part.strip() for value in values for part in str(value).split(",") if part.strip()]


class IdListField(forms.Field):
    """A list of database ids of one model; every id must exist."""

    widget = IdListWidget
    default_error_messages = {
        "invalid": _("Enter ids as whole numbers, separated by commas; %(value)s is not one."),
        "unknown": _("No %(model)s with id %(ids)s."),
    }

    def __init__(self, *, model, **kwargs):
        self.model = model
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_python(self, value) -> tuple[int, ...]:
        ids = []
        for item in value or []:
            try:
                number = int(item)
            except (TypeError, ValueError):
                raise forms.ValidationError(
                    self.error_messages["invalid"], code="invalid", params={"value": item}
                ) from None
            if number <= 0:
                raise forms.ValidationError(
                    self.error_messages["invalid"], code="invalid", params={"value": item}
                )
            if number not in ids:
                ids.append(number)
        return tuple(ids)

    def validate(self, value) -> None:
        super().validate(value)
        if not value:
            return
        found = set(self.model.objects.filter(pk__in=value).values_list("pk", flat=True))
        missing = [str(pk) for pk in value if pk not in found]
        if missing:
            raise forms.ValidationError(
                self.error_messages["unknown"],
                code="unknown",
                params={"model": self.model._meta.verbose_name, "ids": ", ".join(missing)},
            )


class IdField(IdListField):
    """One database id (a select on the page, a number in the API)."""

    widget = forms.Select

    def to_python(self, value) -> int | None:
        if value in (None, ""):
            return None
        if isinstance(value, list | tuple):
            if len(value) > 1:
                raise forms.ValidationError(_("Give one id, not several."), code="several")
            value = value[0]
        ids = super().to_python([value])
        return ids[0] if ids else None

    def validate(self, value) -> None:
        super().validate((value,) if value is not None else ())


class StageListField(forms.MultipleChoiceField):
    widget = IdListWidget

    def to_python(self, value):
        return tuple(super().to_python(value))


def _group_model():
    # Groups sit above contacts: look the model up at run time instead of importing it.
    return apps.get_model("groups", "Group")


class ContactFilterForm(forms.Form):
    """Every filter of the contact list; the page renders it, the API reads its errors."""

    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=64,
        strip=True,
        help_text=_("Name, WeCom remark or remark text contains this"),
    )
    tags_all = IdListField(
        model=Tag, label=_("Has all of these tags"), help_text=_("All must be present")
    )
    tags_any = IdListField(
        model=Tag, label=_("Has any of these tags"), help_text=_("At least one must be present")
    )
    tags_none = IdListField(
        model=Tag, label=_("Has none of these tags"), help_text=_("None may be present")
    )
    tag_group = IdListField(
        model=TagGroup,
        label=_("Has a tag in tag group"),
        help_text=_("A tag from each chosen group"),
    )
    tier = IdListField(model=MemberTier, label=_("Tier"), help_text=_("Any of these"))
    stage = StageListField(
        label=_("Lifecycle stage"),
        required=False,
        choices=Contact.Stage.choices,
        help_text=_("Any of these"),
    )
    staff = IdField(
        model=Staff, label=_("Followed by"), help_text=_("Staff member who follows them now")
    )
    channel = IdField(
        model=ChannelCode,
        label=_("Source channel"),
        help_text=_("The channel code that brought them"),
    )
    group = IdField(
        model=None,
        label=_("In group"),
        help_text=_("Currently a member of this group"),
        widget=ManyOptionsSelect,
    )
    active_since = forms.DateField(
        label=_("Last active on or after"),
        required=False,
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("YYYY-MM-DD, Shanghai time"),
    )
    active_until = forms.DateField(
        label=_("Last active on or before"),
        required=False,
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("YYYY-MM-DD, Shanghai time"),
    )
    inactive_days = forms.IntegerField(
        label=_("Inactive for at least (days)"),
        required=False,
        min_value=1,
        max_value=3650,
        help_text=_("No speech or order for this many days"),
    )
    orders_min = forms.IntegerField(
        label=_("Orders, at least"), required=False, min_value=0, max_value=1_000_000
    )
    orders_max = forms.IntegerField(
        label=_("Orders, at most"), required=False, min_value=0, max_value=1_000_000
    )
    spend_min = forms.DecimalField(
        label=_("Spend, at least (yuan)"),
        required=False,
        min_value=Decimal(0),
        max_digits=14,
        decimal_places=2,
        help_text=_("Total paid minus refunds, in yuan"),
    )
    spend_max = forms.DecimalField(
        label=_("Spend, at most (yuan)"),
        required=False,
        min_value=Decimal(0),
        max_digits=14,
        decimal_places=2,
        help_text=_("Total paid minus refunds, in yuan"),
    )
    customer_type = forms.ChoiceField(
        label=_("Customer type"),
        required=False,
        choices=[("", _("Any"))] + CustomerType.choices,
    )
    sort = forms.ChoiceField(label=_("Sort by"), required=False, choices=ContactSort.choices)

    def __init__(self, data=None, *, user=None, strict: bool = False, for_page: bool = False):
        super().__init__(data if data is not None else {})
        self.strict = strict
        self.fields["group"].model = _group_model()
        if for_page:
            self._load_choices(user)

    def _load_choices(self, user) -> None:
        """Options for the page's selects (the API needs none: it checks ids exist)."""
        tags = Tag.objects.select_related("group").order_by("group__order", "group__name", "order")
        grouped: dict[str, list] = {}
        for tag in tags:
            grouped.setdefault(tag.group.name, []).append((tag.pk, tag.name))
        tag_choices = list(grouped.items())
        for name in ("tags_all", "tags_any", "tags_none"):
            self.fields[name].widget.choices = tag_choices
        self.fields["tag_group"].widget.choices = list(TagGroup.objects.values_list("pk", "name"))
        self.fields["tier"].widget.choices = list(MemberTier.objects.values_list("pk", "name"))
        blank = [("", _("Any"))]
        self.fields["staff"].widget.choices = blank + list(
            Staff.objects.order_by("name").values_list("pk", "name")
        )
        self.fields["channel"].widget.choices = blank + list(
            ChannelCode.objects.order_by("name").values_list("pk", "name")
        )
        groups = _group_model().objects.filter(dismissed_at__isnull=True).order_by("name")
        if user is not None and not (user.is_manager or user.is_read_only):
            staff = getattr(user, "staff", None)
            groups = (
                groups.filter(Q(owner=staff) | Q(admins=staff)).distinct()
                if staff
                else groups.none()
            )
        # A group's name, else its chat id (as Group.__str__), without a model per group.
        self.fields["group"].widget.choices = blank + [
            (pk, name or chat_id)
            for pk, name, chat_id in groups.values_list("pk", "name", "chat_id")
        ]

    def clean(self):
        cleaned = super().clean()
        if self.strict and hasattr(self.data, "keys"):
            for name in self.data.keys():
                if name not in self.fields and name not in NON_FILTER_PARAMS:
                    # Keyed by the parameter itself, so the error names it.
                    self._errors[name] = self.error_class(
                        [_("Unknown filter parameter: %(name)s.") % {"name": name}]
                    )
        pairs = [
            ("orders_min", "orders_max", _("must not be above orders_max")),
            ("spend_min", "spend_max", _("must not be above spend_max")),
            ("active_since", "active_until", _("must not be after active_until")),
        ]
        for low, high, message in pairs:
            if cleaned.get(low) is not None and cleaned.get(high) is not None:
                if cleaned[low] > cleaned[high]:
                    self.add_error(low, message)
        overlap = set(cleaned.get("tags_none") or ()) & (
            set(cleaned.get("tags_all") or ()) | set(cleaned.get("tags_any") or ())
        )
        if overlap:
            self.add_error(
                "tags_none",
                _("Tag %(ids)s is also required; no customer could match.")
                % {"ids": ", ".join(map(str, sorted(overlap)))},
            )
        return cleaned

    def filters(self) -> ContactFilters:
        """The validated filters; call after is_valid()."""
        data = self.cleaned_data

        def fen(value: Decimal | None) -> int | None:
            return None if value is None else int(value * FEN_PER_YUAN)

        return ContactFilters(
            q=data.get("q") or "",
            tags_all=data.get("tags_all") or (),
            tags_any=data.get("tags_any") or (),
            tags_none=data.get("tags_none") or (),
            tag_group=data.get("tag_group") or (),
            tier=data.get("tier") or (),
            stage=data.get("stage") or (),
            staff=data.get("staff"),
            channel=data.get("channel"),
            group=data.get("group"),
            active_since=data.get("active_since"),
            active_until=data.get("active_until"),
            inactive_days=data.get("inactive_days"),
            orders_min=data.get("orders_min"),
            orders_max=data.get("orders_max"),
            spend_min_fen=fen(data.get("spend_min")),
            spend_max_fen=fen(data.get("spend_max")),
            customer_type=data.get("customer_type") or "",
            sort=data.get("sort") or DEFAULT_SORT,
        )

    def error_dict(self) -> dict[str, list[str]]:
        """Errors by parameter name; errors about no single parameter under "params"."""
        return {
            ("params" if name == "__all__" else name): [str(m) for m in messages]
            for name, messages in self.errors.items()
        }


def contact_filters_parse(params, *, strict: bool = True) -> ContactFilters:
    """Parse the contact list's query parameters (a QueryDict or dict) into filters.

    Raises ContactFilterError naming each bad parameter. `strict` also rejects parameters
    that are not filters, so a misspelt one is not silently ignored (the API's choice).
    """
    form = ContactFilterForm(params, strict=strict)
    if not form.is_valid():
        raise ContactFilterError(form.error_dict())
    return form.filters()


# The API documents its query parameters from this, so they never drift from the form.
FILTER_PARAMETERS = ContactFilterForm.base_fields
