"""Dashboard pages of groups: list, group page, members in several groups, channel codes,
leaver transfer; with the small forms they post."""

from datetime import datetime

from django import forms
from django.contrib import messages
from django.contrib.postgres.forms import SimpleArrayField
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _
from django.views import View

from contacts.models import ChannelCode, Staff, Tag
from groups import channel_codes, handover, selectors, services, tasks
from groups.models import AutoReply, Group, GroupMembership, Handover
from scrm.roles import RoleRequiredMixin, can_write

GROUPS_PER_PAGE = 25
MEMBERS_PER_PAGE = 100
HISTORY_PER_PAGE = 50
PEOPLE_PER_PAGE = 50
CODES_PER_PAGE = 25
CUSTOMERS_PER_PAGE = 100
UNDEFINED = "—"  # PRODUCT.md: a value whose denominator is 0 is shown as "—", never 0


class WriterRequiredMixin(RoleRequiredMixin):
    """Pages that exist only to change something: read-only users may not even open them."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not can_write(request.user):
            raise PermissionDenied("Analysts have read-only access.")
        return super().dispatch(request, *args, **kwargs)


def _page(request, items, per_page: int):
    return Paginator(items, per_page).get_page(request.GET.get("page"))


def _errors_to_form(form: forms.Form, exc: ValidationError) -> None:
    """Put a service's errors next to the fields they name; the rest above the form."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def _percent(value: float | None) -> str:
    return UNDEFINED if value is None else f"{value * 100:.1f}%"


def _decimal(value: float | None) -> str:
    return UNDEFINED if value is None else f"{value:,.1f}"


def _count(value: int | None) -> str:
    return UNDEFINED if value is None else f"{value:,d}"


class StaffChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, staff: Staff) -> str:
        resigned = f" ({gettext('resigned')})" if staff.status == Staff.Status.RESIGNED else ""
        return f"{staff.name} · {staff.userid}{resigned}"


class StaffMultipleChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, staff: Staff) -> str:
        return f"{staff.name} · {staff.userid}"


class TagChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, tag: Tag) -> str:
        return f"{tag.group.name} / {tag.name}"


# --- the group list ---------------------------------------------------------------------------

SORT_CHOICES = [
    ("-members", _("Most members")),
    ("members", _("Fewest members")),
    ("-speakers", _("Most speakers (7 days)")),
    ("-messages", _("Most messages (7 days)")),
    ("speakers", _("Fewest speakers (7 days)")),
    ("name", pgettext_lazy("group", "Name")),
    ("-created", _("Newest")),
    ("created", _("Oldest")),
]


class GroupFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=64)
    type = forms.ChoiceField(
        label=_("Type"), required=False, choices=[("", _("All types")), *Group.Type.choices]
    )
    model = forms.ChoiceField(
        label=_("Commercial model"),
        required=False,
        choices=[("", _("All models")), *Group.Model.choices],
    )
    stage = forms.ChoiceField(
        label=_("Stage"), required=False, choices=[("", _("All stages")), *Group.Stage.choices]
    )
    owner = StaffChoiceField(
        label=_("Owner"), required=False, queryset=Staff.objects.none(), empty_label=_("Anyone")
    )
    members_min = forms.IntegerField(label=_("Members from"), required=False, min_value=0)
    members_max = forms.IntegerField(label=_("Members up to"), required=False, min_value=0)
    speakers_min = forms.IntegerField(
        label=_("Speakers in 7 days, at least"), required=False, min_value=0
    )
    messages_min = forms.IntegerField(
        label=_("Messages in 7 days, at least"), required=False, min_value=0
    )
    dismissed = forms.ChoiceField(
        label=_("Dismissed"),
        required=False,
        choices=[("no", _("Active groups")), ("yes", _("Dismissed groups")), ("all", _("All"))],
    )
    sort = forms.ChoiceField(label=_("Sort by"), required=False, choices=SORT_CHOICES)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        owners = selectors.groups_visible_to(user).values("owner")
        self.fields["owner"].queryset = Staff.objects.filter(pk__in=owners).order_by("name")

    def clean(self):
        data = super().clean()
        low, high = data.get("members_min"), data.get("members_max")
        if low is not None and high is not None and low > high:
            self.add_error("members_max", _("Must be at least the lower bound."))
        return data

    def filters(self) -> dict:
        """The valid filters; a bad one is reported beside its field and left out."""
        self.is_valid()
        data = {k: v for k, v in getattr(self, "cleaned_data", {}).items() if v not in ("", None)}
        if "members_max" in self.errors:
            data.pop("members_min", None)
        return data


class GroupListView(RoleRequiredMixin, View):
    def get(self, request):
        form = GroupFilterForm(request.GET or None, user=request.user)
        groups = selectors.group_list(user=request.user, **form.filters())
        return render(
            request,
            "groups/group_list.html",
            {
                "form": form,
                "page_obj": _page(request, groups, GROUPS_PER_PAGE),
                "summary": selectors.group_list_summary(groups),
                "can_write": can_write(request.user),
                "active_nav": "groups",
            },
        )


# --- one group -------------------------------------------------------------------------------


def _group_or_404(request, pk: int) -> Group:
    # An operator asking for someone else's group learns nothing: the same 404 as no group.
    try:
        return selectors.group_detail(user=request.user, pk=pk)
    except Group.DoesNotExist:
        raise Http404("No such group") from None


STAGE_HEADLINES = {
    Group.Stage.FOUNDING: [
        ("joins", _("Joins"), "count"),
        ("leaves", _("Leaves"), "count"),
        ("leave_rate", _("Leave rate"), "percent"),
        ("members_at_start", _("Members at the start"), "count"),
    ],
    Group.Stage.ACTIVATION: [
        ("speakers_per_day", _("Speakers per day"), "decimal"),
        ("interaction_rate", _("Interaction rate"), "percent"),
        ("messages_per_member", _("Messages per member per day"), "decimal"),
        ("messages", _("Messages"), "count"),
    ],
    Group.Stage.RETENTION: [
        ("members_at_start", _("Members at the start"), "count"),
        ("still_in", _("Still in the group"), "count"),
        ("retention", _("Retention"), "percent"),
    ],
    Group.Stage.MONETIZATION: [
        ("orders", _("Paid orders"), "count"),
        ("revenue_fen", _("Revenue"), "money"),
        ("aov_fen", _("Average order value"), "money"),
        ("conversion", _("Conversion"), "percent"),
    ],
    Group.Stage.PROPAGATION: [
        ("referrals", _("Referrals"), "count"),
        ("referrers", _("Members who referred someone"), "count"),
        ("referral_rate", _("Referral rate"), "percent"),
    ],
}
FORMATS = {"count": _count, "percent": _percent, "decimal": _decimal}


def stage_headline(numbers: dict, stage: str) -> list[dict]:
    """The stage's numbers as labelled, formatted figures (money is formatted by the page)."""
    rows = []
    for key, label, kind in STAGE_HEADLINES[stage]:
        value = numbers[key]
        text = "" if kind == "money" else FORMATS[kind](value)
        rows.append({"key": key, "label": label, "kind": kind, "value": value, "text": text})
    return rows


def _group_context(request, group: Group, tab: str) -> dict:
    return {
        "group": group,
        "tab": tab,
        "can_write": can_write(request.user),
        "active_nav": "groups",
    }


class GroupDetailView(RoleRequiredMixin, View):
    def get(self, request, pk: int):
        group = _group_or_404(request, pk)
        numbers = selectors.stage_numbers(group=group)
        context = _group_context(request, group, "overview")
        context.update(
            numbers=numbers,
            headline=stage_headline(numbers, group.stage),
            auto_replies=group.auto_replies.order_by("keyword"),
            join_codes=group.join_codes.filter(is_active=True),
        )
        return render(request, "groups/group_detail.html", context)


class GroupSettingsForm(forms.ModelForm):
    labels = SimpleArrayField(
        forms.CharField(max_length=30),
        label=_("Labels"),
        required=False,
        help_text=_("Separated by commas, e.g. 母婴,华东. SOP plans can choose groups by label."),
    )

    class Meta:
        model = Group
        fields = [
            "type",
            "model",
            "stage",
            "labels",
            "member_cap",
            "rules",
            "notice",
            "welcome_message",
        ]
        widgets = {
            "rules": forms.Textarea(attrs={"rows": 5}),
            "notice": forms.Textarea(attrs={"rows": 4}),
            "welcome_message": forms.Textarea(attrs={"rows": 4}),
        }
        help_texts = {
            "notice": _(
                "Kept here only: WeCom's API cannot set a group notice. Post it in the WeCom "
                "app as the owner; a notice changed there replaces this one."
            ),
            "rules": _("Kept here only; post the rules in the group yourself."),
            "welcome_message": _("Shown to newcomers; {name} stands for the newcomer's name."),
        }


class GroupEditView(WriterRequiredMixin, View):
    def get(self, request, pk: int):
        group = _group_or_404(request, pk)
        return self._render(request, group, GroupSettingsForm(instance=group))

    def post(self, request, pk: int):
        group = _group_or_404(request, pk)
        form = GroupSettingsForm(request.POST, instance=Group.objects.get(pk=group.pk))
        if form.is_valid():
            values = {name: form.cleaned_data[name] for name in GroupSettingsForm.Meta.fields}
            try:
                services.group_settings_update(group=Group.objects.get(pk=group.pk), **values)
            except ValidationError as exc:
                _errors_to_form(form, exc)
            else:
                messages.success(request, _("Group settings saved."))
                return HttpResponseRedirect(reverse("groups:detail", args=[group.pk]))
        return self._render(request, group, form)

    def _render(self, request, group, form):
        context = _group_context(request, group, "edit")
        context["form"] = form
        return render(request, "groups/group_edit.html", context)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(
        label=_("Role"),
        choices=[(r.value, r.label) for r in services.SETTABLE_ROLES],
    )


class GroupMembersView(RoleRequiredMixin, View):
    def get(self, request, pk: int):
        return self._render(request, _group_or_404(request, pk))

    def _render(self, request, group, *, failed_stay: int | None = None, failed_form=None):
        context = _group_context(request, group, "members")
        page = Paginator(selectors.group_members(group=group), MEMBERS_PER_PAGE).get_page(
            request.POST.get("page") or request.GET.get("page")
        )
        for stay in page.object_list:
            stay.role_form = (
                failed_form
                if stay.pk == failed_stay
                else MemberRoleForm(initial={"role": stay.role}, prefix=f"m{stay.pk}")
            )
        context.update(page_obj=page, max_admins=services.MAX_ADMINS, failed_stay=failed_stay)
        return render(request, "groups/group_members.html", context)


class MemberRoleView(GroupMembersView):
    """Change one member's role; an error is shown beside that member's role on the list."""

    def get(self, request, pk: int, stay_pk: int):
        return HttpResponseRedirect(reverse("groups:members", args=[pk]))

    def post(self, request, pk: int, stay_pk: int):
        group = _group_or_404(request, pk)
        stay = get_object_or_404(GroupMembership, pk=stay_pk, group=group)
        form = MemberRoleForm(request.POST, prefix=f"m{stay.pk}")
        if form.is_valid():
            try:
                services.membership_role_set(stay=stay, role=form.cleaned_data["role"])
            except ValidationError as exc:
                _errors_to_form(form, exc)
            else:
                messages.success(
                    request,
                    _("%(who)s is now %(role)s.")
                    % {
                        "who": stay.contact or stay.staff,
                        "role": GroupMembership.Role(form.cleaned_data["role"]).label,
                    },
                )
                page = request.POST.get("page")
                url = reverse("groups:members", args=[group.pk])
                return HttpResponseRedirect(f"{url}?page={page}" if page else url)
        return self._render(request, group, failed_stay=stay.pk, failed_form=form)


class GroupHistoryView(RoleRequiredMixin, View):
    def get(self, request, pk: int):
        group = _group_or_404(request, pk)
        context = _group_context(request, group, "history")
        context["page_obj"] = _page(request, selectors.group_history(group=group), HISTORY_PER_PAGE)
        return render(request, "groups/group_history.html", context)


class AutoReplyForm(forms.ModelForm):
    class Meta:
        model = AutoReply
        fields = ["keyword", "reply", "is_active"]
        widgets = {"reply": forms.Textarea(attrs={"rows": 4})}
        help_texts = {"keyword": _("A message containing this word gets the reply.")}

    def validate_unique(self):
        pass  # the service checks the keyword per group and names the field


class AutoReplyEditView(WriterRequiredMixin, View):
    """Create (no reply_pk) or change a keyword auto-reply."""

    def get(self, request, pk: int, reply_pk: int | None = None):
        group = _group_or_404(request, pk)
        auto_reply = self._auto_reply(group, reply_pk)
        return self._render(request, group, auto_reply, AutoReplyForm(instance=auto_reply))

    def post(self, request, pk: int, reply_pk: int | None = None):
        group = _group_or_404(request, pk)
        auto_reply = self._auto_reply(group, reply_pk)
        form = AutoReplyForm(request.POST, instance=auto_reply or AutoReply(group=group))
        if form.is_valid():
            values = {name: form.cleaned_data[name] for name in ("keyword", "reply", "is_active")}
            try:
                if auto_reply is None:
                    services.auto_reply_create(group=group, **values)
                else:
                    services.auto_reply_update(
                        auto_reply=AutoReply.objects.get(pk=auto_reply.pk), **values
                    )
            except ValidationError as exc:
                _errors_to_form(form, exc)
            else:
                messages.success(request, _("Auto-reply saved."))
                return HttpResponseRedirect(reverse("groups:detail", args=[group.pk]))
        return self._render(request, group, auto_reply, form)

    def _auto_reply(self, group, reply_pk):
        if reply_pk is None:
            return None
        return get_object_or_404(AutoReply, pk=reply_pk, group=group)

    def _render(self, request, group, auto_reply, form):
        context = _group_context(request, group, "overview")
        context.update(form=form, auto_reply=auto_reply)
        return render(request, "groups/auto_reply_form.html", context)


class AutoReplyDeleteView(WriterRequiredMixin, View):
    def get(self, request, pk: int, reply_pk: int):
        group = _group_or_404(request, pk)
        auto_reply = get_object_or_404(AutoReply, pk=reply_pk, group=group)
        context = _group_context(request, group, "overview")
        context["auto_reply"] = auto_reply
        return render(request, "groups/auto_reply_delete.html", context)

    def post(self, request, pk: int, reply_pk: int):
        group = _group_or_404(request, pk)
        auto_reply = get_object_or_404(AutoReply, pk=reply_pk, group=group)
        services.auto_reply_delete(auto_reply=auto_reply)
        messages.success(request, _("Auto-reply deleted."))
        return HttpResponseRedirect(reverse("groups:detail", args=[group.pk]))


# --- members in several groups ---------------------------------------------------------------


class KnownCountPaginator(Paginator):
    """A paginator told the total, so it need not aggregate everything a second time."""

    def __init__(self, object_list, per_page, *, count: int):
        super().__init__(object_list, per_page)
        self._known_count = count

    @property
    def count(self) -> int:
        return self._known_count


class OverlapView(RoleRequiredMixin, View):
    """群成员去重: customers sitting in two or more of the groups the user may see."""

    def get(self, request):
        groups = selectors.groups_visible_to(request.user).filter(dismissed_at__isnull=True)
        summary = selectors.group_list_summary(groups)
        people = selectors.contacts_in_several_groups(user=request.user, groups=groups)
        paginator = KnownCountPaginator(people, PEOPLE_PER_PAGE, count=summary["in_several"])
        page = paginator.get_page(request.GET.get("page"))
        page.object_list = selectors.overlap_rows(
            page.object_list, user=request.user, groups=groups
        )
        return render(
            request,
            "groups/overlap.html",
            {"page_obj": page, "summary": summary, "active_nav": "groups"},
        )


# --- channel codes ---------------------------------------------------------------------------

PERIOD_CHOICES = [
    ("7", _("Last 7 days")),
    ("30", _("Last 30 days")),
    ("90", _("Last 90 days")),
    ("all", _("All time")),
]


class ChannelCodeListView(RoleRequiredMixin, View):
    def get(self, request):
        kind = request.GET.get("kind", "")
        if kind not in ChannelCode.Kind.values:
            kind = ""
        period = request.GET.get("period", "30")
        if period not in selectors.CODE_PERIODS:
            period = "30"
        codes = selectors.channel_code_list(
            user=request.user, kind=kind, include_retired=request.GET.get("retired") == "1"
        )
        page = _page(request, codes, CODES_PER_PAGE)
        figures = selectors.channel_code_figures(
            codes=list(page.object_list), days=selectors.CODE_PERIODS[period]
        )
        for code in page.object_list:
            code.figures = figures[code.pk]
            code.join_rate_text = _percent(code.figures["join_rate"])
        return render(
            request,
            "groups/channel_code_list.html",
            {
                "page_obj": page,
                "kind": kind,
                "kinds": ChannelCode.Kind.choices,
                "period": period,
                "periods": PERIOD_CHOICES,
                "show_retired": request.GET.get("retired") == "1",
                "can_write": can_write(request.user),
                "active_nav": "groups",
            },
        )


class ChannelCodeForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    staff = StaffMultipleChoiceField(
        label=_("Staff the code adds"),
        queryset=Staff.objects.none(),
        required=False,
        help_text=_("With several, WeCom hands each newcomer to one of them."),
    )
    groups = forms.ModelMultipleChoiceField(
        label=_("Groups the code fills"),
        queryset=Group.objects.none(),
        required=False,
        help_text=_("Up to 5; WeCom fills them in turn."),
    )
    tags = TagChoiceField(
        label=_("Tags given on arrival"),
        queryset=Tag.objects.select_related("group"),
        required=False,
    )
    welcome_message = forms.CharField(
        label=_("Welcome message"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("{name} stands for the newcomer's name."),
    )

    def __init__(self, *args, user, kind: str, code: ChannelCode | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if kind == ChannelCode.Kind.STAFF:
            del self.fields["groups"]
            staff = Staff.objects.filter(status=Staff.Status.ACTIVE).order_by("name")
            if not selectors.user_sees_all(user):
                # An operator's codes bring customers to themselves; others already on a code
                # they share stay on it.
                own = selectors.user_staff(user)
                present = code.staff.values("pk") if code is not None else Staff.objects.none()
                staff = staff.filter(Q(pk=own.pk if own else None) | Q(pk__in=present))
            self.fields["staff"].queryset = staff
        else:
            del self.fields["staff"]
            # The user's live groups, and any the code already fills, so none drops silently.
            present = code.groups.values("pk") if code is not None else Group.objects.none()
            visible = selectors.groups_visible_to(user).filter(dismissed_at__isnull=True)
            self.fields["groups"].queryset = Group.objects.filter(
                Q(pk__in=visible.values("pk")) | Q(pk__in=present)
            ).order_by("name")


def _code_or_404(request, pk: int) -> ChannelCode:
    return get_object_or_404(selectors.channel_codes_visible_to(request.user), pk=pk)


class ChannelCodeEditView(WriterRequiredMixin, View):
    """Create (no pk; ?kind=staff|group) or change a channel code."""

    def get(self, request, pk: int | None = None):
        code, kind = self._code_and_kind(request, pk)
        initial = {}
        if code is not None:
            initial = {
                "name": code.name,
                "staff": list(code.staff.all()),
                "groups": list(code.groups.all()),
                "tags": list(code.tags.all()),
                "welcome_message": code.welcome_message,
            }
        form = ChannelCodeForm(initial=initial, user=request.user, kind=kind, code=code)
        return self._render(request, code, kind, form)

    def post(self, request, pk: int | None = None):
        code, kind = self._code_and_kind(request, pk)
        form = ChannelCodeForm(request.POST, user=request.user, kind=kind, code=code)
        if form.is_valid():
            values = {
                "name": form.cleaned_data["name"],
                "staff": form.cleaned_data.get("staff") or [],
                "groups": form.cleaned_data.get("groups") or [],
                "tags": form.cleaned_data["tags"],
                "welcome_message": form.cleaned_data["welcome_message"],
            }
            own = selectors.user_staff(request.user)
            if kind == ChannelCode.Kind.GROUP and own is not None:
                # A group code belongs to its groups' owners, and to the operator who made it
                # (who may be an admin rather than the owner).
                values["staff"] = [own]
            try:
                if code is None:
                    code = channel_codes.channel_code_create(kind=kind, **values)
                else:
                    channel_codes.channel_code_update(code=code, **values)
            except ValidationError as exc:
                _errors_to_form(form, exc)
            else:
                messages.success(request, _("Channel code saved."))
                return HttpResponseRedirect(reverse("groups:channel-codes") + f"?kind={kind}")
        return self._render(request, code, kind, form)

    def _code_and_kind(self, request, pk):
        if pk is not None:
            code = _code_or_404(request, pk)
            return code, code.kind
        kind = request.GET.get("kind", ChannelCode.Kind.STAFF)
        if kind not in ChannelCode.Kind.values:
            raise Http404("No such kind of code")
        return None, kind

    def _render(self, request, code, kind, form):
        return render(
            request,
            "groups/channel_code_form.html",
            {
                "form": form,
                "code": code,
                "kind": kind,
                "kind_label": ChannelCode.Kind(kind).label,
                "active_nav": "groups",
            },
        )


class ChannelCodeDeleteView(WriterRequiredMixin, View):
    def get(self, request, pk: int):
        code = _code_or_404(request, pk)
        return render(
            request,
            "groups/channel_code_delete.html",
            {"code": code, "active_nav": "groups"},
        )

    def post(self, request, pk: int):
        code = _code_or_404(request, pk)
        try:
            channel_codes.channel_code_delete(code=code)
        except ValidationError as exc:
            return render(
                request,
                "groups/channel_code_delete.html",
                {"code": code, "errors": exc.messages, "active_nav": "groups"},
            )
        messages.success(request, _("Channel code deleted."))
        return HttpResponseRedirect(reverse("groups:channel-codes") + f"?kind={code.kind}")


# --- leaver transfer ---------------------------------------------------------------------------


class HandoverAccessMixin(RoleRequiredMixin):
    """Managers run handovers; analysts may read them; operators may not see them."""

    def dispatch(self, request, *args, **kwargs):
        user = request.user
        if user.is_authenticated and not (user.is_manager or user.is_read_only):
            raise PermissionDenied("Leaver transfer is for managers.")
        return super().dispatch(request, *args, **kwargs)


class HandoverForm(forms.Form):
    handover_staff = StaffChoiceField(
        label=_("Staff member who leaves"), queryset=Staff.objects.order_by("name")
    )
    takeover_staff = StaffChoiceField(
        label=_("Successor for customers"),
        queryset=Staff.objects.filter(status=Staff.Status.ACTIVE).order_by("name"),
    )
    group_takeover_staff = StaffChoiceField(
        label=_("Successor for groups"),
        queryset=Staff.objects.filter(status=Staff.Status.ACTIVE).order_by("name"),
        required=False,
        empty_label=_("The same successor"),
        help_text=_("Leave empty to give the groups to the successor for customers."),
    )


class HandoverListView(HandoverAccessMixin, View):
    def get(self, request):
        page = _page(request, selectors.handover_list(), 25)
        for item in page.object_list:
            item.counts = selectors.handover_counts(item)
        return render(
            request,
            "groups/handover_list.html",
            {"page_obj": page, "can_start": request.user.is_manager, "active_nav": "groups"},
        )


class HandoverCreateView(HandoverAccessMixin, View):
    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not request.user.is_manager:
            raise PermissionDenied("Only managers start a leaver transfer.")
        return super().dispatch(request, *args, **kwargs)

    def get(self, request):
        initial = {}
        if request.GET.get("staff", "").isdigit():
            initial["handover_staff"] = request.GET["staff"]
        return self._render(request, HandoverForm(initial=initial))

    def post(self, request):
        form = HandoverForm(request.POST)
        if form.is_valid():
            try:
                started = handover.handover_start(
                    leaver=form.cleaned_data["handover_staff"],
                    successor=form.cleaned_data["takeover_staff"],
                    group_successor=form.cleaned_data["group_takeover_staff"],
                    by=request.user,
                )
            except ValidationError as exc:
                _errors_to_form(form, exc)
            else:
                messages.success(
                    request,
                    _("Handover started: WeCom moves the customers within about 24 hours."),
                )
                return HttpResponseRedirect(reverse("groups:handover", args=[started.pk]))
        return self._render(request, form)

    def _render(self, request, form):
        load = None
        staff = form["handover_staff"].value()
        if staff and str(staff).isdigit():
            leaver = Staff.objects.filter(pk=staff).first()
            load = leaver and {"staff": leaver, **selectors.staff_handover_load(staff=leaver)}
        return render(
            request,
            "groups/handover_form.html",
            {"form": form, "load": load, "active_nav": "groups"},
        )


def _reason_text(entry: dict) -> str:
    if entry.get("reason"):
        return gettext(entry["reason"])  # stored as an English msgid or WeCom's own words
    if entry.get("errcode"):
        return gettext("WeCom refused (errcode %(code)d).") % {"code": entry["errcode"]}
    return ""


class HandoverDetailView(HandoverAccessMixin, View):
    STATUSES = ("waiting", "done", "refused", "failed")

    def get(self, request, pk: int):
        item = get_object_or_404(selectors.handover_list(), pk=pk)
        status = request.GET.get("status", "")
        if status not in self.STATUSES:
            status = ""
        page = _page(
            request, selectors.handover_customer_rows(item, status=status), CUSTOMERS_PER_PAGE
        )
        for row in page.object_list:
            row["reason_text"] = _reason_text(row)
            taken = row.get("taken_over_at")
            row["taken_over"] = datetime.fromisoformat(taken) if taken else None
        groups = [
            {"chat_id": chat_id, **entry, "reason_text": _reason_text(entry)}
            for chat_id, entry in sorted(item.groups.items(), key=lambda kv: kv[1]["name"])
        ]
        return render(
            request,
            "groups/handover_detail.html",
            {
                "handover": item,
                "counts": selectors.handover_counts(item),
                "page_obj": page,
                "status": status,
                "statuses": self.STATUSES,
                "groups": groups,
                "can_check": request.user.is_manager and item.status == Handover.Status.PENDING,
                "active_nav": "groups",
            },
        )

    def post(self, request, pk: int):
        """Ask WeCom now rather than wait for the periodic check."""
        if not request.user.is_manager:
            raise PermissionDenied("Only managers run a leaver transfer.")
        item = get_object_or_404(Handover, pk=pk)
        transaction.on_commit(lambda: tasks.poll_handover.delay(item.pk))
        messages.info(request, _("Asked WeCom for the latest results; reload in a moment."))
        return HttpResponseRedirect(reverse("groups:handover", args=[item.pk]))
