"""Forms of the SOP pages: plans, steps, content, and the list filters."""

from datetime import date, timedelta

from django import forms
from django.contrib.postgres.forms import SimpleArrayField
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from contacts.models import Contact, MemberTier, Staff, Tag
from groups.models import Group
from groups.selectors import groups_visible_to
from scrm.widgets import ManyOptionsSelectMultiple
from sop.content import validate
from sop.models import ContentItem, Delivery, Plan, SkipReason, Step
from sop.services import plan_staff_for

WEEKDAYS = [
    (0, _("Mon")),
    (1, _("Tue")),
    (2, _("Wed")),
    (3, _("Thu")),
    (4, _("Fri")),
    (5, _("Sat")),
    (6, _("Sun")),
]


def errors_to_form(form: forms.BaseForm, exc: ValidationError) -> None:
    """Put a service's errors next to the fields they name; the rest above the form."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def _checkboxes(label, choices, **kwargs) -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        label=label,
        choices=choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        **kwargs,
    )


class TagChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, tag: Tag) -> str:
        return f"{tag.group.name} / {tag.name}"


class StaffChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, staff: Staff) -> str:
        return f"{staff.name} · {staff.userid}"


class GroupChoiceField(forms.ModelMultipleChoiceField):
    widget = ManyOptionsSelectMultiple
    # All a label reads: a thousand groups load faster without their other columns.
    LABEL_FIELDS = ("pk", "name", "chat_id", "owner__name")

    def label_from_instance(self, group: Group) -> str:
        return f"{group.name or group.chat_id} · {group.owner.name}"


# --- lists -------------------------------------------------------------------------------


class PlanFilterForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("Kind"), required=False, choices=[("", _("All kinds")), *Plan.Kind.choices]
    )
    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[("", _("All but archived")), *Plan.Status.choices, ("all", _("All"))],
    )


class DeliveryFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[("", _("All statuses")), *Delivery.Status.choices],
    )
    reason = forms.ChoiceField(
        label=_("Reason"), required=False, choices=[("", _("Any reason")), *SkipReason.choices]
    )


class PeriodForm(forms.Form):
    """Two Shanghai calendar days, both included; the last 7 days unless chosen."""

    since = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput({"type": "date"})
    )
    until = forms.DateField(label=_("To"), required=False, widget=forms.DateInput({"type": "date"}))

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", _("Must be on or after the start."))
        return data

    def period(self) -> tuple[date, date]:
        today = timezone.localdate()
        until, since = today, today - timedelta(days=6)
        if self.is_valid():
            until = self.cleaned_data.get("until") or until
            since = self.cleaned_data.get("since") or until - timedelta(days=6)
        return since, until


# --- plans -------------------------------------------------------------------------------


class PlanForm(forms.ModelForm):
    """A plan's settings. An operator picks among their own groups; a manager among all."""

    group_types = _checkboxes(_("Group types"), Group.Type.choices)
    group_stages = _checkboxes(_("Group stages"), Group.Stage.choices)
    group_labels = SimpleArrayField(
        forms.CharField(max_length=30),
        label=_("Group labels"),
        required=False,
        help_text=_("Groups carrying any of these labels, separated by commas."),
    )
    stages = _checkboxes(_("Lifecycle stages"), Contact.Stage.choices)
    groups = GroupChoiceField(
        label=_("Hand-picked groups"),
        queryset=Group.objects.none(),
        required=False,
        help_text=_("When any are picked, the plan reaches only these; the filters are ignored."),
    )
    owners = StaffChoiceField(
        label=_("Group owners"), queryset=Staff.objects.none(), required=False
    )
    tags_all = TagChoiceField(
        label=_("Has all of these tags"), queryset=Tag.objects.none(), required=False
    )
    tags_any = TagChoiceField(
        label=_("Has any of these tags"), queryset=Tag.objects.none(), required=False
    )
    tags_none = TagChoiceField(
        label=_("Has none of these tags"), queryset=Tag.objects.none(), required=False
    )
    tiers = forms.ModelMultipleChoiceField(
        label=_("Member tiers"), queryset=MemberTier.objects.all(), required=False
    )

    class Meta:
        model = Plan
        fields = [
            "kind",
            "name",
            "description",
            "priority",
            "holiday_policy",
            "group_types",
            "group_stages",
            "group_labels",
            "owners",
            "groups",
            "trigger",
            "inactive_days",
            "tags_all",
            "tags_any",
            "tags_none",
            "tiers",
            "stages",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}
        help_texts = {
            "priority": _(
                "1–100; when a group's or customer's push budget is short, the "
                "higher priority goes first."
            ),
            "inactive_days": _("For the “went quiet” trigger."),
        }

    GROUP_FIELDS = ("group_types", "group_stages", "group_labels", "owners", "groups")
    JOURNEY_FIELDS = (
        "trigger",
        "inactive_days",
        "tags_all",
        "tags_any",
        "tags_none",
        "tiers",
        "stages",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        tags = Tag.objects.select_related("group").order_by("group__name", "name")
        for name in ("tags_all", "tags_any", "tags_none"):
            self.fields[name].queryset = tags
        present = self.instance.groups.values("pk") if self.instance.pk else Group.objects.none()
        visible = groups_visible_to(user).filter(dismissed_at__isnull=True)
        self.fields["groups"].queryset = (
            Group.objects.filter(Q(pk__in=visible.values("pk")) | Q(pk__in=present))
            .select_related("owner")
            .only(*GroupChoiceField.LABEL_FIELDS)
            .order_by("name")
        )
        if user.is_manager:
            self.fields["owners"].queryset = Staff.objects.filter(
                status=Staff.Status.ACTIVE
            ).order_by("name")
        else:
            # An operator's plan reaches only their own groups: choosing owners means nothing.
            del self.fields["owners"]
        # Only the "went quiet" trigger reads it; left empty, the model's default stands.
        self.fields["inactive_days"].required = False
        if self.instance.pk:
            # Slots are keyed by the kind's rules: a plan keeps its kind once made.
            self.fields["kind"].disabled = True

    def clean(self):
        data = super().clean()
        if data.get("kind") == Plan.Kind.JOURNEY and not data.get("trigger"):
            self.add_error("trigger", _("A journey needs a trigger."))
        if data.get("inactive_days") is None:
            data["inactive_days"] = self.instance.inactive_days or 30
        return data

    def save(self, commit=True):
        plan = super().save(commit=False)
        if plan.pk is None:
            plan.created_by = self.user
            plan.staff = plan_staff_for(self.user)
        if commit:
            plan.save()
            self.save_m2m()
        return plan


class StepForm(forms.ModelForm):
    weekdays = forms.TypedMultipleChoiceField(
        label=_("Weekdays"),
        choices=WEEKDAYS,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: every day."),
    )
    group_stages = _checkboxes(
        _("Only groups in stages"), Group.Stage.choices, help_text=_("None ticked: all groups.")
    )

    class Meta:
        model = Step
        fields = [
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
        ]
        widgets = {
            "at_time": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "send_at": forms.DateTimeInput(
                attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
            ),
        }
        help_texts = {
            "at_time": _("Shanghai time."),
            "coupon_code": _("Fills {coupon} in the content."),
        }

    # Which fields each kind of plan uses; the others are left out of its form.
    KIND_FIELDS = {
        Plan.Kind.GROUP: {"at_time", "weekdays", "group_stages"},
        Plan.Kind.JOURNEY: {
            "at_time",
            "weekdays",
            "offset_days",
            "offset_minutes",
            "only_if_no_order_since_trigger",
        },
        Plan.Kind.BROADCAST: {"send_at"},
    }
    COMMON = {"position", "name", "content", "coupon_code"}

    def __init__(self, *args, plan: Plan, **kwargs):
        super().__init__(*args, **kwargs)
        self.plan = plan
        keep = self.COMMON | self.KIND_FIELDS[plan.kind]
        for name in list(self.fields):
            if name not in keep:
                del self.fields[name]
        current = self.instance.content_id if self.instance.pk else None
        self.fields["content"].queryset = ContentItem.objects.filter(
            Q(archived=False) | Q(pk=current)
        )
        if plan.kind == Plan.Kind.GROUP:
            self.fields["at_time"].required = True
        if plan.kind == Plan.Kind.BROADCAST:
            self.fields["send_at"].required = True

    def save(self, commit=True):
        step = super().save(commit=False)
        step.plan = self.plan
        if commit:
            step.save()
        return step


# --- content -----------------------------------------------------------------------------


class ContentForm(forms.ModelForm):
    attachments = forms.JSONField(
        label=_("Attachments"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text=_(
            'A JSON list, e.g. [{"kind": "link", "title": "…", "url": "https://…"}]; kinds: '
            "image (media_id or pic_url), link (title, url), miniprogram (title, media_id, "
            "appid, page)."
        ),
    )

    class Meta:
        model = ContentItem
        fields = ["title", "purpose", "category", "text", "attachments"]
        widgets = {"text": forms.Textarea(attrs={"rows": 5})}
        help_texts = {"text": _("May use {name}, {tier} and {coupon}.")}

    def clean(self):
        data = super().clean()
        if "text" in data and "attachments" in data:
            if data["attachments"] is None:
                data["attachments"] = []
            try:
                validate(data["text"], data["attachments"])
            except ValidationError as exc:
                errors_to_form(self, exc)
        return data
