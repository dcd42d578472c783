"""Orders in and out of CSV / XLSX files: the import (all rows or none) and the export.

The import is checked whole, written in one transaction and matched by order_no. It lives
in campaigns because orders do; the file reading, the problems and the table writer are
the contacts import's and export's (contacts/imports.py, contacts/exports.py).
"""

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.db import transaction
from django.utils import timezone, translation

from analytics.events import EventRow, record_many
from analytics.models import EventType
from campaigns.models import Campaign, Order
from campaigns.tasks import orders_settle_after_commit
from contacts.exports import (
    TableWriter,
    export_file,
    export_format_clean,
    fen_as_yuan,
    local_text,
)
from contacts.imports import (
    BOOLEAN_WORDS,
    PROGRESS_EVERY,
    ImportRejected,
    RowChecker,
    RowError,
    Sheet,
    chunks,
    import_start,
    media_path,
    sheet_read,
)
from contacts.models import ChannelCode, Contact
from contacts.selectors import contacts_visible_to
from groups.models import Group
from scrm.jobs import Progress, job_create, job_queue, no_progress
from scrm.models import Job

ORDER_COLUMNS = (
    "order_no",
    "external_userid",
    "amount",
    "ordered_at",
    "status",
    "group_chat_id",
    "channel_state",
    "campaign_id",
    "referrer",
    "items",
    "used_coupon",
)
REQUIRED_ORDER_COLUMNS = ("order_no", "external_userid", "amount", "ordered_at")
ORDER_EXPORT_ONLY_COLUMNS = ("customer_name", "group_name", "campaign_name")
ORDER_EXPORT_COLUMNS = (
    "order_no",
    "external_userid",
    "customer_name",
    "amount",
    "ordered_at",
    "status",
    "group_chat_id",
    "group_name",
    "channel_state",
    "campaign_id",
    "campaign_name",
    "referrer",
    "items",
    "used_coupon",
)
# A few contacts are refreshed one by one (tier, stage, rule tags); more than this and the
# periodic refreshes are asked to run over everyone at once.
REFRESH_ONE_BY_ONE_MAX = 200

MAX_AMOUNT_YUAN = Decimal(10) ** 12  # far above any order; keeps fen inside bigint

STATUS_WORDS = {
    "paid": Order.Status.PAID,
    "已支付": Order.Status.PAID,
    "支付": Order.Status.PAID,
    "已付款": Order.Status.PAID,
    "refunded": Order.Status.REFUNDED,
    "已退款": Order.Status.REFUNDED,
    "退款": Order.Status.REFUNDED,
}
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")
_ITEM_SPLIT = re.compile(r"[;；\n]")
# "奶茶 ×2", "奶茶 x2", "奶茶*2": a name and a quantity.
_ITEM_QUANTITY = re.compile(r"^(?P<name>.*?)\s*[×xX*]\s*(?P<quantity>\d{1,6})$")


def amount_to_fen(text: str) -> tuple[int | None, str | None]:
    """Yuan with at most two decimals → exact fen; (fen, None) or (None, problem code)."""
    cleaned = text.strip().lstrip("¥￥").replace(",", "").strip()
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        return None, "bad_amount"
    if not amount.is_finite():
        return None, "bad_amount"
    if amount < 0:
        return None, "negative_amount"
    if amount > MAX_AMOUNT_YUAN:
        return None, "bad_amount"
    if amount != amount.quantize(Decimal("0.01")):
        return None, "too_many_decimals"
    return int(amount * 100), None


def shanghai_time(text: str) -> datetime | None:
    """YYYY-MM-DD HH:MM[:SS] (also with / between the date's parts), Shanghai time."""
    text = " ".join(text.replace("/", "-").replace("T", " ").split())
    for pattern in _TIME_FORMATS:
        try:
            naive = datetime.strptime(text, pattern)
        except ValueError:
            continue
        return timezone.make_aware(naive, timezone.get_default_timezone())
    return None


def items_parse(text: str) -> list[dict]:
    items = []
    for part in _ITEM_SPLIT.split(text):
        if not (part := part.strip()):
            continue
        match = _ITEM_QUANTITY.match(part)
        if match and match["name"]:
            items.append({"name": match["name"], "quantity": int(match["quantity"])})
        else:
            items.append({"name": part, "quantity": 1})
    return items


def items_text(items) -> str:
    parts = []
    for item in items or []:
        if isinstance(item, dict):
            quantity = item.get("quantity") or 1
            name = str(item.get("name", ""))
            parts.append(name if quantity == 1 else f"{name} ×{quantity}")
        else:
            parts.append(str(item))
    return "; ".join(parts)


@dataclass(slots=True)
class OrderRow:
    row: int
    order_no: str
    contact_id: int
    amount_fen: int
    ordered_at: datetime
    status: str
    group_id: int | None = None
    channel_id: int | None = None
    campaign_id: int | None = None
    referrer_id: int | None = None
    items: list = field(default_factory=list)
    used_coupon: bool = False
    refund_of: int | None = None  # an existing paid order this row marks refunded


@dataclass
class OrdersImported:
    rows: int = 0
    created: int = 0
    refunded: int = 0
    unchanged: int = 0
    ignored_columns: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _lookup(model_qs, column: str, values: set[str]) -> dict:
    found = {}
    for chunk in chunks(sorted(values)):
        rows = model_qs.filter(**{f"{column}__in": chunk}).values_list(column, "pk")
        found.update(rows)
    return found


def orders_check(
    sheet: Sheet, *, user, progress: Progress = no_progress
) -> tuple[list[OrderRow], list[RowError]]:
    """Every row checked against the file and the database; nothing is written."""
    check = RowChecker()
    total = len(sheet.rows)

    def column_values(name: str) -> set[str]:
        return {cells.get(name, "") for _number, cells in sheet.rows} - {""}

    buyers = {}
    for chunk in chunks(sorted(column_values("external_userid"))):
        buyers.update(
            (eid, (pk, channel))
            for eid, pk, channel in contacts_visible_to(user)
            .filter(external_userid__in=chunk)
            .values_list("external_userid", "pk", "source_channel_id")
        )
    referrers = _lookup(Contact.objects, "external_userid", column_values("referrer"))
    groups = _lookup(Group.objects, "chat_id", column_values("group_chat_id"))
    channels = _lookup(ChannelCode.objects, "state", column_values("channel_state"))
    campaign_ids = {int(v) for v in column_values("campaign_id") if v.isdigit()}
    campaigns = set(Campaign.objects.filter(pk__in=campaign_ids).values_list("pk", flat=True))
    existing = {}
    for chunk in chunks(sorted(column_values("order_no"))):
        existing.update(
            (o.order_no, o)
            for o in Order.objects.filter(order_no__in=chunk).only(
                "pk", "order_no", "contact_id", "amount_fen", "ordered_at", "status"
            )
        )

    first_row: dict[str, int] = {}
    good: list[OrderRow] = []
    for index, (number, cells) in enumerate(sheet.rows, 1):
        if index % PROGRESS_EVERY == 0:
            progress(index, 2 * total, phase="checking")
        errors_before = len(check.errors)

        order_no = cells.get("order_no", "")
        if not order_no:
            check.add(number, "order_no", "required")
        elif check.text(number, "order_no", order_no, limit=64) is None:
            pass
        elif order_no in first_row:
            check.add(
                number,
                "order_no",
                "duplicate_in_file",
                value=order_no,
                other_row=first_row[order_no],
            )
        else:
            first_row[order_no] = number

        buyer = cells.get("external_userid", "")
        contact_id = channel_id = None
        if not buyer:
            check.add(number, "external_userid", "required")
        elif buyer not in buyers:
            check.add(number, "external_userid", "unknown_contact", value=buyer)
        else:
            contact_id, channel_id = buyers[buyer]

        fen = None
        if not (amount := cells.get("amount", "")):
            check.add(number, "amount", "required")
        else:
            fen, problem = amount_to_fen(amount)
            if problem:
                check.add(number, "amount", problem, value=amount)

        ordered_at = None
        if not (when := cells.get("ordered_at", "")):
            check.add(number, "ordered_at", "required")
        elif (ordered_at := shanghai_time(when)) is None:
            check.add(number, "ordered_at", "bad_datetime", value=when)

        status = Order.Status.PAID
        if word := cells.get("status"):
            status = STATUS_WORDS.get(word.lower())
            if status is None:
                check.add(number, "status", "unknown_status", value=word)

        references = {}
        if chat_id := cells.get("group_chat_id"):
            if chat_id not in groups:
                check.add(number, "group_chat_id", "unknown_group", value=chat_id)
            references["group_id"] = groups.get(chat_id)
        if state := cells.get("channel_state"):
            if state not in channels:
                check.add(number, "channel_state", "unknown_channel", value=state)
            channel_id = channels.get(state)
        if campaign := cells.get("campaign_id"):
            if not campaign.isdigit() or int(campaign) not in campaigns:
                check.add(number, "campaign_id", "unknown_campaign", value=campaign)
            else:
                references["campaign_id"] = int(campaign)
        if referrer := cells.get("referrer"):
            if referrer not in referrers:
                check.add(number, "referrer", "unknown_referrer", value=referrer)
            references["referrer_id"] = referrers.get(referrer)
        used_coupon = False
        if coupon := cells.get("used_coupon"):
            if coupon.lower() not in BOOLEAN_WORDS:
                check.add(number, "used_coupon", "bad_boolean", value=coupon)
            used_coupon = BOOLEAN_WORDS.get(coupon.lower(), False)

        refund_of = None
        if len(check.errors) == errors_before and (stored := existing.get(order_no)):
            # The same order again is fine (nothing to do), and so is its refund; any other
            # difference means two different orders share a number.
            same = (stored.contact_id, stored.amount_fen, stored.ordered_at) == (
                contact_id,
                fen,
                ordered_at,
            )
            if not same:
                check.add(number, "order_no", "order_differs", value=order_no)
            elif stored.status == Order.Status.REFUNDED and status == Order.Status.PAID:
                check.add(number, "status", "order_refunded", value=order_no)
            elif stored.status == status:
                continue
            else:
                refund_of = stored.pk

        if len(check.errors) == errors_before:
            good.append(
                OrderRow(
                    number,
                    order_no,
                    contact_id,
                    fen,
                    ordered_at,
                    status,
                    channel_id=channel_id,
                    items=items_parse(cells.get("items", "")),
                    used_coupon=used_coupon,
                    refund_of=refund_of,
                    **references,
                )
            )
    progress(total, 2 * total, phase="checking")
    return good, check.errors


def _order_event(row: OrderRow, kind: EventType, *, at: datetime) -> EventRow:
    payload = {"order_no": row.order_no, "via": "import"}
    if row.referrer_id:
        payload["referrer_contact_id"] = row.referrer_id
    suffix = "paid" if kind == EventType.ORDER_PAID else "refunded"
    return EventRow(
        kind,
        at,
        f"order:{row.order_no}:{suffix}",
        contact_id=row.contact_id,
        group_id=row.group_id,
        channel_id=row.channel_id,
        campaign_id=row.campaign_id,
        amount=row.amount_fen,
        payload=payload,
    )


def _contacts_refresh_after_commit(contact_ids: set[int]) -> None:
    """Tiers, stages and rule tags follow the new orders once they are committed."""
    from contacts import loyalty_tasks

    if len(contact_ids) <= REFRESH_ONE_BY_ONE_MAX:
        for contact_id in sorted(contact_ids):
            loyalty_tasks.contact_refresh_soon(contact_id)
        return

    def everyone() -> None:
        loyalty_tasks.tiers_refresh_all.delay()
        loyalty_tasks.stages_refresh_all.delay()
        loyalty_tasks.tag_rules_evaluate.delay()

    transaction.on_commit(everyone)


def orders_write(rows: list[OrderRow], *, progress: Progress = no_progress) -> OrdersImported:
    """Write checked rows in one transaction: new orders with ORDER_PAID (and ORDER_REFUNDED
    for refunded ones), refunds of stored orders with ORDER_REFUNDED."""
    now = timezone.now()
    total = len(rows)
    new = [r for r in rows if r.refund_of is None]
    refunds = [r for r in rows if r.refund_of is not None]
    events = []
    with transaction.atomic():
        progress(total, 2 * total, phase="writing")
        created = []
        for done, chunk in enumerate(chunks(new, 2_000), 1):
            created += Order.objects.bulk_create(
                Order(
                    order_no=r.order_no,
                    contact_id=r.contact_id,
                    amount_fen=r.amount_fen,
                    items=r.items,
                    status=r.status,
                    used_coupon=r.used_coupon,
                    ordered_at=r.ordered_at,
                    group_id=r.group_id,
                    channel_id=r.channel_id,
                    campaign_id=r.campaign_id,
                    referrer_id=r.referrer_id,
                )
                for r in chunk
            )
            progress(total + min(done * 2_000, len(new)), phase="writing")
        for row in new:
            events.append(_order_event(row, EventType.ORDER_PAID, at=row.ordered_at))
            if row.status == Order.Status.REFUNDED:
                # When it was refunded is not in the file: at the order's own time, so it
                # never counts as a kept order.
                events.append(_order_event(row, EventType.ORDER_REFUNDED, at=row.ordered_at))
        if refunds:
            Order.objects.filter(pk__in=[r.refund_of for r in refunds]).update(
                status=Order.Status.REFUNDED
            )
            events.extend(_order_event(r, EventType.ORDER_REFUNDED, at=now) for r in refunds)
        record_many(events)
        _contacts_refresh_after_commit({r.contact_id for r in rows})
        # Gifts and commissions on the new paid orders, after the import commits.
        orders_settle_after_commit([o.pk for o in created if o.status == Order.Status.PAID])
        progress(2 * total, phase="writing")
    return OrdersImported(rows=total, created=len(new), refunded=len(refunds))


def orders_import(
    *, path: Path, name: str, user, progress: Progress = no_progress
) -> OrdersImported:
    """Read, check and write an orders file. Raises ImportFileError for a file that cannot
    be read and ImportRejected (with every problem) when any row is bad; then nothing is
    written. Orders already stored under the same number are left as they are."""
    progress(0, 0, phase="reading")
    sheet = sheet_read(
        path,
        name=name,
        required=REQUIRED_ORDER_COLUMNS,
        known=ORDER_COLUMNS,
        export_only=ORDER_EXPORT_ONLY_COLUMNS,
    )
    rows, errors = orders_check(sheet, user=user, progress=progress)
    if errors:
        raise ImportRejected(errors, rows=len(sheet.rows))
    outcome = orders_write(rows, progress=progress)
    outcome.unchanged = len(sheet.rows) - len(rows)
    outcome.ignored_columns = sheet.ignored_columns
    return outcome


# --- export ----------------------------------------------------------------------------------


def orders_visible_to(user):
    """The orders of the customers this login may see."""
    orders = Order.objects.all()
    if not (user.is_manager or user.is_read_only):
        orders = orders.filter(contact__in=contacts_visible_to(user).values("pk"))
    return orders


def _order_row(order: Order) -> list:
    return [
        order.order_no,
        order.contact.external_userid,
        order.contact.name,
        fen_as_yuan(order.amount_fen),
        local_text(order.ordered_at),
        order.status,
        order.group.chat_id if order.group else "",
        order.group.name if order.group else "",
        order.channel.state if order.channel else "",
        order.campaign_id or "",
        order.campaign.name if order.campaign else "",
        order.referrer.external_userid if order.referrer else "",
        items_text(order.items),
        "是" if order.used_coupon else "否",
    ]


def orders_export(*, user, path: Path, fmt: str, progress: Progress = no_progress) -> int:
    """Write the orders this login may see to `path`, oldest first; returns rows."""
    orders = orders_visible_to(user)
    total = orders.count()
    progress(0, total, phase="exporting")
    rows = (
        orders.select_related("contact", "group", "channel", "campaign", "referrer")
        .only(
            *(f.name for f in Order._meta.concrete_fields),
            "contact__external_userid",
            "contact__name",
            "group__chat_id",
            "group__name",
            "channel__state",
            "campaign__name",
            "referrer__external_userid",
        )
        .order_by("ordered_at", "pk")
    )
    done = 0
    with TableWriter(path, fmt, sheet_title="orders") as table:
        table.writerow(ORDER_EXPORT_COLUMNS)
        for order in rows.iterator(chunk_size=2_000):
            table.writerow(_order_row(order))
            done += 1
            if done % PROGRESS_EVERY == 0:
                progress(done, max(total, done), phase="exporting")
    progress(done, max(total, done), phase="exporting")
    return done


def orders_export_job(job: Job, *, progress: Progress = no_progress) -> dict:
    relative = export_file(job, stem="orders")
    with translation.override(job.params.get("language")):
        rows = orders_export(
            user=job.created_by,
            path=media_path(relative),
            fmt=job.params["fmt"],
            progress=progress,
        )
    return {"rows": rows, "file": relative}


def orders_export_start(*, user, fmt: str = "csv") -> Job:
    """Queue an export of the orders this login may see; returns the Job."""
    from contacts.io_tasks import orders_export_run

    params = {"fmt": export_format_clean(fmt), "language": translation.get_language()}
    job = job_create(kind="orders_export", user=user, params=params)
    job_queue(job, orders_export_run)
    return job


def orders_import_start(*, user, uploaded) -> Job:
    """Queue an import of an uploaded orders file (CSV or XLSX)."""
    from contacts.io_tasks import orders_import_run

    return import_start(kind="orders_import", user=user, uploaded=uploaded, task=orders_import_run)
