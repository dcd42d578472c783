"""Signed tokens: how a customer-facing page knows who taps it, never by a guessable id.

A landing token names a campaign and a customer, signed with the site's key (Django's
signing), so a customer cannot swap in someone else's id; it is sent inside WeCom messages.
"""

from django.core import signing

SALT = "campaigns.landing"
# A link in a message stays good for the length of any campaign.
MAX_AGE = 60 * 60 * 24 * 180


class BadToken(ValueError):
    pass


def landing_token(campaign_id: int, contact_id: int) -> str:
    return signing.dumps({"c": campaign_id, "p": contact_id}, salt=SALT, compress=True)


def landing_read(token: str) -> tuple[int, int]:
    """(campaign id, contact id) of a token; BadToken if forged, altered or too old."""
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE)
        return int(data["c"]), int(data["p"])
    except (signing.BadSignature, KeyError, TypeError, ValueError) as error:
        raise BadToken(str(error)) from error
