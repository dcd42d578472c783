"""Member tiers (会员等级): which tier a contact's paid orders reach, and moving them there."""

from datetime import datetime

from django.db import connection, transaction
from django.db.models import BigIntegerField, Case, F, Q, Value, When
from django.db.models.functions import Coalesce

from analytics.events import EventRow, record, record_many
from analytics.models import EventType
from contacts.lifecycle import orders_q, use_batch_memory
from contacts.models import Contact, MemberTier


def _reached(tier: MemberTier, *, contact_id: int | None) -> Q | None:
    """Contacts meeting every non-zero threshold of the tier; None when it has none."""
    thresholds = [
        (aggregate, ">=", minimum)
        for aggregate, minimum in (
            ("orders", tier.min_orders),
            ("biggest_fen", tier.min_order_fen),
            ("spend_fen", tier.min_spend_fen),
        )
        if minimum
    ]
    if not thresholds:
        return None  # reached on joining
    return orders_q(thresholds, contact_id=contact_id)


def _tier_id(pk: int | None) -> Value:
    return Value(pk, output_field=BigIntegerField())


def tier_expression(*, contact_id: int | None = None) -> Case | Value:
    """The id of the highest tier each contact reaches, as one SQL expression over contacts.

    NULL when no tier is reached (no tiers, or none without thresholds and no orders).
    """
    whens = []
    default = None
    for tier in MemberTier.objects.order_by("-level"):
        condition = _reached(tier, contact_id=contact_id)
        if condition is None:
            # Everyone reaches it, so no lower tier can ever win.
            default = tier.pk
            break
        whens.append(When(condition, then=_tier_id(tier.pk)))
    if not whens:
        return _tier_id(default)
    return Case(*whens, default=_tier_id(default))


def tier_for(contact: Contact) -> MemberTier | None:
    """The highest tier whose non-zero thresholds (orders, one order of at least, total
    spend) the contact's paid orders all meet; a tier without thresholds is reached on joining.
    """
    tier_id = (
        Contact.objects.filter(pk=contact.pk)
        .annotate(target=tier_expression(contact_id=contact.pk))
        .values_list("target", flat=True)
        .get()
    )
    return MemberTier.objects.filter(pk=tier_id).first() if tier_id else None


def _tier_payload(before: MemberTier | None, after: MemberTier | None) -> dict:
    return {
        "from": before.name if before else None,
        "to": after.name if after else None,
        "from_level": before.level if before else None,
        "to_level": after.level if after else None,
    }


@transaction.atomic
def tier_update(contact: Contact, *, occurred_at: datetime, key: str) -> bool:
    """Move the contact to the tier their orders reach, up or down (a refund can take a tier
    away); records TIER_CHANGED with from/to. `key` names the prompting fact (e.g. the order),
    so a retry records nothing twice. True if the tier changed.
    """
    locked = (
        Contact.objects.select_for_update(of=("self",)).select_related("tier").get(pk=contact.pk)
    )
    target = tier_for(locked)
    before = locked.tier
    if (target.pk if target else None) == locked.tier_id:
        return False
    locked.tier = target
    locked.save(update_fields=["tier", "updated_at"])
    contact.tier = target
    record(
        type=EventType.TIER_CHANGED,
        occurred_at=occurred_at,
        key=f"{key}:tier:{contact.pk}",
        contact=contact.pk,
        payload=_tier_payload(before, target),
    )
    return True


_SET_TIER_SQL = f"""
    UPDATE {Contact._meta.db_table} SET tier_id = %s, updated_at = now()
    WHERE id = ANY(%s) AND tier_id IS NOT DISTINCT FROM %s RETURNING id
"""


@transaction.atomic
def tiers_refresh(*, occurred_at: datetime, key: str) -> int:
    """Every contact's tier, set-based (after thresholds change, or to catch up); returns
    how many moved. Only contacts whose tier differs are written and get an event.
    """
    use_batch_memory()
    tiers = {tier.pk: tier for tier in MemberTier.objects.all()}
    rows = (
        Contact.objects.annotate(target=tier_expression())
        .exclude(tier_id=Coalesce(F("target"), _tier_id(-1)))
        .exclude(tier_id__isnull=True, target__isnull=True)
        .values_list("pk", "tier_id", "target")
    )
    moves: dict[tuple[int | None, int | None], list[int]] = {}
    for pk, before, after in rows.iterator(chunk_size=10_000):
        moves.setdefault((before, after), []).append(pk)
    events = []
    with connection.cursor() as cursor:
        for (before, after), ids in moves.items():
            # Compare-and-set: a contact moved meanwhile by tier_update is left alone.
            cursor.execute(_SET_TIER_SQL, [after, ids, before])
            payload = _tier_payload(tiers.get(before), tiers.get(after))
            events.extend(
                EventRow(
                    type=EventType.TIER_CHANGED,
                    occurred_at=occurred_at,
                    key=f"{key}:tier:{pk}",
                    contact_id=pk,
                    payload=payload,
                )
                for (pk,) in cursor.fetchall()
            )
    record_many(events)
    return len(events)
