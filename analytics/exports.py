"""The tables the analytics pages show, and their download as CSV or XLSX, cell for cell.

A page builds `Table`s once; the template renders them (their rows through
analytics.templatetags.reports) and `table_download` writes the very same text, so a file
always says what the page said ("1,234", "12.3%（37 / 301）", "—").
"""

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from django.http import HttpResponse

from contacts.exports import TableWriter

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    numeric: bool = True
    sortable: bool = False


@dataclass(frozen=True)
class Cell:
    value: object  # str or int; ints are shown with thousands separators
    href: str = ""
    highlight: bool = False

    @property
    def text(self) -> str:
        """As the page shows it (and the downloads write it): counts with separators."""
        if isinstance(self.value, int) and not isinstance(self.value, bool):
            return f"{self.value:,d}"
        return str(self.value)


@dataclass
class Table:
    key: str
    title: str
    columns: list[Column]
    rows: list[list[Cell]] = field(default_factory=list)
    # Filled in by the view: the page's own URL with format=csv / xlsx and table=<key>.
    csv_url: str = ""
    xlsx_url: str = ""
    # Column key → {"url": ..., "state": "ascending" | "descending" | ""} for sortable columns.
    sort_links: dict = field(default_factory=dict)

    def texts(self) -> list[list[str]]:
        return [[cell.text for cell in row] for row in self.rows]

    def headers(self) -> list[tuple[Column, dict | None]]:
        return [(column, self.sort_links.get(column.key)) for column in self.columns]


def table_download(table: Table, *, fmt: str, filename: str) -> HttpResponse:
    """The table as an attachment: CSV in UTF-8 with a BOM (so Excel reads Chinese), or XLSX.

    Written by the contact export's TableWriter, so names typed by people (a group called
    "=HYPERLINK(…)") stay text and never run as a spreadsheet formula.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    sheet = str(table.title)
    for bad in "[]:*?/\\":
        sheet = sheet.replace(bad, " ")
    with tempfile.TemporaryDirectory(prefix="analytics-") as folder:
        path = Path(folder) / f"table.{fmt}"
        with TableWriter(path, fmt, sheet_title=sheet or "data") as writer:
            writer.writerow([str(column.label) for column in table.columns])
            for row in table.texts():
                writer.writerow(row)
        content = path.read_bytes()
    response = HttpResponse(content, content_type=FORMATS[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    return response
