"""Checks shared by the campaign types' rule checkers, each adding a message under the
rule's name to `errors` (which the checker raises as one ValidationError)."""

from datetime import date, datetime

from django.utils import timezone
from django.utils.translation import gettext as _

from analytics.metrics import SHANGHAI
from campaigns.models import CouponBatch


def shanghai_day(moment: datetime) -> date:
    return timezone.localtime(moment, SHANGHAI).date()


def whole(rules: dict, name: str, errors: dict, *, minimum: int, required: bool = True):
    """The rule `name` as a whole number >= minimum; a message under its name otherwise."""
    value = rules.get(name)
    if value is None:
        if required:
            errors[name] = _("%(rule)s is required.") % {"rule": name}
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        errors[name] = _("%(rule)s must be a whole number of at least %(minimum)s.") % {
            "rule": name,
            "minimum": minimum,
        }
        return None
    return value


def reward_check(rules: dict, errors: dict) -> None:
    """`reward` is {"points": n} or {"coupon_batch": id} of an existing batch."""
    spec = rules.get("reward")
    if not isinstance(spec, dict) or len(spec) != 1 or not {"points", "coupon_batch"} & set(spec):
        errors["reward"] = _('reward must be {"points": n} or {"coupon_batch": id}.')
        return
    inner: dict = {}
    if "points" in spec:
        whole(spec, "points", inner, minimum=1)
    else:
        batch = whole(spec, "coupon_batch", inner, minimum=1)
        if batch is not None and not CouponBatch.objects.filter(pk=batch).exists():
            inner["coupon_batch"] = _("coupon_batch %(id)s does not exist.") % {"id": batch}
    if inner:
        errors["reward"] = " ".join(f"reward.{message}" for message in inner.values())
