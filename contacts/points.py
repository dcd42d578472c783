"""The points ledger (积分) and points mall (积分商城): earn, spend and redeem, exactly once."""

from datetime import datetime, time
from zoneinfo import ZoneInfo

from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.utils import timezone

from analytics.events import record
from analytics.models import EventType
from contacts.models import Contact, MallItem, PointsEntry, PointsRule, Redemption

SHANGHAI = ZoneInfo("Asia/Shanghai")
Reason = PointsEntry.Reason


class PointsError(ValueError):
    """A points change that cannot be made; the message says why, for the operator."""

    code = "points_error"


class NotEnoughPoints(PointsError):
    code = "not_enough_points"


class OutOfStock(PointsError):
    code = "out_of_stock"


class NotOnSale(PointsError):
    code = "not_on_sale"


# One statement: it moves the balance only if it stays >= 0 (the CHECK constraint is the
# last line of defence), locks the row until commit, and tells us the new balance.
_MOVE_BALANCE_SQL = f"""
    UPDATE {Contact._meta.db_table}
    SET points_balance = points_balance + %(delta)s, updated_at = now()
    WHERE id = %(contact)s AND points_balance + %(delta)s >= 0
    RETURNING points_balance
"""
_TAKE_STOCK_SQL = f"""
    UPDATE {MallItem._meta.db_table} SET stock = stock - 1
    WHERE id = %s AND is_active AND stock > 0 RETURNING stock
"""


def _entry_for(key: str) -> PointsEntry | None:
    return PointsEntry.objects.filter(idempotency_key=key).first()


def _change(
    contact: Contact | int,
    *,
    delta: int,
    reason: str,
    key: str,
    occurred_at: datetime,
    note: str = "",
    by_user=None,
) -> tuple[PointsEntry, bool]:
    """One ledger line, the balance moved with it and a POINTS_CHANGED event, atomically;
    returns (entry, created).

    A key seen before returns the entry it made; a change that would take the balance below
    zero raises NotEnoughPoints and changes nothing.
    """
    contact_id = contact.pk if isinstance(contact, Contact) else contact
    if existing := _entry_for(key):
        return existing, False
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(_MOVE_BALANCE_SQL, {"delta": delta, "contact": contact_id})
                row = cursor.fetchone()
            if row is None:
                balance = (
                    Contact.objects.filter(pk=contact_id)
                    .values_list("points_balance", flat=True)
                    .first()
                )
                if balance is None:
                    raise PointsError(f"contact {contact_id} does not exist")
                raise NotEnoughPoints(
                    f"not enough points: the balance is {balance}, {-delta} needed"
                )
            entry = PointsEntry.objects.create(
                contact_id=contact_id,
                delta=delta,
                balance_after=row[0],
                reason=reason,
                note=note[:200],
                idempotency_key=key,
                created_at=occurred_at,
            )
            payload = {"reason": reason, "balance_after": row[0], "entry": entry.pk}
            if by_user is not None:
                payload["by_user"] = by_user.pk
            record(
                type=EventType.POINTS_CHANGED,
                occurred_at=occurred_at,
                key=f"points:{key}",
                contact=contact_id,
                amount=delta,
                payload=payload,
            )
    except IntegrityError:
        # A concurrent call with the same key won; ours rolled back, theirs stands.
        if existing := _entry_for(key):
            return existing, False
        raise
    if isinstance(contact, Contact):
        contact.points_balance = entry.balance_after
    return entry, True


def shanghai_day_bounds(moment: datetime) -> tuple[datetime, datetime]:
    day = timezone.localtime(moment, SHANGHAI).date()
    start = datetime.combine(day, time.min, SHANGHAI)
    return start, datetime.combine(day, time.max, SHANGHAI)


def points_earn(
    contact: Contact,
    *,
    reason: str,
    key: str,
    occurred_at: datetime,
    note: str = "",
) -> PointsEntry | None:
    """Earn what the active PointsRule for `reason` gives, within its daily cap per contact
    per Shanghai day (a partial award fills the cap). None when nothing is earned: no active
    rule, or the cap is reached. The same key earns once, however often a job retries.
    """
    if existing := _entry_for(key):
        return existing
    rule = PointsRule.objects.filter(reason=reason, is_active=True).first()
    if rule is None or rule.points == 0:
        return None
    with transaction.atomic():
        # Serialises this contact's earnings so two at once cannot both fit under the cap.
        Contact.objects.select_for_update().filter(pk=contact.pk).values_list("pk").first()
        points = rule.points
        if rule.daily_cap:
            start, end = shanghai_day_bounds(occurred_at)
            earned = (
                PointsEntry.objects.filter(
                    contact=contact, reason=reason, delta__gt=0, created_at__range=(start, end)
                ).aggregate(total=Sum("delta"))["total"]
                or 0
            )
            points = min(points, rule.daily_cap - earned)
            if points <= 0:
                return None
        entry, _ = _change(
            contact, delta=points, reason=reason, key=key, occurred_at=occurred_at, note=note
        )
        return entry


def points_spend(
    contact: Contact,
    *,
    points: int,
    key: str,
    occurred_at: datetime,
    reason: str = Reason.REDEEM,
    note: str = "",
) -> PointsEntry:
    """Spend points; raises NotEnoughPoints (changing nothing) if the balance is short."""
    if points <= 0:
        raise PointsError("points to spend must be a positive number")
    entry, _ = _change(
        contact, delta=-points, reason=reason, key=key, occurred_at=occurred_at, note=note
    )
    return entry


def points_award(
    contact: Contact, *, points: int, key: str, occurred_at: datetime, note: str = ""
) -> PointsEntry:
    """Credit a campaign reward; the same key credits once."""
    if points <= 0:
        raise PointsError("points to award must be a positive number")
    entry, _ = _change(
        contact, delta=points, reason=Reason.REWARD, key=key, occurred_at=occurred_at, note=note
    )
    return entry


def points_adjust(
    contact: Contact,
    *,
    delta: int,
    key: str,
    occurred_at: datetime,
    note: str = "",
    by_user=None,
) -> PointsEntry:
    """A manual correction by a manager, up or down (never below zero)."""
    if delta == 0:
        raise PointsError("an adjustment must change the balance")
    entry, _ = _change(
        contact,
        delta=delta,
        reason=Reason.ADJUST,
        key=key,
        occurred_at=occurred_at,
        note=note,
        by_user=by_user,
    )
    return entry


def _redemption_for(entry: PointsEntry, key: str) -> Redemption:
    redemption = Redemption.objects.filter(entry=entry).first()
    if redemption is None:
        raise PointsError(f"the key {key} was already used for another points change")
    return redemption


def mall_redeem(
    contact: Contact, item: MallItem, *, key: str, occurred_at: datetime | None = None
) -> Redemption:
    """Exchange points for one unit of a mall item: points and stock move together or not at
    all. Raises NotEnoughPoints, OutOfStock or NotOnSale. The same key redeems once.
    """
    occurred_at = occurred_at or timezone.now()
    if existing := _entry_for(key):
        return _redemption_for(existing, key)
    with transaction.atomic():
        # By id: the instance's balance is set only once the whole exchange has committed.
        entry, created = _change(
            contact.pk,
            delta=-item.points_cost,
            reason=Reason.REDEEM,
            key=key,
            occurred_at=occurred_at,
            note=item.name,
        )
        if not created:
            return _redemption_for(entry, key)  # a concurrent call with this key won
        # The contact's row is locked by now, so one contact's redemptions queue here while
        # different contacts only meet at the item's row.
        with connection.cursor() as cursor:
            cursor.execute(_TAKE_STOCK_SQL, [item.pk])
            taken = cursor.fetchone()
        if taken is None:
            current = MallItem.objects.filter(pk=item.pk).values("is_active", "stock").first()
            if current is None or not current["is_active"]:
                raise NotOnSale(f"{item.name} is not on sale")
            raise OutOfStock(f"{item.name} is out of stock")
        redemption = Redemption.objects.create(
            contact_id=contact.pk, item=item, points=item.points_cost, entry=entry
        )
    item.stock = taken[0]
    contact.points_balance = entry.balance_after
    return redemption
