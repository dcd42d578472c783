"""Which module carries which campaign type, and what each such module offers.

A type module defines, for the types it carries:
- RULES: {type: check(rules) -> None}, raising ValidationError naming the rule at fault;
- landing_context(campaign, contact) -> dict, for templates/campaigns/landing/<type>.html;
- ACTIONS: {type: {name: act(campaign, contact, data) -> str}}: what a customer can do from
  the landing page (check in, claim, vote…); `act` returns the message to show, and raises
  campaigns.services.CampaignRefused (its reason recorded) when refused.
"""

from importlib import import_module

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from campaigns.models import Campaign

Type = Campaign.Type

TYPE_MODULES = {
    Type.REFERRAL: "campaigns.fission",
    Type.INVITE_TASK: "campaigns.fission",
    Type.GROUP_FISSION: "campaigns.fission",
    Type.POINTS: "campaigns.fission",
    Type.CHECKIN: "campaigns.engagement",
    Type.GROUP_BUY: "campaigns.engagement",
    Type.CONTEST: "campaigns.engagement",
    Type.COUPON: "campaigns.offers",
    Type.FLASH_SALE: "campaigns.offers",
    Type.LOTTERY: "campaigns.offers",
    Type.SPEND_AND_GET: "campaigns.offers",
}


def type_module(campaign_type: str):
    return import_module(TYPE_MODULES[campaign_type])


def rules_check(campaign_type: str, rules: dict) -> None:
    """Check a campaign's rules against its type; ValidationError names each bad rule."""
    if campaign_type not in TYPE_MODULES:
        raise ValidationError({"type": _("Unknown campaign type.")})
    if not isinstance(rules, dict):
        raise ValidationError({"rules": _("Rules must be an object.")})
    check = type_module(campaign_type).RULES[campaign_type]
    check(rules)


def actions(campaign_type: str) -> dict:
    return type_module(campaign_type).ACTIONS.get(campaign_type, {})
