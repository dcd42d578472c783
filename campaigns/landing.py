"""The public landing page a customer taps in WeCom: /c/<token>/. No login: the signed token
(campaigns.tokens) says which campaign and which customer. Minimal and mobile-first; each
type's template shows its state and the actions the type offers (campaigns.types)."""

from urllib.parse import urlencode

from django.core import signing
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from analytics.events import record
from analytics.models import EventType
from campaigns import services
from campaigns.models import Campaign
from campaigns.tokens import BadToken, landing_read
from campaigns.types import actions, type_module
from contacts.models import Contact


def _resolve(token: str) -> tuple[Campaign, Contact]:
    try:
        campaign_id, contact_id = landing_read(token)
    except BadToken:
        raise Http404("link not valid") from None
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    contact = Contact.objects.filter(pk=contact_id).first()
    if campaign is None or contact is None:
        raise Http404("link not valid")
    return campaign, contact


def landing(request, token: str):
    campaign, contact = _resolve(token)
    # Opening the page is being reached, once a day per customer; not when a logged-in
    # operator previews a customer's page.
    now = timezone.now()
    if not request.user.is_authenticated:
        record(
            type=EventType.CAMPAIGN_REACHED,
            occurred_at=now,
            key=f"campaign:{campaign.pk}:reached:{contact.pk}:{timezone.localdate(now)}",
            contact=contact,
            campaign=campaign,
            payload={"via": "landing"},
        )
    context = {
        "campaign": campaign,
        "contact": contact,
        "token": token,
        "running": services.is_running(campaign),
        "actions": list(actions(campaign.type)),
        "message": _message_read(request.GET.get("m", "")),
        **type_module(campaign.type).landing_context(campaign, contact),
    }
    return render(request, f"campaigns/landing/{campaign.type}.html", context)


@require_POST
def landing_act(request, token: str, action: str):
    campaign, contact = _resolve(token)
    act = actions(campaign.type).get(action)
    if act is None:
        return HttpResponseBadRequest("no such action")
    try:
        message = act(campaign, contact, request.POST)
    except services.CampaignRefused as refused:
        message = str(refused)
    # The outcome rides on the redirect, signed (nobody can make our page say something
    # else): no session, so a tap writes nothing but its own effect.
    url = reverse("campaigns:landing", kwargs={"token": token})
    return redirect(f"{url}?{urlencode({'m': signing.dumps(str(message), salt=MESSAGE_SALT)})}")


MESSAGE_SALT = "campaigns.landing.message"


def _message_read(signed: str) -> str:
    if not signed:
        return ""
    try:
        return signing.loads(signed, salt=MESSAGE_SALT, max_age=600)
    except signing.BadSignature:
        return ""
