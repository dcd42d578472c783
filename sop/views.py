"""Dashboard pages of the SOP engine: plans and their steps, preview, deliveries, the content
library and each operator's mass-message completion."""

from datetime import datetime, time, timedelta

from django.contrib import messages
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views import View

from contacts.models import Contact
from groups.models import Group
from scrm.roles import RoleRequiredMixin, can_write
from sop import selectors, services
from sop.forms import (
    WEEKDAYS,
    ContentForm,
    DeliveryFilterForm,
    PeriodForm,
    PlanFilterForm,
    PlanForm,
    StepForm,
)
from sop.models import ContentItem, Delivery, Plan, SkipReason, Step

PLANS_PER_PAGE = 25
DELIVERIES_PER_PAGE = 50
CONTENT_PER_PAGE = 25
PREVIEW_ROWS = 200
UNDEFINED = "—"  # PRODUCT.md: a value whose denominator is 0 is shown as "—", never 0
WEEKDAY_LABELS = dict(WEEKDAYS)


class WriterRequiredMixin(RoleRequiredMixin):
    """Pages that exist only to change something: read-only users may not even open them."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not can_write(request.user):
            raise PermissionDenied("Analysts have read-only access.")
        return super().dispatch(request, *args, **kwargs)


def _page(request, items, per_page: int):
    return Paginator(items, per_page).get_page(request.GET.get("page"))


def _percent(value: float | None) -> str:
    return UNDEFINED if value is None else f"{value * 100:.1f}%"


def _plan_or_404(request, pk: int) -> Plan:
    # Someone else's plan answers like no plan at all.
    return get_object_or_404(
        selectors.plans_visible_to(request.user).select_related("staff"), pk=pk
    )


def _context(request, **extra) -> dict:
    return {"can_write": can_write(request.user), "active_nav": "sop", **extra}


# --- plans -------------------------------------------------------------------------------


class PlanListView(RoleRequiredMixin, View):
    def get(self, request):
        form = PlanFilterForm(request.GET or None)
        plans = (
            selectors.plans_visible_to(request.user)
            .select_related("staff")
            .annotate(step_count=Count("steps", filter=Q(steps__active=True)))
            .order_by("-priority", "name", "pk")
        )
        data = form.cleaned_data if form.is_valid() else {}
        if data.get("kind"):
            plans = plans.filter(kind=data["kind"])
        status = data.get("status", "")
        if status == "":
            plans = plans.exclude(status=Plan.Status.ARCHIVED)
        elif status != "all":
            plans = plans.filter(status=status)
        return render(
            request,
            "sop/plan_list.html",
            _context(request, form=form, page_obj=_page(request, plans, PLANS_PER_PAGE)),
        )


class PlanEditView(WriterRequiredMixin, View):
    """Create (no pk) or change a plan's settings and audience."""

    def get(self, request, pk: int | None = None):
        plan = _plan_or_404(request, pk) if pk else None
        initial = {} if plan else {"kind": request.GET.get("kind", Plan.Kind.GROUP)}
        return self._render(
            request, plan, PlanForm(instance=plan, initial=initial, user=request.user)
        )

    def dispatch(self, request, *args, **kwargs):
        user = request.user
        if user.is_authenticated and not user.is_manager and not hasattr(user, "staff"):
            # Without a WeCom identity an operator's plan would reach everyone's groups.
            raise PermissionDenied("Only a login with a WeCom identity makes plans.")
        return super().dispatch(request, *args, **kwargs)

    def post(self, request, pk: int | None = None):
        plan = _plan_or_404(request, pk) if pk else None
        if plan and plan.status == Plan.Status.ARCHIVED:
            raise PermissionDenied("An archived plan cannot be changed.")
        form = PlanForm(request.POST, instance=plan, user=request.user)
        if form.is_valid():
            plan = form.save()
            messages.success(request, _("Plan saved."))
            return HttpResponseRedirect(reverse("sop:plan", args=[plan.pk]))
        return self._render(request, plan, form)

    def _render(self, request, plan, form):
        return render(request, "sop/plan_form.html", _context(request, plan=plan, form=form))


def _step_rows(plan: Plan) -> list[Step]:
    steps = list(plan.steps.select_related("content").order_by("position", "pk"))
    for step in steps:
        step.weekday_labels = [str(WEEKDAY_LABELS[d]) for d in sorted(step.weekdays)]
        step.stage_labels = [str(Group.Stage(stage).label) for stage in step.group_stages]
    return steps


def _field_label(model, name: str) -> str:
    try:
        verbose_name = getattr(model._meta.get_field(name), "verbose_name", None)
    except FieldDoesNotExist:
        verbose_name = None
    if verbose_name is None:
        return {"steps": gettext("Steps"), "targets": gettext("Audience")}.get(name, name)
    return str(verbose_name).capitalize()


def _action_errors(plan: Plan, exc: ValidationError) -> list[tuple[str, str]]:
    """A service's ValidationError as (field label, message) lines for the plan page."""
    if not hasattr(exc, "error_dict"):
        return [("", m) for m in exc.messages]
    rows = []
    for field, errors in exc.message_dict.items():
        model = Step if field in {f.name for f in Step._meta.get_fields()} - {"plan"} else Plan
        label = _field_label(model, field) if field != "__all__" else ""
        rows += [(label, message) for message in errors]
    return rows


class PlanDetailView(RoleRequiredMixin, View):
    def get(self, request, pk: int):
        return self.render_plan(request, _plan_or_404(request, pk))

    @staticmethod
    def render_plan(request, plan: Plan, *, action_errors=None, status: int = 200):
        summary = selectors.plan_summary(plan)
        statuses = [
            (label, summary["by_status"].get(value, 0)) for value, label in Delivery.Status.choices
        ]
        reasons = [
            (SkipReason(value).label, count)
            for value, count in sorted(summary["by_reason"].items())
        ]
        context = _context(
            request,
            plan=plan,
            steps=_step_rows(plan),
            summary=summary,
            statuses=statuses,
            reasons=reasons,
            group_types=[Group.Type(v).label for v in plan.group_types],
            group_stages=[Group.Stage(v).label for v in plan.group_stages],
            contact_stages=[Contact.Stage(v).label for v in plan.stages],
            action_errors=action_errors or [],
            may_change=can_write(request.user) and plan.status != Plan.Status.ARCHIVED,
        )
        return render(request, "sop/plan_detail.html", context, status=status)


class PlanActionView(WriterRequiredMixin, View):
    """Activate, pause, resume or archive: POST only, through sop.services."""

    ACTIONS = {"activate", "pause", "resume", "archive"}

    def get(self, request, pk: int, action: str):
        return HttpResponseRedirect(reverse("sop:plan", args=[pk]))

    def post(self, request, pk: int, action: str):
        if action not in self.ACTIONS:
            raise Http404("No such action")
        plan = _plan_or_404(request, pk)
        try:
            if action == "activate":
                services.plan_activate(plan, user=request.user)
                messages.success(request, _("The plan is live."))
            elif action == "resume":
                services.plan_resume(plan, user=request.user)
                messages.success(request, _("The plan is live."))
            elif action == "pause":
                skipped = services.plan_pause(plan, user=request.user)
                messages.success(
                    request,
                    gettext("The plan is paused; %(n)d planned messages will not go out.")
                    % {"n": skipped},
                )
            else:
                services.plan_archive(plan, user=request.user)
                messages.success(request, _("The plan is archived."))
        except ValidationError as exc:
            return PlanDetailView.render_plan(
                request, plan, action_errors=_action_errors(plan, exc), status=400
            )
        return HttpResponseRedirect(reverse("sop:plan", args=[plan.pk]))


class PlanPreviewView(RoleRequiredMixin, View):
    def get(self, request, pk: int):
        plan = _plan_or_404(request, pk)
        preview = services.plan_preview(plan, limit=PREVIEW_ROWS)
        reasons = sorted({reason for day in preview.days for reason in day["skipped"]})
        days = [
            {
                "day": day["day"],
                "planned": day["planned"],
                "skipped": [day["skipped"].get(reason, 0) for reason in reasons],
            }
            for day in preview.days
        ]
        rows = [
            {
                "due_at": row.due_at,
                "step": row.step,
                "content": row.content,
                "target": row.target,
                "status": Delivery.Status(row.status).label,
                "reason": SkipReason(row.reason).label if row.reason else "",
            }
            for row in preview.rows
        ]
        context = _context(
            request,
            plan=plan,
            preview=preview,
            reason_labels=[SkipReason(r).label for r in reasons],
            days=days,
            rows=rows,
            row_limit=PREVIEW_ROWS,
        )
        return render(request, "sop/plan_preview.html", context)


class PlanDeliveriesView(RoleRequiredMixin, View):
    def get(self, request, pk: int):
        plan = _plan_or_404(request, pk)
        form = DeliveryFilterForm(request.GET or None)
        deliveries = (
            selectors.deliveries_visible_to(request.user)
            .filter(plan=plan)
            # A step without a name is shown as "<plan> #<position>": its plan comes along.
            .select_related("step__content", "step__plan", "group", "contact", "sender")
            .order_by("-due_at", "-pk")
        )
        data = form.cleaned_data if form.is_valid() else {}
        if data.get("status"):
            deliveries = deliveries.filter(status=data["status"])
        if data.get("reason"):
            deliveries = deliveries.filter(reason=data["reason"])
        context = _context(
            request, plan=plan, form=form, page_obj=_page(request, deliveries, DELIVERIES_PER_PAGE)
        )
        return render(request, "sop/plan_deliveries.html", context)


# --- steps -------------------------------------------------------------------------------


class StepEditView(WriterRequiredMixin, View):
    """Add (no step_pk) or change a step of a plan."""

    def get(self, request, pk: int, step_pk: int | None = None):
        plan = _plan_or_404(request, pk)
        step = self._step(plan, step_pk)
        initial = {} if step else {"position": plan.steps.count() + 1}
        return self._render(
            request, plan, step, StepForm(instance=step, initial=initial, plan=plan)
        )

    def post(self, request, pk: int, step_pk: int | None = None):
        plan = _plan_or_404(request, pk)
        if plan.status == Plan.Status.ARCHIVED:
            raise PermissionDenied("An archived plan cannot be changed.")
        step = self._step(plan, step_pk)
        form = StepForm(request.POST, instance=step, plan=plan)
        if form.is_valid():
            form.save()
            messages.success(request, _("Step saved."))
            return HttpResponseRedirect(reverse("sop:plan", args=[plan.pk]))
        return self._render(request, plan, step, form)

    def _step(self, plan, step_pk):
        return get_object_or_404(Step, pk=step_pk, plan=plan) if step_pk else None

    def _render(self, request, plan, step, form):
        return render(
            request, "sop/step_form.html", _context(request, plan=plan, step=step, form=form)
        )


class StepRemoveView(WriterRequiredMixin, View):
    def get(self, request, pk: int, step_pk: int):
        plan = _plan_or_404(request, pk)
        step = get_object_or_404(Step, pk=step_pk, plan=plan)
        return render(request, "sop/step_remove.html", _context(request, plan=plan, step=step))

    def post(self, request, pk: int, step_pk: int):
        plan = _plan_or_404(request, pk)
        step = get_object_or_404(Step, pk=step_pk, plan=plan)
        services.step_remove(step, user=request.user)
        messages.success(request, _("Step removed."))
        return HttpResponseRedirect(reverse("sop:plan", args=[plan.pk]))


# --- content library ---------------------------------------------------------------------


def _may_change_content(user, item: ContentItem) -> bool:
    return can_write(user) and services.content_may_change(user, item)


class ContentListView(RoleRequiredMixin, View):
    def get(self, request):
        show_archived = request.GET.get("archived") == "1"
        purpose = request.GET.get("purpose", "")
        items = selectors.content_visible_to(request.user).filter(archived=show_archived)
        if purpose in ContentItem.Purpose.values:
            items = items.filter(purpose=purpose)
        page = _page(request, items, CONTENT_PER_PAGE)
        results = selectors.content_results([item.pk for item in page.object_list])
        for item in page.object_list:
            item.results = results[item.pk]
            item.response_rate_text = _percent(item.results.response_rate)
            item.may_change = _may_change_content(request.user, item)
        context = _context(
            request,
            page_obj=page,
            purposes=ContentItem.Purpose.choices,
            purpose=purpose,
            show_archived=show_archived,
        )
        return render(request, "sop/content_list.html", context)


class ContentEditView(WriterRequiredMixin, View):
    def get(self, request, pk: int | None = None):
        item = self._item(request, pk)
        return self._render(request, item, ContentForm(instance=item))

    def post(self, request, pk: int | None = None):
        item = self._item(request, pk)
        form = ContentForm(request.POST, instance=item)
        if form.is_valid():
            item = form.save(commit=False)
            if item.pk is None:
                item.created_by = request.user
            item.save()
            messages.success(request, _("Content saved."))
            return HttpResponseRedirect(reverse("sop:content"))
        return self._render(request, item, form)

    def _item(self, request, pk):
        if pk is None:
            return None
        item = get_object_or_404(selectors.content_visible_to(request.user), pk=pk)
        if not _may_change_content(request.user, item):
            raise PermissionDenied("Operators change only the content they made.")
        return item

    def _render(self, request, item, form):
        return render(request, "sop/content_form.html", _context(request, item=item, form=form))


class ContentArchiveView(WriterRequiredMixin, View):
    """Archive (or bring back) a piece of content; plans using it keep their history."""

    def post(self, request, pk: int):
        item = ContentEditView()._item(request, pk)
        item.archived = request.POST.get("restore") != "1"
        item.save(update_fields=["archived", "updated_at"])
        messages.success(
            request, _("Content archived.") if item.archived else _("Content restored.")
        )
        return HttpResponseRedirect(reverse("sop:content"))


# --- completion --------------------------------------------------------------------------


class CompletionView(RoleRequiredMixin, View):
    """Each sender's mass-message completion: messages created, confirmed, rate."""

    def get(self, request):
        form = PeriodForm(request.GET or None)
        since_day, until_day = form.period()
        tz = timezone.get_current_timezone()
        since = datetime.combine(since_day, time.min, tzinfo=tz)
        until = datetime.combine(until_day + timedelta(days=1), time.min, tzinfo=tz)
        rows = selectors.completion_by_staff(since, until, user=request.user)
        for row in rows:
            row.rate_text = _percent(row.rate)
        if not form.is_bound:
            form = PeriodForm(initial={"since": since_day, "until": until_day})
        context = _context(request, form=form, rows=rows, since_day=since_day, until_day=until_day)
        return render(request, "sop/completion.html", context)
