"""Forms of the operators' campaign pages: the list filters, a campaign's settings, the
announcement, the landing-link preview, and the type sections' coupon batches, coupon
issuing and redeeming, and stock."""

from datetime import timedelta
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campaigns import services
from campaigns.models import Campaign, Coupon, CouponBatch, Order, Stock
from campaigns.selectors import code_clean, coupon_of_campaign, segment_contacts, type_available
from campaigns.types import rules_check
from contacts.models import Contact, MemberTier, Staff, Tag
from contacts.selectors import contacts_visible_to
from groups.models import Group
from sop.forms import GroupChoiceField, TagChoiceField
from sop.models import ContentItem

FEN_PER_YUAN = Decimal(100)
# A send time a little in the past still goes out at the next tick; further back is a typo.
SEND_AT_SLACK = timedelta(minutes=5)


def rules_errors_to_form(form: forms.BaseForm, exc: ValidationError) -> None:
    """Put the errors of rules_check / campaign_check next to the fields they name; a
    rule's own name is no form field, so its error goes beside the rules, named."""
    if not hasattr(exc, "error_dict"):
        form.add_error("rules", exc)
        return
    for name, errors in exc.message_dict.items():
        if name in form.fields:
            form.add_error(name, errors)
        elif name == "__all__":
            form.add_error(None, errors)
        else:
            form.add_error("rules", [f"{name}: {message}" for message in errors])


class CampaignFilterForm(forms.Form):
    q = forms.CharField(label=_("Name"), required=False, max_length=100)
    type = forms.ChoiceField(
        label=_("Type"), required=False, choices=[("", _("All types")), *Campaign.Type.choices]
    )
    state = forms.ChoiceField(
        label=_("State"),
        required=False,
        choices=[("", _("All states")), *Campaign.State.choices],
    )


class SenderChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, staff: Staff) -> str:
        return f"{staff.name} · {staff.userid}"


class CampaignForm(forms.ModelForm):
    """A campaign's settings. Rules are checked against its type; a scheduled or running
    campaign must stay fit to run (services.campaign_check)."""

    budget_yuan = forms.DecimalField(
        label=_("Budget (yuan)"),
        min_value=0,
        max_digits=14,
        decimal_places=2,
        required=False,
        help_text=_("Caps money rewards (commissions, gifts, coupons); empty or 0: no cap."),
    )
    rules = forms.JSONField(
        label=_("Rules"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
        help_text=_("A JSON object with the settings of the campaign's type."),
    )
    audience_tags = TagChoiceField(
        label=_("Audience tags"),
        queryset=Tag.objects.select_related("group").order_by("group__name", "name"),
        required=False,
        help_text=_("Customers with any of these tags; none picked: no condition."),
    )
    audience_tiers = forms.ModelMultipleChoiceField(
        label=_("Audience tiers"),
        queryset=MemberTier.objects.order_by("level"),
        required=False,
        help_text=_("Customers in any of these tiers; none picked: no condition."),
    )
    audience_groups = GroupChoiceField(
        label=_("Audience groups"),
        queryset=Group.objects.none(),
        required=False,
        help_text=_("Customers in any of these groups now; none picked: no condition."),
    )
    staff = SenderChoiceField(
        label=_("Sender"),
        queryset=Staff.objects.none(),
        required=False,
        help_text=_("The staff member whose WeCom account sends its announcements."),
    )

    class Meta:
        model = Campaign
        fields = [
            "name",
            "type",
            "starts_at",
            "ends_at",
            "budget_yuan",
            "audience_tags",
            "audience_tiers",
            "audience_groups",
            "staff",
            "rules",
        ]
        widgets = {
            "starts_at": forms.DateTimeInput(
                attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
            ),
            "ends_at": forms.DateTimeInput(
                attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
            ),
        }
        help_texts = {"starts_at": _("Shanghai time."), "ends_at": _("Shanghai time.")}

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        campaign = self.instance
        present = campaign.audience_groups.values("pk") if campaign.pk else Group.objects.none()
        self.fields["audience_groups"].queryset = (
            Group.objects.filter(Q(dismissed_at__isnull=True) | Q(pk__in=present))
            .select_related("owner")
            .only(*GroupChoiceField.LABEL_FIELDS)
            .order_by("name")
        )
        self.fields["staff"].queryset = Staff.objects.filter(
            Q(status=Staff.Status.ACTIVE) | Q(pk=campaign.staff_id)
        ).order_by("name")
        if campaign.pk:
            self.initial.setdefault("budget_yuan", Decimal(campaign.budget_fen) / FEN_PER_YUAN)
            if campaign.state != Campaign.State.DRAFT:
                # Its participants' records follow the type's mechanics: the type stays.
                self.fields["type"].disabled = True

    def clean_budget_yuan(self):
        value = self.cleaned_data.get("budget_yuan")
        return Decimal(0) if value is None else value

    def clean_rules(self):
        rules = self.cleaned_data.get("rules")
        return {} if rules is None else rules

    def clean(self):
        data = super().clean()
        starts_at, ends_at = data.get("starts_at"), data.get("ends_at")
        campaign_type, rules = data.get("type"), data.get("rules")
        live = self.instance.state in (Campaign.State.SCHEDULED, Campaign.State.RUNNING)
        if not live and starts_at and ends_at and ends_at <= starts_at:
            self.add_error("ends_at", _("The end must come after the start."))
        if not campaign_type or "rules" not in data:
            return data
        if isinstance(rules, dict) and not type_available(campaign_type):
            self.add_error("type", _("This campaign type is not available yet."))
            return data
        try:
            if live:
                # It runs or is about to: it must stay fit to run (this checks the period too).
                services.campaign_check(
                    Campaign(type=campaign_type, rules=rules, starts_at=starts_at, ends_at=ends_at)
                )
            else:
                rules_check(campaign_type, rules)
        except ValidationError as exc:
            rules_errors_to_form(self, exc)
        return data

    def save(self, commit=True):
        campaign = super().save(commit=False)
        campaign.budget_fen = int(self.cleaned_data["budget_yuan"] * FEN_PER_YUAN)
        if campaign.pk is None:
            campaign.created_by = self.user
        if commit:
            campaign.save()
            self.save_m2m()
        return campaign


class AnnounceForm(forms.Form):
    """Announce the campaign through the SOP engine: one content item, to its participants
    or to its whole audience, at a time."""

    PARTICIPANTS = "participants"
    AUDIENCE = "audience"

    content = forms.ModelChoiceField(
        label=_("Content"),
        queryset=ContentItem.objects.none(),
        help_text=_("From the SOP content library."),
    )
    reach = forms.ChoiceField(
        label=_("Send to"),
        choices=[
            (PARTICIPANTS, _("Its participants")),
            (AUDIENCE, _("Its whole audience")),
        ],
        widget=forms.RadioSelect,
        initial=PARTICIPANTS,
    )
    send_at = forms.DateTimeField(
        label=_("Send at"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_("Shanghai time. Push budgets and quiet hours may hold it later."),
    )

    def __init__(self, *args, campaign: Campaign, **kwargs):
        super().__init__(*args, **kwargs)
        self.campaign = campaign
        self.fields["content"].queryset = ContentItem.objects.filter(archived=False).order_by(
            "title"
        )

    def clean_send_at(self):
        send_at = self.cleaned_data["send_at"]
        if send_at < timezone.now() - SEND_AT_SLACK:
            raise ValidationError(_("The send time has passed."))
        if self.campaign.ends_at and send_at >= self.campaign.ends_at:
            raise ValidationError(_("The campaign is over by then."))
        return send_at

    def clean(self):
        data = super().clean()
        if self.campaign.state == Campaign.State.ENDED:
            raise ValidationError(_("The campaign has ended."))
        reach = data.get("reach")
        if reach:
            contact_ids = self.contact_ids(reach)
            if not contact_ids:
                message = (
                    _("The campaign has no participants yet.")
                    if reach == self.PARTICIPANTS
                    else _("Nobody is in the campaign's audience.")
                )
                self.add_error("reach", message)
            data["contact_ids"] = contact_ids
        return data

    def contact_ids(self, reach: str) -> list[int]:
        if reach == self.PARTICIPANTS:
            people = self.campaign.participants.values_list("contact_id", flat=True)
        else:
            people = services.audience(self.campaign).values_list("pk", flat=True)
        return list(people)


class LandingPreviewForm(forms.Form):
    """Which customer's landing link to show: their id or WeCom external_userid."""

    customer = forms.CharField(
        label=_("Customer"),
        max_length=64,
        help_text=_("The customer's id or WeCom external user id."),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_customer(self) -> Contact:
        value = self.cleaned_data["customer"].strip()
        condition = Q(external_userid=value)
        if value.isdigit():
            condition |= Q(pk=int(value))
        contact = contacts_visible_to(self.user).filter(condition).first()
        if contact is None:
            raise ValidationError(_("No such customer that you may see."))
        return contact


# --- what each type needs beyond the generic settings -----------------------------------------


def yuan_field(label, *, minimum: str, help_text="") -> forms.DecimalField:
    """Money typed in yuan (to the fen), stored in fen by the form's save."""
    return forms.DecimalField(
        label=label,
        min_value=Decimal(minimum),
        max_digits=14,
        decimal_places=2,
        help_text=help_text,
    )


def as_fen(yuan: Decimal) -> int:
    return int(yuan * FEN_PER_YUAN)


def at_least_one(field: forms.Field) -> None:
    """A count that must be 1 or more (the model only keeps it from going negative)."""
    field.validators.append(MinValueValidator(1))
    field.widget.attrs["min"] = 1


class _NotEndedMixin:
    """Stock and coupons are added or issued only while the campaign has not ended."""

    def check_not_ended(self) -> None:
        if self.campaign.state == Campaign.State.ENDED:
            raise ValidationError(_("The campaign has ended."))


class CouponBatchForm(_NotEndedMixin, forms.ModelForm):
    """A new coupon batch of the campaign: its value and minimum spend in yuan."""

    value_yuan = yuan_field(_("Value (yuan)"), minimum="0.01")
    min_spend_yuan = yuan_field(
        _("Minimum spend (yuan)"), minimum="0", help_text=_("0: any order.")
    )

    class Meta:
        model = CouponBatch
        fields = [
            "name",
            "value_yuan",
            "min_spend_yuan",
            "stock",
            "per_contact",
            "valid_days",
            "claim_code",
        ]
        labels = {"stock": _("Stock")}
        help_texts = {
            "stock": _("How many coupons may be issued in all."),
            "valid_days": _("From the day each coupon is issued."),
            "claim_code": _("A public code customers type to claim one; blank: issued only."),
        }

    def __init__(self, *args, campaign: Campaign, **kwargs):
        super().__init__(*args, **kwargs)
        self.campaign = campaign
        self.initial.setdefault("min_spend_yuan", Decimal(0))
        for name in ("stock", "per_contact", "valid_days"):
            at_least_one(self.fields[name])

    def clean_claim_code(self) -> str:
        code = code_clean(self.cleaned_data.get("claim_code", ""))
        taken = self.campaign.coupon_batches.exclude(claim_code="")
        if code and any(code_clean(batch.claim_code) == code for batch in taken):
            raise ValidationError(_("Another batch of this campaign has this claim code."))
        return code

    def clean(self):
        data = super().clean()
        self.check_not_ended()
        return data

    def save(self, commit=True) -> CouponBatch:
        batch = super().save(commit=False)
        batch.campaign = self.campaign
        batch.value_fen = as_fen(self.cleaned_data["value_yuan"])
        batch.min_spend_fen = as_fen(self.cleaned_data["min_spend_yuan"])
        if commit:
            batch.save()
        return batch


class CouponIssueForm(_NotEndedMixin, forms.Form):
    """Issue one coupon of a batch to each customer of a segment (offers.coupons_issue_to)."""

    AUDIENCE = "audience"
    TAG = "tag"

    batch = forms.ModelChoiceField(label=_("Coupon batch"), queryset=CouponBatch.objects.none())
    segment = forms.ChoiceField(
        label=_("Issue to"),
        choices=[(AUDIENCE, _("The campaign's audience")), (TAG, _("Customers with a tag"))],
        widget=forms.RadioSelect,
        initial=AUDIENCE,
    )
    tag = forms.ModelChoiceField(
        label=_("Tag"),
        queryset=Tag.objects.select_related("group").order_by("group__name", "name"),
        required=False,
        help_text=_("When issuing to the customers with a tag."),
    )

    def __init__(self, *args, campaign: Campaign, **kwargs):
        super().__init__(*args, **kwargs)
        self.campaign = campaign
        self.fields["batch"].queryset = campaign.coupon_batches.order_by("pk")
        self.fields["tag"].label_from_instance = lambda tag: f"{tag.group.name} / {tag.name}"

    def clean(self):
        data = super().clean()
        self.check_not_ended()
        if data.get("segment") == self.TAG and not data.get("tag"):
            self.add_error("tag", _("Choose the tag whose customers get a coupon."))
        return data

    def contacts(self):
        tag = self.cleaned_data["tag"] if self.cleaned_data["segment"] == self.TAG else None
        return segment_contacts(self.campaign, tag=tag)


class CouponRedeemForm(forms.Form):
    """Use a customer's coupon of this campaign on their order (offers.coupon_redeem)."""

    code = forms.CharField(label=_("Coupon code"), max_length=40)
    order_no = forms.CharField(label=_("Order number"), max_length=64)

    def __init__(self, *args, campaign: Campaign, **kwargs):
        super().__init__(*args, **kwargs)
        self.campaign = campaign

    def clean_code(self) -> Coupon:
        coupon = coupon_of_campaign(self.campaign, self.cleaned_data["code"])
        if coupon is None:
            raise ValidationError(_("No coupon of this campaign has this code."))
        return coupon

    def clean_order_no(self) -> Order:
        order = Order.objects.filter(order_no=self.cleaned_data["order_no"].strip()).first()
        if order is None:
            raise ValidationError(_("No order has this number."))
        return order


class StockForm(_NotEndedMixin, forms.ModelForm):
    """A flash-sale item or a lottery prize: all its units remain when added."""

    price_yuan = yuan_field(_("Price (yuan)"), minimum="0")

    class Meta:
        model = Stock
        fields = ["name", "price_yuan", "total", "weight"]
        help_texts = {
            "weight": _("Relative odds of drawing this prize against the other prizes."),
        }

    def __init__(self, *args, campaign: Campaign, **kwargs):
        super().__init__(*args, **kwargs)
        self.campaign = campaign
        at_least_one(self.fields["total"])
        if campaign.type == Campaign.Type.LOTTERY:
            at_least_one(self.fields["weight"])
            self.initial.setdefault("weight", 1)
        else:  # a flash-sale item is bought, not drawn
            del self.fields["weight"]

    def clean(self):
        data = super().clean()
        self.check_not_ended()
        return data

    def save(self, commit=True) -> Stock:
        item = super().save(commit=False)
        item.campaign = self.campaign
        item.price_fen = as_fen(self.cleaned_data["price_yuan"])
        item.remaining = item.total
        if commit:
            item.save()
        return item
