"""Rule-based tags (规则标签): a small condition language, checked, then evaluated in SQL.

A rule's conditions are one of

    {"all": [condition, ...]}     every condition holds
    {"any": [condition, ...]}     at least one holds

and a condition is {"field": ..., "op": ..., "value": ...}, ops ">=", "<=", "==", "!=":

    orders                    paid orders (net of refunds), "within_days": N optional
    spend_fen                 spend in fen (net of refunds), "within_days": N optional
    days_since_last_order     whole days since the last paid order (never ordered: no match)
    days_since_last_activity  whole days since the last speech or order, or since joining
    tier_level                the tier's level (0 without a tier)
    in_group                  == / != only; value: a group type ("benefit", ...) or a group id;
                              an open membership in such a group
    source_channel            == / != only; value: a channel code id
    has_tag                   == / != only; value: a tag id

e.g. "2+ orders in 30 days":
    {"all": [{"field": "orders", "within_days": 30, "op": ">=", "value": 2}]}
and "no speech or order in 30 days":
    {"all": [{"field": "days_since_last_activity", "op": ">=", "value": 30}]}
"""

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.apps import apps
from django.db import transaction
from django.db.models import Q, QuerySet

from analytics.events import EventRow, record_many
from analytics.models import EventType
from contacts.lifecycle import (
    DAY,
    active_between,
    joined_by,
    orders_q,
    quiet_since,
    use_batch_memory,
)
from contacts.models import ChannelCode, Contact, ContactTag, Tag, TagRule, TagSource

OPERATORS: dict[str, Callable[[int, int], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_LOOKUPS = {">=": "gte", "<=": "lte", "==": "exact"}
NUMERIC_FIELDS = {
    "orders",
    "spend_fen",
    "days_since_last_order",
    "days_since_last_activity",
    "tier_level",
}
WINDOWED_FIELDS = {"orders", "spend_fen"}
MEMBERSHIP_FIELDS = {"in_group", "source_channel", "has_tag"}
FIELDS = NUMERIC_FIELDS | MEMBERSHIP_FIELDS
MAX_WINDOW_DAYS = 3650
MAX_CONDITIONS = 20


def _group_model(name: str):
    # groups sits above contacts, so its models are looked up, never imported.
    return apps.get_model("groups", name)


# --- validation --------------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_condition(condition, where: str) -> dict:
    if not isinstance(condition, dict):
        raise ValueError(f"{where}: a condition must be an object with field, op and value")
    unknown = set(condition) - {"field", "op", "value", "within_days"}
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name = condition.get("field")
    if name not in FIELDS:
        raise ValueError(f"{where}.field: {name!r} is not one of {', '.join(sorted(FIELDS))}")
    op = condition.get("op")
    allowed = OPERATORS if name in NUMERIC_FIELDS else ("==", "!=")
    if op not in allowed:
        raise ValueError(f"{where}.op: {op!r} is not one of {', '.join(allowed)} for {name}")
    if "value" not in condition:
        raise ValueError(f"{where}.value: missing")
    value = condition["value"]
    cleaned = {"field": name, "op": op, "value": value}
    if "within_days" in condition:
        if name not in WINDOWED_FIELDS:
            raise ValueError(f"{where}.within_days: only orders and spend_fen take a window")
        days = condition["within_days"]
        if not _is_int(days) or not 1 <= days <= MAX_WINDOW_DAYS:
            raise ValueError(f"{where}.within_days: a whole number from 1 to {MAX_WINDOW_DAYS}")
        cleaned["within_days"] = days
    if name in NUMERIC_FIELDS:
        if not _is_int(value) or value < 0:
            raise ValueError(f"{where}.value: a whole number of 0 or more")
    elif name == "in_group":
        group = _group_model("Group")
        if isinstance(value, str):
            if value not in group.Type.values:
                raise ValueError(
                    f"{where}.value: {value!r} is not a group type "
                    f"({', '.join(group.Type.values)}) nor a group id"
                )
        elif not _is_int(value) or not group.objects.filter(pk=value).exists():
            raise ValueError(f"{where}.value: no group with id {value!r}")
    elif name == "source_channel":
        if not _is_int(value) or not ChannelCode.objects.filter(pk=value).exists():
            raise ValueError(f"{where}.value: no channel code with id {value!r}")
    elif name == "has_tag":
        if not _is_int(value) or not Tag.objects.filter(pk=value).exists():
            raise ValueError(f"{where}.value: no tag with id {value!r}")
    return cleaned


def tag_rule_validate(conditions, *, tag_id: int | None = None) -> dict:
    """The conditions, checked and normalised; a ValueError names the bad part, e.g.
    "conditions.all[1].op: '>' is not one of >=, <=, ==, != for orders".

    With `tag_id` (the rule's own tag), a condition on that same tag is refused: the rule
    would switch its own tag on and off.
    """
    if not isinstance(conditions, dict) or len(conditions) != 1:
        raise ValueError('conditions: an object with exactly one key, "all" or "any"')
    ((combine, items),) = conditions.items()
    if combine not in ("all", "any"):
        raise ValueError(f'conditions: {combine!r} is not "all" or "any"')
    where = f"conditions.{combine}"
    if not isinstance(items, list) or not items:
        raise ValueError(f"{where}: a non-empty list of conditions")
    if len(items) > MAX_CONDITIONS:
        raise ValueError(f"{where}: at most {MAX_CONDITIONS} conditions")
    cleaned = [_check_condition(item, f"{where}[{i}]") for i, item in enumerate(items)]
    for i, item in enumerate(cleaned):
        if tag_id is not None and item["field"] == "has_tag" and item["value"] == tag_id:
            raise ValueError(f"{where}[{i}].value: a rule cannot depend on its own tag")
    return {combine: cleaned}


# --- evaluation in SQL -------------------------------------------------------------------


def _orders_condition_q(name: str, op: str, value: int, **window) -> Q:
    """Contacts whose orders or spend in the window satisfy `op value`; a contact without
    orders there has 0 of both, so e.g. "orders <= 1" includes them."""
    if OPERATORS[op](0, value):
        return ~orders_q([(name, op, value)], negate=True, **window)
    return orders_q([(name, op, value)], **window)


def _activity_days_q(op: str, value: int, *, now: datetime) -> Q:
    """days since max(last speech or order, joining): at least v means nothing in the last v
    days and joined v days ago; at most v means something (or joining) in the last v+1 days.
    """

    def at_least(v: int) -> Q:
        return quiet_since(now - v * DAY, now=now)

    def at_most(v: int) -> Q:
        cutoff = now - (v + 1) * DAY
        return Q(active_between(since=cutoff, until=now)) | ~joined_by(cutoff)

    return _between(op, value, at_least, at_most)


def _last_order_days_q(op: str, value: int, *, now: datetime, contact_id: int | None) -> Q:
    def last_order(sql_op: str, moment: datetime) -> Q:
        return orders_q([("last_order_at", sql_op, moment)], contact_id=contact_id, until=now)

    def at_least(v: int) -> Q:
        return last_order("<=", now - v * DAY)

    def at_most(v: int) -> Q:
        return last_order(">", now - (v + 1) * DAY)

    # Never ordered: no number of days, so no match whatever the operator.
    ordered = orders_q(contact_id=contact_id, until=now)
    return _between(op, value, at_least, at_most) & ordered


def _between(op: str, value: int, at_least, at_most) -> Q:
    if op == ">=":
        return at_least(value)
    if op == "<=":
        return at_most(value)
    exactly = at_least(value) & at_most(value)
    return exactly if op == "==" else ~exactly


def _tier_level_q(op: str, value: int) -> Q:
    if op == "!=":
        q = Q(tier__isnull=False) & ~Q(tier__level=value)
    else:
        q = Q(**{f"tier__level__{_LOOKUPS[op]}": value})
    if OPERATORS[op](0, value):
        q |= Q(tier__isnull=True)
    return q


def _membership_q(name: str, value, *, contact_id: int | None) -> Q:
    if name == "in_group":
        stays = _group_model("GroupMembership").objects.filter(
            contact__isnull=False, left_at__isnull=True, group__dismissed_at__isnull=True
        )
        stays = (
            stays.filter(group__type=value)
            if isinstance(value, str)
            else stays.filter(group_id=value)
        )
        if contact_id is not None:
            stays = stays.filter(contact_id=contact_id)
        return Q(pk__in=stays.values("contact_id"))
    if name == "source_channel":
        return Q(source_channel_id=value)
    tagged = ContactTag.objects.filter(tag_id=value)
    if contact_id is not None:
        tagged = tagged.filter(contact_id=contact_id)
    return Q(pk__in=tagged.values("contact_id"))


def _condition_q(condition: dict, *, now: datetime, contact_id: int | None) -> Q:
    name, op, value = condition["field"], condition["op"], condition["value"]
    if name in WINDOWED_FIELDS:
        days = condition.get("within_days")
        since = now - days * DAY if days else None
        return _orders_condition_q(name, op, value, contact_id=contact_id, since=since, until=now)
    if name == "days_since_last_activity":
        return _activity_days_q(op, value, now=now)
    if name == "days_since_last_order":
        return _last_order_days_q(op, value, now=now, contact_id=contact_id)
    if name == "tier_level":
        return _tier_level_q(op, value)
    q = _membership_q(name, value, contact_id=contact_id)
    return q if op == "==" else ~q


def conditions_q(conditions: dict, *, now: datetime, contact_id: int | None = None) -> Q:
    """The conditions as one filter over contacts. `contact_id` narrows every subquery to
    that contact, so checking one contact reads only their events."""
    ((combine, items),) = conditions.items()
    parts = [_condition_q(item, now=now, contact_id=contact_id) for item in items]
    q = parts[0]
    for part in parts[1:]:
        q = (q & part) if combine == "all" else (q | part)
    return q


def tag_rule_matching(rule: TagRule, *, now: datetime) -> QuerySet[Contact]:
    """Every contact the rule's conditions hold for at `now`."""
    return Contact.objects.filter(conditions_q(tag_rule_validate(rule.conditions), now=now))


@dataclass
class RuleOutcome:
    added: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)


WECOM_PUSH_BATCH = 500


@transaction.atomic
def tag_rule_apply(rule: TagRule, *, now: datetime, contact_id: int | None = None) -> RuleOutcome:
    """Give the rule's tag to contacts who now match and take it back from rule-tagged
    contacts who no longer do, recording TAG_ADDED / TAG_REMOVED; all contacts, or one.

    Only tags the rule gave are taken back: the same tag given by hand or by WeCom stays.
    """
    # A full run takes the rule's row, so two runs of one rule never overlap; a check of one
    # contact takes that contact's row instead, so checks of different contacts run side by
    # side while two of the same contact queue.
    rules = TagRule.objects.select_related("tag")
    if contact_id is None:
        use_batch_memory()
        rule = rules.select_for_update(of=("self",)).get(pk=rule.pk)
    else:
        Contact.objects.select_for_update().filter(pk=contact_id).values_list("pk").first()
        rule = rules.get(pk=rule.pk)
    outcome = RuleOutcome()
    if not rule.is_active:
        return outcome
    conditions = tag_rule_validate(rule.conditions)
    contacts = Contact.objects.all()
    tagged = ContactTag.objects.filter(tag_id=rule.tag_id)
    if contact_id is not None:
        contacts = contacts.filter(pk=contact_id)
        tagged = tagged.filter(contact_id=contact_id)
    matching = contacts.filter(conditions_q(conditions, now=now, contact_id=contact_id))
    outcome.added = list(
        matching.exclude(pk__in=tagged.values("contact_id")).values_list("pk", flat=True)
    )
    outcome.removed = list(
        tagged.filter(source=TagSource.RULE)
        .exclude(contact_id__in=matching.values("pk"))
        .values_list("contact_id", flat=True)
    )
    ContactTag.objects.bulk_create(
        [
            ContactTag(contact_id=pk, tag_id=rule.tag_id, source=TagSource.RULE)
            for pk in outcome.added
        ],
        batch_size=5_000,
        ignore_conflicts=True,
    )
    ContactTag.objects.filter(
        tag_id=rule.tag_id, source=TagSource.RULE, contact_id__in=outcome.removed
    ).delete()
    payload = {
        "tag_id": rule.tag_id,
        "tag": rule.tag.name,
        "source": TagSource.RULE,
        "rule": rule.pk,
    }
    stamp = now.isoformat()
    record_many(
        [
            EventRow(
                type=EventType.TAG_ADDED,
                occurred_at=now,
                key=f"tag-rule:{rule.pk}:{pk}:added:{stamp}",
                contact_id=pk,
                payload=payload,
            )
            for pk in outcome.added
        ]
        + [
            EventRow(
                type=EventType.TAG_REMOVED,
                occurred_at=now,
                key=f"tag-rule:{rule.pk}:{pk}:removed:{stamp}",
                contact_id=pk,
                payload=payload,
            )
            for pk in outcome.removed
        ]
    )
    if contact_id is None:
        rule.evaluated_at = now
        rule.save(update_fields=["evaluated_at"])
    changed = outcome.added + outcome.removed
    if changed and rule.tag.wecom_tag_id:
        # WeCom follows once this commits, a batch per task, under the shared rate limiter.
        from contacts.loyalty_tasks import tag_push_to_wecom

        for start in range(0, len(changed), WECOM_PUSH_BATCH):
            batch = changed[start : start + WECOM_PUSH_BATCH]
            transaction.on_commit(lambda b=batch: tag_push_to_wecom.delay(rule.tag_id, b))
    return outcome


def tag_rules_apply_to_contact(contact: Contact, *, now: datetime) -> RuleOutcome:
    """Every active rule checked for one contact (after a new event of theirs)."""
    total = RuleOutcome()
    for rule in TagRule.objects.filter(is_active=True).order_by("pk"):
        outcome = tag_rule_apply(rule, now=now, contact_id=contact.pk)
        total.added += outcome.added
        total.removed += outcome.removed
    return total
