"""Contacts out to CSV (UTF-8 with BOM, so Excel shows Chinese) or XLSX, a chunk at a time.

The table writer here is shared with the orders export (campaigns/imports.py). A contact
export covers what the login may see: an operator's file holds only their own customers.
"""

import csv
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from django.db.models import QuerySet, TextChoices
from django.http import QueryDict
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from contacts.imports import (
    CONTACT_COLUMNS,
    CONTACT_EXPORT_ONLY_COLUMNS,
    GENDER_TEXT,
    REMARK_COLUMNS,
    media_path,
)
from contacts.lifecycle import order_totals
from contacts.models import Contact, ContactNote, ContactTag
from contacts.selectors import active_follows, contacts_visible_to
from scrm.jobs import Progress, job_create, job_queue, no_progress
from scrm.models import Job

# Contacts per query: each chunk is one query for the contacts, one each for tags, remarks
# and staff, and one for order totals, so 100,000 contacts take about 250 queries.
EXPORT_CHUNK = 2_000

CONTACT_EXPORT_COLUMNS = CONTACT_COLUMNS + CONTACT_EXPORT_ONLY_COLUMNS


class ExportFormat(TextChoices):
    CSV = "csv", _("CSV (Excel, UTF-8)")
    XLSX = "xlsx", _("Excel workbook (XLSX)")


class ExportError(ValueError):
    """Input we refuse; `field` names it."""

    def __init__(self, message: str, *, field: str):
        super().__init__(message)
        self.field = field


# Text a spreadsheet would run as a formula: = + - @ at the start (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class TableWriter:
    """Rows into a CSV (with BOM) or a streamed XLSX sheet; text never becomes a formula."""

    def __init__(self, path: Path, fmt: str, *, sheet_title: str):
        self.path, self.fmt = path, fmt
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == ExportFormat.CSV:
            self._file = open(path, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115
            self._csv = csv.writer(self._file)
        else:
            import openpyxl
            from openpyxl.cell import WriteOnlyCell
            from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

            self._cell, self._illegal = WriteOnlyCell, ILLEGAL_CHARACTERS_RE
            self._book = openpyxl.Workbook(write_only=True)
            self._sheet = self._book.create_sheet(title=sheet_title[:31])

    def writerow(self, values: Iterable) -> None:
        if self.fmt == ExportFormat.CSV:
            self._csv.writerow(
                f"'{v}" if isinstance(v, str) and v.startswith(_FORMULA_START) else v
                for v in values
            )
            return
        row = []
        for value in values:
            if isinstance(value, str):
                value = self._illegal.sub("", value)
                if value.startswith("="):
                    # Kept as text: openpyxl would otherwise write it as a formula.
                    cell = self._cell(self._sheet, value=value)
                    cell.data_type = "s"
                    value = cell
            row.append(value)
        self._sheet.append(row)

    def close(self) -> None:
        if self.fmt == ExportFormat.CSV:
            self._file.close()
        else:
            self._book.save(self.path)

    def __enter__(self) -> "TableWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def fen_as_yuan(fen: int | None) -> Decimal | None:
    return None if fen is None else (Decimal(fen) / 100).quantize(Decimal("0.01"))


def local_text(moment: datetime | None) -> str:
    """YYYY-MM-DD HH:MM:SS in Shanghai time, the form the imports read back."""
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def export_file(job: Job, *, stem: str) -> str:
    """Where a job's export goes, relative to MEDIA_ROOT: exports/<job id>/<stem>-<time>.<fmt>."""
    fmt = job.params["fmt"]
    return f"exports/{job.pk}/{stem}-{timezone.localtime():%Y%m%d-%H%M%S}.{fmt}"


def export_format_clean(fmt: str | None) -> str:
    fmt = (fmt or ExportFormat.CSV).lower()
    if fmt not in ExportFormat.values:
        raise ExportError(
            str(_("Choose one of: %(formats)s.")) % {"formats": ", ".join(ExportFormat.values)},
            field="format",
        )
    return fmt


# --- contacts --------------------------------------------------------------------------------

# Which contacts to export: all the login may see (None), a list of contact ids, or a
# callable producing a queryset (e.g. the contact list's filtered set).
ContactSelection = Callable[[], QuerySet[Contact]] | Iterable[int] | None


# What a row reads from the contact itself; tags, remarks and staff come in one query each
# per chunk. Plain values rather than model instances: several times faster at 100,000.
_CONTACT_VALUES = (
    "pk",
    "external_userid",
    "name",
    "gender",
    "tier__name",
    "stage",
    "referrer__external_userid",
    "opted_out",
    "source_channel__name",
    "points_balance",
    "first_added_at",
    "last_active_at",
)


def _grouped(rows: Iterable[tuple]) -> dict[int, list[tuple]]:
    """(contact id, *rest) rows → {contact id: [rest, ...]}, in the rows' order."""
    grouped: dict[int, list[tuple]] = {}
    for contact_id, *rest in rows:
        grouped.setdefault(contact_id, []).append(tuple(rest))
    return grouped


def _chunk_rows(contacts: list[dict]) -> Iterator[list]:
    """The export rows of one chunk of contacts: four queries, whatever the chunk's size."""
    ids = [c["pk"] for c in contacts]
    tags = _grouped(
        ContactTag.objects.filter(contact_id__in=ids)
        .order_by("contact_id", "tag__group__order", "tag__group__name", "tag__order", "tag__name")
        .values_list("contact_id", "tag__group__name", "tag__name")
    )
    notes = _grouped(
        ContactNote.objects.filter(contact_id__in=ids)
        .order_by("contact_id", "-created_at", "-pk")
        .values_list("contact_id", "kind", "text")
    )
    follows = _grouped(
        active_follows()
        .filter(contact_id__in=ids)
        .order_by("contact_id", "added_at", "pk")
        .values_list("contact_id", "staff__userid", "staff__name")
    )
    # Orders and spend as the contact list counts them: paid orders net of refunds.
    totals = {
        row["contact_id"]: (row["orders"], row["spend_fen"])
        for row in order_totals().filter(contact_id__in=ids)
    }
    stages = dict(Contact.Stage.choices)
    for c in contacts:
        pk = c["pk"]
        by_kind: dict[str, list[str]] = {}
        for kind, text in notes.get(pk, ()):
            by_kind.setdefault(kind, []).append(text)
        staff = follows.get(pk, ())
        orders, spend_fen = totals.get(pk, (0, 0))
        yield [
            c["external_userid"],
            c["name"],
            GENDER_TEXT.get(c["gender"], ""),
            c["tier__name"] or "",
            str(stages.get(c["stage"], c["stage"])),
            ", ".join(f"{group}:{name}" for group, name in tags.get(pk, ())),
            *("\n".join(by_kind.get(kind, [])) for kind in REMARK_COLUMNS.values()),
            c["referrer__external_userid"] or "",
            "是" if c["opted_out"] else "否",
            ", ".join(userid for userid, _name in staff),
            ", ".join(name for _userid, name in staff),
            c["source_channel__name"] or "",
            c["points_balance"],
            orders,
            fen_as_yuan(spend_fen),
            local_text(c["first_added_at"]),
            local_text(c["last_active_at"]),
        ]


def contact_chunks(*, user, contacts: ContactSelection = None) -> tuple[int, Iterator[list]]:
    """(how many, an iterator of lists of export rows), in contact id order."""
    visible = contacts_visible_to(user)
    if contacts is None or callable(contacts):
        if callable(contacts):
            visible = visible.filter(pk__in=contacts().order_by().values("pk"))
        values = visible.values(*_CONTACT_VALUES)

        def by_key() -> Iterator[list]:
            # Keyset pages: each query starts after the last id, so late pages stay fast.
            last = 0
            while batch := list(values.filter(pk__gt=last).order_by("pk")[:EXPORT_CHUNK]):
                last = batch[-1]["pk"]
                yield list(_chunk_rows(batch))

        return visible.count(), by_key()
    ids = sorted({int(pk) for pk in contacts})
    values = visible.values(*_CONTACT_VALUES)

    def by_ids() -> Iterator[list]:
        for start in range(0, len(ids), EXPORT_CHUNK):
            chunk = ids[start : start + EXPORT_CHUNK]
            if batch := list(values.filter(pk__in=chunk).order_by("pk")):
                yield list(_chunk_rows(batch))

    return visible.filter(pk__in=ids).count(), by_ids()


def contacts_export(
    *,
    user,
    path: Path,
    fmt: str,
    contacts: ContactSelection = None,
    progress: Progress = no_progress,
) -> int:
    """Write the contacts the login may see (of the selection) to `path`; returns rows."""
    total, batches = contact_chunks(user=user, contacts=contacts)
    progress(0, total, phase="exporting")
    done = 0
    with TableWriter(path, fmt, sheet_title=str(_("Customers"))) as table:
        table.writerow(CONTACT_EXPORT_COLUMNS)
        for batch in batches:
            for row in batch:
                table.writerow(row)
            done += len(batch)
            progress(done, max(total, done), phase="exporting")
    return done


def _selection_from_params(params: dict, *, user) -> ContactSelection:
    if params.get("contact_ids") is not None:
        return params["contact_ids"]
    if params.get("query"):
        from contacts.filters import contact_filters_parse
        from contacts.selectors import contacts_filtered

        query = QueryDict(mutable=True)
        for name, values in params["query"].items():
            query.setlist(name, values if isinstance(values, list) else [values])
        filters = contact_filters_parse(query, strict=False)
        return lambda: contacts_filtered(user=user, filters=filters)
    return None


def contacts_export_job(job: Job, *, progress: Progress = no_progress) -> dict:
    """Run a contacts_export job's work; returns what the job produced."""
    relative = export_file(job, stem="contacts")
    with translation.override(job.params.get("language")):
        rows = contacts_export(
            user=job.created_by,
            path=media_path(relative),
            fmt=job.params["fmt"],
            contacts=_selection_from_params(job.params, user=job.created_by),
            progress=progress,
        )
    return {"rows": rows, "file": relative}


def contacts_export_start(
    *,
    user,
    contact_ids: Iterable[int] | None = None,
    fmt: str = ExportFormat.CSV,
    query: dict | None = None,
) -> Job:
    """Queue an export of the contacts this login may see: all of them, these ids, or those
    matching the contact list's query parameters (`query`, as the list page got them).
    Returns the Job to follow at reverse("io:job", args=[job.pk])."""
    params = {"fmt": export_format_clean(fmt), "language": translation.get_language()}
    if contact_ids is not None:
        try:
            params["contact_ids"] = sorted({int(pk) for pk in contact_ids})
        except (TypeError, ValueError):
            raise ExportError(
                str(_("Contact ids are whole numbers.")), field="contact_ids"
            ) from None
    elif query:
        # A QueryDict keeps every value of a repeated parameter (tags=1&tags=2).
        pairs = query.lists() if hasattr(query, "lists") else query.items()
        params["query"] = {
            name: (list(values) if isinstance(values, list | tuple) else [values])
            for name, values in pairs
            if name not in ("page", "csrfmiddlewaretoken")
        }
    from contacts.io_tasks import contacts_export_run

    job = job_create(kind="contacts_export", user=user, params=params)
    job_queue(job, contacts_export_run)
    return job
