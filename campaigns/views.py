"""The operators' campaign pages (活动): list, detail with funnel, ROI, participants, rewards
and rejections, the settings form, state moves and announcements, and each type's own
section (coupon batches, stock, contest entries and draw, group-buys, commissions, invites,
streaks). Everyone reads; only managers change."""

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views import View

from analytics.dashboard import as_percent, as_roi
from campaigns import engagement, offers, selectors, services
from campaigns.forms import (
    AnnounceForm,
    CampaignFilterForm,
    CampaignForm,
    CouponBatchForm,
    CouponIssueForm,
    CouponRedeemForm,
    LandingPreviewForm,
    StockForm,
)
from campaigns.models import Campaign, Rejection
from campaigns.tokens import landing_token
from scrm.roles import RoleRequiredMixin
from sop.forms import errors_to_form
from sop.models import Plan

CAMPAIGNS_PER_PAGE = 25
PARTICIPANTS_PER_PAGE = 50
REWARDS_SHOWN = 20
# Rows of a type section's longer lists shown on the page (the API pages through them all).
SECTION_ROWS = 50
State = Campaign.State
# What the button for each move says, in the order the buttons appear.
MOVE_LABELS = {
    State.SCHEDULED: _("Schedule"),
    State.RUNNING: _("Start now"),
    State.ENDED: _("End now"),
    State.DRAFT: _("Back to draft"),
}


class ManagerRequiredMixin(RoleRequiredMixin):
    """Pages that change a campaign: managers only, whatever the method."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not selectors.campaign_may_change(request.user):
            raise PermissionDenied("Only managers change campaigns.")
        return super().dispatch(request, *args, **kwargs)


def _campaign_or_404(request, pk: int) -> Campaign:
    campaigns = selectors.campaigns_visible_to(request.user).select_related("staff")
    return get_object_or_404(campaigns, pk=pk)


def _context(request, **extra) -> dict:
    return {
        "may_change": selectors.campaign_may_change(request.user),
        "active_nav": "campaigns",
        **extra,
    }


def _moves(campaign: Campaign) -> list[tuple[str, str]]:
    allowed = services.TRANSITIONS[State(campaign.state)]
    return [(state.value, label) for state, label in MOVE_LABELS.items() if state in allowed]


class CampaignListView(RoleRequiredMixin, View):
    def get(self, request):
        form = CampaignFilterForm(request.GET or None)
        data = form.cleaned_data if form.is_valid() else {}
        campaigns = selectors.campaigns_filtered(
            selectors.campaigns_visible_to(request.user),
            type=data.get("type", ""),
            state=data.get("state", ""),
            search=data.get("q", ""),
        )
        page = Paginator(campaigns, CAMPAIGNS_PER_PAGE).get_page(request.GET.get("page"))
        return render(
            request, "campaigns/campaign_list.html", _context(request, form=form, page_obj=page)
        )


class CampaignDetailView(RoleRequiredMixin, View):
    def get(self, request, pk: int):
        return self.render_campaign(request, _campaign_or_404(request, pk))

    @staticmethod
    def render_campaign(
        request, campaign: Campaign, *, move_errors=None, forms=None, status: int = 200
    ):
        funnel = [
            {"row": row, "conversion": "" if row.conversion is None else as_percent(row.conversion)}
            for row in selectors.campaign_funnel_rows(campaign)
        ]
        participants = selectors.campaign_participants(campaign, user=request.user)
        page = Paginator(participants, PARTICIPANTS_PER_PAGE).get_page(request.GET.get("page"))
        # The link an operator opens to see the page as that customer would.
        asked = request.GET if "customer" in request.GET else None
        preview_form, landing_url = LandingPreviewForm(asked, user=request.user), ""
        if preview_form.is_bound and preview_form.is_valid():
            contact = preview_form.cleaned_data["customer"]
            token = landing_token(campaign.pk, contact.pk)
            landing_url = request.build_absolute_uri(reverse("campaigns:landing", args=[token]))
        context = _context(
            request,
            campaign=campaign,
            # As the edit form takes them: JSON an operator can copy back.
            rules_json=json.dumps(campaign.rules, ensure_ascii=False, indent=2),
            moves=_moves(campaign),
            move_errors=move_errors or [],
            funnel=funnel,
            roi=as_roi(services.campaign_roi(campaign)),
            money_spent=services.money_spent(campaign),
            page_obj=page,
            reward_totals=selectors.campaign_reward_totals(campaign),
            rewards=selectors.campaign_rewards(campaign, user=request.user)[:REWARDS_SHOWN],
            rejections=selectors.campaign_rejections(campaign),
            announcements=Plan.objects.filter(campaign=campaign).order_by("-created_at"),
            preview_form=preview_form,
            landing_url=landing_url,
            **_type_sections(request, campaign, forms or {}),
        )
        return render(request, "campaigns/campaign_detail.html", context, status=status)


class CampaignEditView(ManagerRequiredMixin, View):
    """Create (no pk) or change a campaign's settings; an ended campaign stays as it was."""

    def get(self, request, pk: int | None = None):
        campaign = self._campaign(request, pk)
        return self._render(request, campaign, CampaignForm(instance=campaign, user=request.user))

    def post(self, request, pk: int | None = None):
        campaign = self._campaign(request, pk)
        form = CampaignForm(request.POST, instance=campaign, user=request.user)
        if form.is_valid():
            campaign = form.save()
            messages.success(request, _("Campaign saved."))
            return HttpResponseRedirect(reverse("campaign_admin:detail", args=[campaign.pk]))
        return self._render(request, campaign, form)

    def _campaign(self, request, pk):
        if pk is None:
            return None
        campaign = _campaign_or_404(request, pk)
        if campaign.state == State.ENDED:
            raise PermissionDenied("An ended campaign cannot be changed.")
        return campaign

    def _render(self, request, campaign, form):
        return render(
            request,
            "campaigns/campaign_form.html",
            _context(request, campaign=campaign, form=form),
            status=400 if form.is_bound and form.errors else 200,
        )


def _move_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """A service's ValidationError as (field label, message) lines for the detail page."""
    if not hasattr(exc, "error_dict"):
        return [("", message) for message in exc.messages]
    fields = {field.name: field for field in Campaign._meta.get_fields()}
    rows = []
    for name, errors in exc.message_dict.items():
        field = fields.get(name)
        label = str(getattr(field, "verbose_name", name)).capitalize() if name != "__all__" else ""
        rows += [(label, message) for message in errors]
    return rows


class CampaignMoveView(ManagerRequiredMixin, View):
    """Schedule, start, end or take back to draft: POST {"to": state} via services."""

    def get(self, request, pk: int):
        return HttpResponseRedirect(reverse("campaign_admin:detail", args=[pk]))

    def post(self, request, pk: int):
        campaign = _campaign_or_404(request, pk)
        to = request.POST.get("to", "")
        try:
            if to not in State.values:
                raise ValidationError({"state": _("Choose a state to move to.")})
            if to in (State.SCHEDULED, State.RUNNING) and not selectors.type_available(
                campaign.type
            ):
                raise ValidationError({"type": _("This campaign type is not available yet.")})
            services.campaign_move(campaign, to)
        except ValidationError as exc:
            campaign.refresh_from_db()
            return CampaignDetailView.render_campaign(
                request, campaign, move_errors=_move_errors(exc), status=400
            )
        messages.success(
            request,
            gettext("The campaign is now %(state)s.") % {"state": campaign.get_state_display()},
        )
        return HttpResponseRedirect(reverse("campaign_admin:detail", args=[campaign.pk]))


class CampaignAnnounceView(ManagerRequiredMixin, View):
    """Announce through the SOP engine (services.announce): budgets and quiet hours apply."""

    def get(self, request, pk: int):
        campaign = _campaign_or_404(request, pk)
        return self._render(request, campaign, AnnounceForm(campaign=campaign))

    def post(self, request, pk: int):
        campaign = _campaign_or_404(request, pk)
        form = AnnounceForm(request.POST, campaign=campaign)
        if form.is_valid():
            data = form.cleaned_data
            try:
                plan = services.announce(
                    campaign,
                    content=data["content"],
                    send_at=data["send_at"],
                    contacts=data["contact_ids"],
                    user=request.user,
                )
            except ValidationError as exc:
                errors_to_form(form, exc)
            else:
                messages.success(
                    request,
                    gettext("Announcement planned for %(count)d customers.")
                    % {"count": plan.contacts.count()},
                )
                return HttpResponseRedirect(reverse("campaign_admin:detail", args=[campaign.pk]))
        return self._render(request, campaign, form)

    def _render(self, request, campaign, form):
        return render(
            request,
            "campaigns/campaign_announce.html",
            _context(request, campaign=campaign, form=form),
            status=400 if form.is_bound and form.errors else 200,
        )


# --- each type's own section ------------------------------------------------------------------

Type = Campaign.Type
STOCK_TYPES = (Type.FLASH_SALE, Type.LOTTERY)


def _type_template(campaign: Campaign) -> str:
    """templates/campaigns/types/<type>.html, or "" for a type without a section."""
    name = f"campaigns/types/{campaign.type}.html"
    try:
        get_template(name)
    except TemplateDoesNotExist:
        return ""
    return name


def _type_sections(request, campaign: Campaign, forms: dict) -> dict:
    """What the detail page shows beyond the generic settings: coupon batches on every
    campaign (any type may reward with a coupon), then the type's own section. `forms`
    holds a bound form that failed, to show again with its errors."""
    user = request.user

    def form(key: str, form_class):
        return forms.get(key) or form_class(campaign=campaign, prefix=key)

    section = {
        "type_template": _type_template(campaign),
        "batches": selectors.campaign_coupon_batches(campaign),
        "batch_form": form("batch", CouponBatchForm),
        "issue_form": form("issue", CouponIssueForm),
        "redeem_form": form("redeem", CouponRedeemForm),
    }
    if campaign.type in STOCK_TYPES:
        section["stock"] = selectors.campaign_stock(campaign)
        section["stock_form"] = form("stock", StockForm)
    elif campaign.type == Type.CONTEST:
        section["entries"] = selectors.contest_entries(campaign, user=user)
        section["may_draw"] = selectors.contest_may_draw(campaign)
    elif campaign.type == Type.GROUP_BUY:
        section["group_buys"] = selectors.campaign_group_buys(campaign, user=user)[:SECTION_ROWS]
    elif campaign.type == Type.REFERRAL:
        section["commissions"] = selectors.campaign_commissions(campaign, user=user)[:SECTION_ROWS]
        section["commission_totals"] = selectors.commission_totals(campaign, user=user)
    elif campaign.type == Type.INVITE_TASK:
        section["invite_counts"] = selectors.invite_counts(campaign)
        section["invite_progress"] = selectors.invite_progress(campaign, user=user)[:SECTION_ROWS]
    elif campaign.type == Type.CHECKIN:
        section["streaks"] = selectors.checkin_streaks(campaign, user=user)
    return section


def _back(campaign: Campaign, anchor: str) -> HttpResponseRedirect:
    url = reverse("campaign_admin:detail", args=[campaign.pk])
    return HttpResponseRedirect(f"{url}#{anchor}")


class _SectionFormView(ManagerRequiredMixin, View):
    """POST one type-section form: done, back to the detail page with a message; refused,
    the detail page again (400) with the errors next to the form's fields."""

    prefix = ""
    form_class = None
    anchor = ""

    def get(self, request, pk: int):
        return _back(_campaign_or_404(request, pk), self.anchor)

    def post(self, request, pk: int):
        campaign = _campaign_or_404(request, pk)
        if not self.allowed(campaign):
            raise PermissionDenied("This campaign type has no such section.")
        form = self.form_class(request.POST, campaign=campaign, prefix=self.prefix)
        if form.is_valid():
            try:
                message = self.act(campaign, form)
            except ValidationError as exc:
                errors_to_form(form, exc)
            else:
                messages.success(request, message)
                return _back(campaign, self.anchor)
        return CampaignDetailView.render_campaign(
            request, campaign, forms={self.prefix: form}, status=400
        )

    def allowed(self, campaign: Campaign) -> bool:
        return True

    def act(self, campaign: Campaign, form) -> str:
        raise NotImplementedError


class CouponBatchCreateView(_SectionFormView):
    prefix, form_class, anchor = "batch", CouponBatchForm, "coupons-title"

    def act(self, campaign, form) -> str:
        batch = form.save()
        return gettext("Coupon batch “%(name)s” created.") % {"name": batch.name}


def issue_summary(counts: dict) -> str:
    """offers.coupons_issue_to's counts as one sentence, refusals by their reason."""
    message = (
        gettext("Issued %(issued)d; %(already)d already had one; %(refused)d refused.") % counts
    )
    reasons = [
        f"{Rejection.Reason(reason).label}: {count}" for reason, count in counts["reasons"].items()
    ]
    return f"{message} ({'; '.join(reasons)})" if reasons else message


class CouponIssueView(_SectionFormView):
    prefix, form_class, anchor = "issue", CouponIssueForm, "coupons-title"

    def act(self, campaign, form) -> str:
        return issue_summary(offers.coupons_issue_to(form.cleaned_data["batch"], form.contacts()))


class CouponRedeemView(_SectionFormView):
    prefix, form_class, anchor = "redeem", CouponRedeemForm, "coupons-title"

    def act(self, campaign, form) -> str:
        coupon, order = form.cleaned_data["code"], form.cleaned_data["order_no"]
        try:
            offers.coupon_redeem(coupon.code, order=order)
        except services.CampaignRefused as refused:
            raise ValidationError(
                {"code": gettext("Refused: %(reason)s.") % {"reason": refused}}
            ) from None
        except ValidationError as exc:  # offers names the order "order"; the form, order_no
            if hasattr(exc, "error_dict") and "order" in exc.error_dict:
                raise ValidationError({"order_no": exc.error_dict["order"]}) from None
            raise
        return gettext("Coupon %(code)s redeemed on order %(order)s.") % {
            "code": coupon.code,
            "order": order.order_no,
        }


class StockAddView(_SectionFormView):
    prefix, form_class, anchor = "stock", StockForm, "stock-title"

    def allowed(self, campaign) -> bool:
        return campaign.type in STOCK_TYPES

    def act(self, campaign, form) -> str:
        item = form.save()
        return gettext("“%(name)s” added: %(total)d units.") % {
            "name": item.name,
            "total": item.total,
        }


class ContestDrawView(ManagerRequiredMixin, View):
    """Reward the top entries once the contest is over (engagement.contest_draw: once each,
    so drawing again gives nothing twice)."""

    def get(self, request, pk: int):
        return _back(_campaign_or_404(request, pk), "entries-title")

    def post(self, request, pk: int):
        campaign = _campaign_or_404(request, pk)
        if campaign.type != Type.CONTEST:
            raise PermissionDenied("Only a contest has a draw.")
        try:
            rewards = engagement.contest_draw(campaign)
        except ValidationError as exc:
            return CampaignDetailView.render_campaign(
                request, campaign, move_errors=_move_errors(exc), status=400
            )
        except services.CampaignRefused as refused:  # budget or coupon stock ran out
            messages.error(
                request,
                gettext("The draw stopped: %(reason)s. Winners so far keep their reward.")
                % {"reason": refused},
            )
            return _back(campaign, "entries-title")
        names = ", ".join(
            reward.contact.name or reward.contact.external_userid for reward in rewards
        )
        messages.success(request, gettext("Winners: %(names)s.") % {"names": names or "—"})
        return _back(campaign, "entries-title")
