"""Contacts from CSV / XLSX files: read the whole file, report every bad row, then write.

Nothing is written while any row is bad; a good file is written in one transaction, so an
import lands whole or not at all. Importing the same file again changes nothing (contacts
are matched by external_userid). The file reading and the error report below are shared
with the orders import in campaigns/imports.py.
"""

import csv
import hashlib
import io
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import JSONField, Model
from django.utils import timezone, translation
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from analytics.events import EventRow, record_many
from analytics.models import EventType
from contacts.models import (
    Contact,
    ContactNote,
    ContactTag,
    Follow,
    MemberTier,
    Staff,
    Tag,
    TagGroup,
    TagSource,
)
from contacts.selectors import contacts_visible_to
from scrm.jobs import Progress, job_create, job_queue, no_progress
from scrm.models import Job

MAX_FILE_BYTES = 50 * 1024 * 1024
# Progress is written every this many rows: often enough for a moving bar, rarely enough
# to cost nothing next to the rows themselves.
PROGRESS_EVERY = 500
# Rows per database round trip when looking rows up or writing them.
DB_CHUNK = 5_000
# The job page and the API list at most this many problems; the downloadable error
# report always has every one.
MAX_ERRORS_KEPT = 5_000
NOTE_MAX_LENGTH = 2_000  # as contacts.remarks allows for a remark typed in the page
TAG_NAME_MAX = 30  # WeCom's limit for tag and tag group names


# --- problems, in the words the user reads ---------------------------------------------------

# Problems are kept as a code and parameters and put into words when shown, in the reader's
# language (the job page, the API, the error report each render them).
PROBLEMS = {
    "required": _("a value is required"),
    "too_long": _("“%(value)s” is longer than %(limit)s characters"),
    "duplicate_in_file": _("“%(value)s” also appears in row %(other_row)s"),
    "unknown_gender": _("unrecognised gender “%(value)s” (use 男, 女, 未知 or 0, 1, 2)"),
    "unknown_tier": _("no member tier named “%(value)s”"),
    "unknown_stage": _("unrecognised lifecycle stage “%(value)s”"),
    "bad_tag": _("“%(value)s” is not a tag; write group:tag or the name of an existing tag"),
    "unknown_tag": _("no tag named “%(value)s”; write group:tag to create it"),
    "ambiguous_tag": _(
        "“%(value)s” is a tag in several groups (%(groups)s); write it as group:tag"
    ),
    "unknown_referrer": _("no customer with external_userid “%(value)s” here or in this file"),
    "self_referrer": _("a customer cannot be their own referrer"),
    "bad_boolean": _("“%(value)s” is not yes or no (use 是 / 否 or true / false)"),
    "unknown_staff": _("no staff member with WeCom userid “%(value)s”"),
    "not_your_staff": _("you may only give customers to yourself (%(userid)s)"),
    "not_your_contact": _("this customer is followed by someone else; you may import only yours"),
    "unknown_contact": _("none of your customers has external_userid “%(value)s”"),
    "bad_amount": _("“%(value)s” is not an amount in yuan, such as 128 or 99.90"),
    "negative_amount": _("the amount “%(value)s” is negative"),
    "too_many_decimals": _("the amount “%(value)s” has more than two decimals"),
    "bad_datetime": _("“%(value)s” is not a time such as 2024-05-01 14:30 or 2024-05-01 14:30:00"),
    "unknown_status": _("unrecognised status “%(value)s” (use paid or refunded)"),
    "order_differs": _("order “%(value)s” already exists with another customer, amount or time"),
    "order_refunded": _("order “%(value)s” is already refunded and cannot be paid again"),
    "unknown_group": _("no group with chat_id “%(value)s”"),
    "unknown_channel": _("no channel code with state “%(value)s”"),
    "unknown_campaign": _("no campaign with id “%(value)s”"),
}
ROW_MESSAGE = _("Row %(row)s, “%(column)s”: %(problem)s")

FILE_PROBLEMS = {
    "unsupported_type": _("“%(name)s” is not a CSV or XLSX file"),
    "old_excel": _("“%(name)s” is an old Excel .xls file; save it as .xlsx or CSV and try again"),
    "too_large": _("the file is larger than %(limit)s MB"),
    "unreadable": _("the file could not be read as %(kind)s: %(reason)s"),
    "encoding": _("the CSV file is neither UTF-8 nor GBK text; save it as “CSV UTF-8”"),
    "empty": _("the file is empty"),
    "no_rows": _("the file has a header row but no rows below it"),
    "missing_columns": _("the header row lacks the required column(s): %(columns)s"),
    "duplicate_column": _("the header row has the column “%(column)s” twice"),
    "no_staff": _(
        "your login is not linked to a WeCom staff member, so imported customers could "
        "not be yours; ask a manager to link it"
    ),
    "no_user": _("the user who started this import no longer exists"),
    "missing_file": _("the uploaded file is gone; upload it again"),
}


def problem_text(code: str, params: dict) -> str:
    return str(PROBLEMS[code]) % params


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem in one cell: the row number as a spreadsheet shows it (header = 1)."""

    row: int
    column: str
    code: str
    params: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"row": self.row, "column": self.column, "code": self.code, "params": self.params}


def row_error_message(error: dict) -> str:
    """e.g. 第 5 行「gender」：无法识别的性别“M”, in the active language."""
    return str(ROW_MESSAGE) % {
        "row": error["row"],
        "column": error["column"],
        "problem": problem_text(error["code"], error["params"]),
    }


class ImportFileError(Exception):
    """The file as a whole cannot be imported (type, encoding, header); one message says why."""

    def __init__(self, code: str, **params):
        super().__init__(code)
        self.code = code
        self.params = params

    @property
    def message(self) -> str:
        return str(FILE_PROBLEMS[self.code]) % self.params

    def as_dict(self) -> dict:
        return {"code": self.code, "params": self.params}


def file_error_message(error: dict) -> str:
    return str(FILE_PROBLEMS[error["code"]]) % error["params"]


class ImportRejected(Exception):
    """Some rows are bad; nothing was written. `errors` has every problem found."""

    def __init__(self, errors: list[RowError], *, rows: int):
        super().__init__(f"{len(errors)} problems")
        self.errors = errors
        self.rows = rows


# --- files -----------------------------------------------------------------------------------


def media_path(relative: str) -> Path:
    return Path(settings.MEDIA_ROOT) / relative


def upload_store(uploaded, *, folder: str = "imports") -> str:
    """Keep an uploaded file under MEDIA_ROOT/<folder>/ with an unguessable name; returns its
    path relative to MEDIA_ROOT."""
    suffix = Path(uploaded.name or "").suffix.lower()[:8]
    relative = f"{folder}/{uuid.uuid4().hex}{suffix}"
    path = media_path(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        for chunk in uploaded.chunks():
            out.write(chunk)
    return relative


def upload_check(*, name: str, size: int) -> None:
    """Refuse what can never be imported before it is queued (raises ImportFileError)."""
    suffix = Path(name).suffix.lower()
    if suffix == ".xls":
        raise ImportFileError("old_excel", name=name)
    if suffix not in (".csv", ".xlsx"):
        raise ImportFileError("unsupported_type", name=name)
    if size > MAX_FILE_BYTES:
        raise ImportFileError("too_large", limit=MAX_FILE_BYTES // (1024 * 1024))
    if size == 0:
        raise ImportFileError("empty")


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cell_text(value) -> str:
    """A spreadsheet cell as the text the user sees in it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M:%S")
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        # Excel keeps 19.9 as the nearest double; the shortest repr gives back "19.9".
        return repr(value)
    return str(value)


# Our exports put an apostrophe before text that a spreadsheet would run as a formula.
_FORMULA_GUARD = re.compile(r"^'(?=[=+\-@])")


def _clean(value: str) -> str:
    return _FORMULA_GUARD.sub("", value.strip())


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    data = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ImportFileError("encoding")
    first_line = text.split("\n", 1)[0]
    delimiter = max([",", "\t", ";"], key=first_line.count) if first_line else ","
    try:
        # Row numbers count records, not lines: a quoted cell may span lines, yet a
        # spreadsheet shows it as one row.
        yield from enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), 1)
    except csv.Error as exc:
        raise ImportFileError("unreadable", kind="CSV", reason=str(exc)) from None


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    import openpyxl  # only the importing worker pays for loading it

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        reason = str(exc) or type(exc).__name__
        raise ImportFileError("unreadable", kind="XLSX", reason=reason) from None
    try:
        sheet = workbook.worksheets[0]
        # Some tools write a wrong size into the file; read what is really there.
        sheet.reset_dimensions()
        for number, values in enumerate(sheet.iter_rows(values_only=True), 1):
            yield number, [cell_text(v) for v in values]
    finally:
        workbook.close()


@dataclass
class Sheet:
    """A file's rows as text by column, each with its spreadsheet row number."""

    columns: list[str]
    rows: list[tuple[int, dict[str, str]]]
    ignored_columns: list[str]


def sheet_read(
    path: Path,
    *,
    name: str,
    required: Iterable[str],
    known: Iterable[str],
    export_only: Iterable[str] = (),
) -> Sheet:
    """Read the whole file. Raises ImportFileError for a file that cannot be imported at all.

    Columns are matched by name in any order and case; blank rows are skipped (their
    numbers still count); columns we do not import are listed in `ignored_columns`.
    """
    if not path.exists():
        raise ImportFileError("missing_file")
    suffix = Path(name).suffix.lower()
    with open(path, "rb") as source:
        head = source.read(8)
    if not head:
        raise ImportFileError("empty")
    if suffix == ".xls" or head.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportFileError("old_excel", name=name)
    if head.startswith(b"PK\x03\x04"):
        raw = _xlsx_rows(path)
    elif suffix == ".csv":
        raw = _csv_rows(path)
    elif suffix == ".xlsx":
        raise ImportFileError("unreadable", kind="XLSX", reason=_t("not an XLSX workbook"))
    else:
        raise ImportFileError("unsupported_type", name=name)

    known = list(known)
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, str]]] = []
    positions: list[tuple[int, str]] = []
    for number, values in raw:
        if not any(v.strip() for v in values):
            continue
        if header is None:
            header = [v.strip().lstrip("\ufeff").lower() for v in values]
            seen = set()
            for column in header:
                if column and column in seen:
                    raise ImportFileError("duplicate_column", column=column)
                seen.add(column)
            missing = [c for c in required if c not in seen]
            if missing:
                raise ImportFileError("missing_columns", columns=", ".join(missing))
            positions = [(i, c) for i, c in enumerate(header) if c in known]
            continue
        rows.append(
            (number, {c: _clean(values[i]) if i < len(values) else "" for i, c in positions})
        )
    if header is None:
        raise ImportFileError("empty")
    if not rows:
        raise ImportFileError("no_rows")
    skip = set(known) | set(export_only)
    ignored = [c for c in header if c and c not in skip]
    return Sheet(columns=[c for _, c in positions], rows=rows, ignored_columns=ignored)


def error_report_write(errors: Iterable[RowError], path: Path) -> None:
    """Every problem as a CSV the user can open in Excel next to their file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([_t("Row"), _t("Column"), _t("Problem")])
        for error in errors:
            writer.writerow([error.row, error.column, problem_text(error.code, error.params)])


def rejection_result(rejected: ImportRejected, *, report: str) -> dict:
    """What a job keeps of a rejected file: the problems (the first MAX_ERRORS_KEPT), their
    count, and where the full report is."""
    return {
        "rows": rejected.rows,
        "errors": [e.as_dict() for e in rejected.errors[:MAX_ERRORS_KEPT]],
        "error_count": len(rejected.errors),
        "bad_rows": len({e.row for e in rejected.errors}),
        "error_report": report,
    }


def copy_insert(model: type[Model], objs: list[Model]) -> None:
    """Insert new rows with COPY: for tens of thousands of rows several times faster than
    INSERT. Fields get what Django would save (defaults, auto_now); primary keys are not
    read back."""
    if not objs:
        return
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    # Plain values (str, int, bool, aware datetime) go to psycopg as they are; only JSON
    # needs Django's preparation.
    prepared = [isinstance(f, JSONField) for f in fields]
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy:
            for obj in objs:
                copy.write_row(
                    [
                        f.get_db_prep_save(f.pre_save(obj, True), connection)
                        if prepare
                        else f.pre_save(obj, True)
                        for f, prepare in zip(fields, prepared, strict=True)
                    ]
                )


def chunks(items: list, size: int = DB_CHUNK) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def split_list(text: str) -> list[str]:
    """Items separated by , ， ; or ；, blanks dropped."""
    return [part.strip() for part in re.split(r"[,，;；]", text) if part.strip()]


BOOLEAN_WORDS = {
    "是": True,
    "否": False,
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "1": True,
    "0": False,
}


class RowChecker:
    """Collects the problems of a file, row by row."""

    def __init__(self):
        self.errors: list[RowError] = []

    def add(self, row: int, column: str, code: str, **params) -> None:
        self.errors.append(RowError(row, column, code, params))

    def text(self, row: int, column: str, value: str, *, limit: int) -> str | None:
        if len(value) > limit:
            self.add(row, column, "too_long", value=value[:20] + "…", limit=limit)
            return None
        return value


# --- contacts --------------------------------------------------------------------------------

CONTACT_COLUMNS = (
    "external_userid",
    "name",
    "gender",
    "tier",
    "stage",
    "tags",
    "remark_identity",
    "remark_purchase",
    "remark_inquiry",
    "remark_preference",
    "referrer",
    "opted_out",
    "staff_userid",
)
REQUIRED_CONTACT_COLUMNS = ("external_userid",)
# Written by the contact export for reading only; an edited export imports as it is.
CONTACT_EXPORT_ONLY_COLUMNS = (
    "staff_name",
    "channel",
    "points",
    "orders",
    "spend_yuan",
    "first_added_at",
    "last_active_at",
)
REMARK_COLUMNS = {
    "remark_identity": ContactNote.Kind.IDENTITY,
    "remark_purchase": ContactNote.Kind.PURCHASE,
    "remark_inquiry": ContactNote.Kind.INQUIRY,
    "remark_preference": ContactNote.Kind.PREFERENCE,
}
# The file's words for gender, whatever the UI language (exports write these too).
GENDER_WORDS = {
    "男": Contact.Gender.MALE,
    "女": Contact.Gender.FEMALE,
    "未知": Contact.Gender.UNKNOWN,
    "0": Contact.Gender.UNKNOWN,
    "1": Contact.Gender.MALE,
    "2": Contact.Gender.FEMALE,
    "male": Contact.Gender.MALE,
    "female": Contact.Gender.FEMALE,
    "unknown": Contact.Gender.UNKNOWN,
}
GENDER_TEXT = {
    Contact.Gender.UNKNOWN: "未知",
    Contact.Gender.MALE: "男",
    Contact.Gender.FEMALE: "女",
}


def stage_words() -> dict[str, str]:
    """Stage codes and their names in every UI language, lower-cased, → stage code."""
    words = {}
    for code, label in Contact.Stage.choices:
        words[code] = code
        for language, _name in settings.LANGUAGES:
            with translation.override(language):
                words[str(label).lower()] = code
    return words


@dataclass(slots=True)
class ContactRow:
    """One good row, ready to write."""

    row: int
    external_userid: str
    values: dict  # model field → value, only for cells that were filled in
    tags: list[tuple[str, str]]  # (group name, tag name); missing ones are created
    notes: list[tuple[str, str]]  # (kind, text)
    referrer: str | None
    staff_ids: list[int]


@dataclass
class ContactsImported:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    tags_added: int = 0
    tags_created: int = 0
    notes_added: int = 0
    follows_added: int = 0
    ignored_columns: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _operator_staff(user) -> Staff | None:
    """None for managers (anything goes); the operator's own Staff otherwise."""
    if user.is_manager:
        return None
    staff = Staff.objects.filter(user=user).first()
    if staff is None:
        raise ImportFileError("no_staff")
    return staff


def _tags_by_name() -> dict[str, list[tuple[str, str]]]:
    """Tag name → its (group name, tag name) pairs, for tags written without their group."""
    by_name = defaultdict(list)
    for group, name in sorted(Tag.objects.values_list("group__name", "name")):
        by_name[name].append((group, name))
    return by_name


def _existing_ids(external_userids: list[str], contacts=None) -> dict[str, int]:
    found = {}
    queryset = Contact.objects.all() if contacts is None else contacts
    for chunk in chunks(external_userids):
        found.update(
            queryset.filter(external_userid__in=chunk).values_list("external_userid", "pk")
        )
    return found


def contacts_check(
    sheet: Sheet, *, user, progress: Progress = no_progress
) -> tuple[list[ContactRow], list[RowError]]:
    """Every row checked against the file and the database; nothing is written."""
    check = RowChecker()
    total = len(sheet.rows)
    own_staff = _operator_staff(user)
    tiers = {t.name: t.pk for t in MemberTier.objects.all()}
    tiers_folded = {name.lower(): pk for name, pk in tiers.items()}
    stages = stage_words()
    tags_by_name = _tags_by_name()
    file_ids = [v.get("external_userid", "") for _, v in sheet.rows]
    file_id_set = set(file_ids)
    in_db = _existing_ids(sorted({i for i in file_ids if i}))
    mine = (
        set(_existing_ids(sorted(in_db), contacts_visible_to(user)))
        if own_staff is not None
        else set(in_db)
    )
    referrers = sorted({v.get("referrer", "") for _, v in sheet.rows} - {""} - file_id_set)
    referrers_in_db = set(_existing_ids(referrers))
    staff_userids = {
        userid for _, v in sheet.rows for userid in split_list(v.get("staff_userid", ""))
    }
    staff = dict(Staff.objects.filter(userid__in=staff_userids).values_list("userid", "pk"))

    first_row: dict[str, int] = {}
    good: list[ContactRow] = []
    for index, (number, cells) in enumerate(sheet.rows, 1):
        if index % PROGRESS_EVERY == 0:
            progress(index, 2 * total, phase="checking")
        errors_before = len(check.errors)
        external_userid = cells.get("external_userid", "")
        if not external_userid:
            check.add(number, "external_userid", "required")
        elif len(external_userid) > 64:
            check.text(number, "external_userid", external_userid, limit=64)
        elif external_userid in first_row:
            check.add(
                number,
                "external_userid",
                "duplicate_in_file",
                value=external_userid,
                other_row=first_row[external_userid],
            )
        else:
            first_row[external_userid] = number
            if external_userid in in_db and external_userid not in mine:
                check.add(number, "external_userid", "not_your_contact")

        values = {}
        if name := cells.get("name"):
            if check.text(number, "name", name, limit=64) is not None:
                values["name"] = name
        if gender := cells.get("gender"):
            if gender.lower() in GENDER_WORDS:
                values["gender"] = int(GENDER_WORDS[gender.lower()])
            else:
                check.add(number, "gender", "unknown_gender", value=gender)
        if tier := cells.get("tier"):
            pk = tiers.get(tier) or tiers_folded.get(tier.lower())
            if pk is None:
                check.add(number, "tier", "unknown_tier", value=tier)
            values["tier_id"] = pk
        if stage := cells.get("stage"):
            if stage.lower() in stages:
                values["stage"] = stages[stage.lower()]
            else:
                check.add(number, "stage", "unknown_stage", value=stage)
        if opted_out := cells.get("opted_out"):
            if opted_out.lower() in BOOLEAN_WORDS:
                values["opted_out"] = BOOLEAN_WORDS[opted_out.lower()]
            else:
                check.add(number, "opted_out", "bad_boolean", value=opted_out)

        tags = []
        for item in split_list(cells.get("tags", "")):
            group, colon, name = item.replace("：", ":").partition(":")
            if colon:
                group, name = group.strip(), name.strip()
                if not group or not name:
                    check.add(number, "tags", "bad_tag", value=item)
                elif len(group) > TAG_NAME_MAX or len(name) > TAG_NAME_MAX:
                    check.text(number, "tags", item, limit=TAG_NAME_MAX)
                else:
                    tags.append((group, name))
            else:
                found = tags_by_name.get(item, [])
                if not found:
                    check.add(number, "tags", "unknown_tag", value=item)
                elif len(found) > 1:
                    groups = "、".join(g for g, _n in found)
                    check.add(number, "tags", "ambiguous_tag", value=item, groups=groups)
                else:
                    tags.append(found[0])

        notes = []
        for column, kind in REMARK_COLUMNS.items():
            if text := cells.get(column):
                text = text.replace("\r\n", "\n")
                if check.text(number, column, text, limit=NOTE_MAX_LENGTH) is not None:
                    notes.append((kind, text))

        referrer = cells.get("referrer") or None
        if referrer is not None:
            if referrer == external_userid:
                check.add(number, "referrer", "self_referrer")
            elif referrer not in referrers_in_db and referrer not in file_id_set:
                # Earlier or later in the file is as good as in the database.
                check.add(number, "referrer", "unknown_referrer", value=referrer)

        staff_ids = []
        for userid in split_list(cells.get("staff_userid", "")):
            if userid not in staff:
                check.add(number, "staff_userid", "unknown_staff", value=userid)
            elif own_staff is not None and staff[userid] != own_staff.pk:
                check.add(number, "staff_userid", "not_your_staff", userid=own_staff.userid)
            else:
                staff_ids.append(staff[userid])
        if own_staff is not None and not staff_ids and external_userid not in in_db:
            # An operator's new customer is theirs, or they could not see it afterwards.
            staff_ids.append(own_staff.pk)

        if len(check.errors) == errors_before:
            good.append(
                ContactRow(number, external_userid, values, tags, notes, referrer, staff_ids)
            )
    progress(total, 2 * total, phase="checking")
    return good, check.errors


def _tier_payload(before: MemberTier | None, after: MemberTier | None) -> dict:
    # The same shape as contacts.tiers records for automatic moves.
    return {
        "from": before.name if before else None,
        "to": after.name if after else None,
        "from_level": before.level if before else None,
        "to_level": after.level if after else None,
        "via": "import",
    }


_CONTACT_FIELDS = ("name", "gender", "tier_id", "stage", "opted_out")


def _contacts_upsert(
    rows: list[ContactRow], *, now: datetime, key: str, events: list[EventRow]
) -> tuple[dict[str, Contact], set[str], set[str]]:
    """Create new contacts and update changed ones; returns (contacts by external_userid,
    external_userids created, external_userids updated)."""
    existing: dict[str, Contact] = {}
    for chunk in chunks([r.external_userid for r in rows]):
        existing.update(
            (c.external_userid, c)
            for c in Contact.objects.filter(external_userid__in=chunk).only(
                "pk", "external_userid", "referrer_id", "opted_out_at", *_CONTACT_FIELDS
            )
        )
    tiers = {t.pk: t for t in MemberTier.objects.all()}
    new, changed, changed_fields = [], [], set()
    moves: list[tuple[Contact, int | None, str]] = []  # (contact, tier and stage before)
    for row in rows:
        contact = existing.get(row.external_userid)
        if contact is None:
            contact = Contact(external_userid=row.external_userid, **row.values)
            if contact.opted_out:
                contact.opted_out_at = now
            new.append(contact)
            moves.append((contact, None, Contact.Stage.NEW))
            continue
        fields = [f for f, value in row.values.items() if getattr(contact, f) != value]
        if not fields:
            continue
        moves.append((contact, contact.tier_id, contact.stage))
        for name in fields:
            setattr(contact, name, row.values[name])
        if "opted_out" in fields:
            contact.opted_out_at = now if contact.opted_out else None
            fields.append("opted_out_at")
        contact.updated_at = now
        changed.append(contact)
        changed_fields.update("tier" if name == "tier_id" else name for name in fields)
    copy_insert(Contact, new)
    for chunk in chunks(new):
        pks = dict(
            Contact.objects.filter(
                external_userid__in=[c.external_userid for c in chunk]
            ).values_list("external_userid", "pk")
        )
        for contact in chunk:
            contact.pk = pks[contact.external_userid]
            contact._state.adding = False
    if changed:
        Contact.objects.bulk_update(
            changed, sorted(changed_fields | {"updated_at"}), batch_size=1_000
        )
    for contact, tier_before, stage_before in moves:
        if contact.tier_id != tier_before:
            events.append(
                EventRow(
                    EventType.TIER_CHANGED,
                    now,
                    f"import:{key}:tier:{contact.external_userid}",
                    contact_id=contact.pk,
                    payload=_tier_payload(tiers.get(tier_before), tiers.get(contact.tier_id)),
                )
            )
        if contact.stage != stage_before:
            events.append(
                EventRow(
                    EventType.STAGE_CHANGED,
                    now,
                    f"import:{key}:stage:{contact.external_userid}",
                    contact_id=contact.pk,
                    payload={"from": stage_before, "to": contact.stage, "via": "import"},
                )
            )
    contacts = {**existing, **{c.external_userid: c for c in new}}
    return contacts, {c.external_userid for c in new}, {c.external_userid for c in changed}


def _referrers_set(
    rows: list[ContactRow],
    contacts: dict[str, Contact],
    *,
    now: datetime,
    key: str,
    events: list[EventRow],
) -> set[str]:
    wanted = {r.external_userid: r.referrer for r in rows if r.referrer}
    outside = sorted(set(wanted.values()) - set(contacts))
    ids = {eid: c.pk for eid, c in contacts.items()} | _existing_ids(outside)
    moved = []
    for external_userid, referrer in wanted.items():
        contact = contacts[external_userid]
        if contact.referrer_id != ids[referrer]:
            contact.referrer_id = ids[referrer]
            contact.updated_at = now
            moved.append(contact)
            events.append(
                EventRow(
                    EventType.REFERRAL,
                    now,
                    f"import:{key}:referral:{external_userid}",
                    contact_id=ids[referrer],
                    payload={"referred_contact_id": contact.pk, "via": "import"},
                )
            )
    Contact.objects.bulk_update(moved, ["referrer", "updated_at"], batch_size=1_000)
    return {c.external_userid for c in moved}


def _tags_give(
    rows: list[ContactRow],
    contacts: dict[str, Contact],
    *,
    now: datetime,
    key: str,
    events: list[EventRow],
) -> tuple[set[str], int, int]:
    """Give each row's tags (adding only; other tags stay); creates missing group:tag pairs.
    Returns (contacts that got a tag, links added, tags created)."""
    wanted_pairs = {pair for row in rows for pair in row.tags}
    if not wanted_pairs:
        return set(), 0, 0
    group_names = {group for group, _name in wanted_pairs}
    groups = {g.name: g for g in TagGroup.objects.filter(name__in=group_names)}
    for name in sorted(group_names - set(groups)):
        groups[name] = TagGroup.objects.create(name=name, source=TagSource.IMPORT)
    tags = {
        (t.group.name, t.name): t
        for t in Tag.objects.filter(
            group__in=groups.values(), name__in={name for _group, name in wanted_pairs}
        ).select_related("group")
    }
    created = 0
    for group, name in sorted(wanted_pairs - set(tags)):
        tags[(group, name)] = Tag.objects.create(
            group=groups[group], name=name, source=TagSource.IMPORT
        )
        created += 1
    wanted = {(contacts[r.external_userid].pk, tags[p].pk) for r in rows for p in r.tags}
    tag_ids = {pk for _contact, pk in wanted}
    contact_ids = sorted({pk for pk, _other in wanted})
    have = set()
    for chunk in chunks(contact_ids):
        have.update(
            ContactTag.objects.filter(contact_id__in=chunk, tag_id__in=tag_ids).values_list(
                "contact_id", "tag_id"
            )
        )
    new = sorted(wanted - have)
    copy_insert(
        ContactTag,
        [ContactTag(contact_id=c, tag_id=t, source=TagSource.IMPORT) for c, t in new],
    )
    by_pk = {t.pk: t for t in tags.values()}
    events.extend(
        EventRow(
            EventType.TAG_ADDED,
            now,
            f"import:{key}:tag:{contact_id}:{tag_id}",
            contact_id=contact_id,
            payload={"tag_id": tag_id, "tag": by_pk[tag_id].name, "source": TagSource.IMPORT},
        )
        for contact_id, tag_id in new
    )
    touched = {pk for pk, _tag in new}
    return {e for e, c in contacts.items() if c.pk in touched}, len(new), created


def _notes_add(
    rows: list[ContactRow], contacts: dict[str, Contact], *, user
) -> tuple[set[str], int]:
    """Add each remark unless the customer has it already (alone, or as our export joins
    several: newest first, one per line)."""
    wanted = [(contacts[r.external_userid].pk, kind, text) for r in rows for kind, text in r.notes]
    if not wanted:
        return set(), 0
    existing: dict[tuple[int, str], list[str]] = defaultdict(list)
    for chunk in chunks(sorted({pk for pk, _kind, _text in wanted})):
        for pk, kind, text in (
            ContactNote.objects.filter(contact_id__in=chunk)
            .order_by("contact_id", "kind", "-created_at", "-pk")
            .values_list("contact_id", "kind", "text")
        ):
            existing[(pk, kind)].append(text.replace("\r\n", "\n").strip())
    new = []
    for pk, kind, text in wanted:
        texts = existing[(pk, kind)]
        if text in texts or text == "\n".join(texts):
            continue
        new.append(ContactNote(contact_id=pk, kind=kind, text=text, author=user))
        texts.insert(0, text)
    copy_insert(ContactNote, new)
    touched = {n.contact_id for n in new}
    return {e for e, c in contacts.items() if c.pk in touched}, len(new)


def _follows_add(
    rows: list[ContactRow], contacts: dict[str, Contact], *, now: datetime
) -> tuple[set[str], int]:
    wanted = {(contacts[r.external_userid].pk, s) for r in rows for s in r.staff_ids}
    if not wanted:
        return set(), 0
    have = set()
    for chunk in chunks(sorted({pk for pk, _other in wanted})):
        have.update(
            Follow.objects.filter(contact_id__in=chunk).values_list("contact_id", "staff_id")
        )
    new = [Follow(contact_id=c, staff_id=s, added_at=now) for c, s in sorted(wanted - have)]
    copy_insert(Follow, new)
    touched = {f.contact_id for f in new}
    return {e for e, c in contacts.items() if c.pk in touched}, len(new)


def contacts_write(
    rows: list[ContactRow], *, user, key: str, progress: Progress = no_progress
) -> ContactsImported:
    """Write checked rows in one transaction. `key` (the file's digest) makes the events
    of one file recognisable, so importing it again records nothing new."""
    now = timezone.now()
    total = len(rows)
    events: list[EventRow] = []

    def written(share: float) -> None:
        progress(total + int(total * share), 2 * total, phase="writing")

    with transaction.atomic():
        written(0)
        contacts, created, updated = _contacts_upsert(rows, now=now, key=key, events=events)
        written(0.3)
        referred = _referrers_set(rows, contacts, now=now, key=key, events=events)
        written(0.35)
        tagged, tags_added, tags_created = _tags_give(
            rows, contacts, now=now, key=key, events=events
        )
        written(0.6)
        noted, notes_added = _notes_add(rows, contacts, user=user)
        written(0.7)
        followed, follows_added = _follows_add(rows, contacts, now=now)
        written(0.8)
        record_many(events)
        written(1)
    touched = created | updated | referred | tagged | noted | followed
    return ContactsImported(
        rows=total,
        created=len(created),
        updated=len(touched - created),
        unchanged=total - len(touched),
        tags_added=tags_added,
        tags_created=tags_created,
        notes_added=notes_added,
        follows_added=follows_added,
    )


def contacts_import(
    *, path: Path, name: str, user, progress: Progress = no_progress
) -> ContactsImported:
    """Read, check and write a contacts file. Raises ImportFileError for a file that cannot
    be read and ImportRejected (with every problem) when any row is bad; then nothing is
    written."""
    progress(0, 0, phase="reading")
    sheet = sheet_read(
        path,
        name=name,
        required=REQUIRED_CONTACT_COLUMNS,
        known=CONTACT_COLUMNS,
        export_only=CONTACT_EXPORT_ONLY_COLUMNS,
    )
    rows, errors = contacts_check(sheet, user=user, progress=progress)
    if errors:
        raise ImportRejected(errors, rows=len(sheet.rows))
    outcome = contacts_write(rows, user=user, key=file_digest(path), progress=progress)
    outcome.ignored_columns = sheet.ignored_columns
    return outcome


def import_start(*, kind: str, user, uploaded, task) -> Job:
    """Keep the uploaded file and queue `task` to import it; returns the Job to follow.
    Raises ImportFileError for a file that can never be imported (type, size)."""
    name = Path(uploaded.name or "").name
    upload_check(name=name, size=uploaded.size)
    params = {
        "file": upload_store(uploaded),
        "name": name,
        "language": translation.get_language(),
    }
    job = job_create(kind=kind, user=user, params=params)
    job_queue(job, task)
    return job


def contacts_import_start(*, user, uploaded) -> Job:
    """Queue an import of an uploaded contacts file (CSV or XLSX)."""
    from contacts.io_tasks import contacts_import_run

    if not user.is_manager:
        _operator_staff(user)  # refuse at once a login that could import nothing
    return import_start(
        kind="contacts_import", user=user, uploaded=uploaded, task=contacts_import_run
    )
