"""The analytics tables as a screen reader meets them: each table named by a caption, column
and row headers marked as such, and a chart's table saying it holds the chart's numbers (the
chart itself is hidden from screen readers and cannot be read with the keyboard)."""

from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest

from tests.analytics.test_analytics_pages import PAGES, RANGE, build_cast, login

pytestmark = pytest.mark.django_db


@dataclass
class ReadTable:
    key: str
    in_section_with_chart: bool
    caption: str = ""
    column_headers: list = field(default_factory=list)  # scope of each <th> in <thead>
    row_headers: list = field(default_factory=list)  # (tag, scope) of each body row's first cell


class Tables(HTMLParser):
    """Every <table> of the page, with the caption and header cells a screen reader reads."""

    def __init__(self):
        super().__init__()
        self.tables: list[ReadTable] = []
        self.sections: list[bool] = []  # per open <section>: holds a chart
        self.table: ReadTable | None = None
        self.part = ""
        self.in_caption = False
        self.first_cell = False

    def handle_starttag(self, tag, attrs):
        attrs = {name: value or "" for name, value in attrs}
        if tag == "section":
            self.sections.append(False)
        elif tag == "div" and "chart" in attrs.get("class", "").split() and self.sections:
            self.sections[-1] = True
        elif tag == "table":
            self.table = ReadTable(
                attrs.get("data-table", ""), bool(self.sections and self.sections[-1])
            )
            self.tables.append(self.table)
        elif self.table is None:
            return
        elif tag == "caption":
            self.in_caption = True
        elif tag in ("thead", "tbody"):
            self.part = tag
        elif tag == "tr":
            self.first_cell = self.part == "tbody"
        elif tag == "th" and self.part == "thead":
            self.table.column_headers.append(attrs.get("scope"))
        elif tag in ("th", "td") and self.first_cell:
            self.table.row_headers.append((tag, attrs.get("scope")))
            self.first_cell = False

    def handle_endtag(self, tag):
        if tag == "section" and self.sections:
            self.sections.pop()
        elif tag == "table":
            self.table = None
        elif tag == "caption":
            self.in_caption = False

    def handle_data(self, data):
        if self.in_caption and self.table is not None:
            self.table.caption += data


def tables_of(client, url: str) -> list[ReadTable]:
    response = client.get(url)
    assert response.status_code == 200, url
    html = response.content.decode()
    assert "{#" not in html, f"a template comment shown as text on {url}"
    reader = Tables()
    reader.feed(html)
    return reader.tables


def test_every_analytics_table_has_a_caption_and_marked_headers():
    cast = build_cast()
    client = login(cast.manager)
    seen = {}
    for url in [*PAGES, "/analytics/value/"]:
        for table in tables_of(client, f"{url}?{RANGE}"):
            seen[f"{url}#{table.key}"] = table
            assert " ".join(table.caption.split()), (url, table.key)
            assert table.column_headers and set(table.column_headers) == {"col"}, (url, table.key)
            assert set(table.row_headers) <= {("th", "row")}, (url, table.key)

    # The cast has data on these: the check above read real rows, not only empty tables.
    for key in ("/analytics/#metrics", "/analytics/cohorts/#cohorts", "/analytics/funnel/#funnel"):
        assert seen[key].row_headers, key


def test_a_charts_table_sits_with_its_chart_and_says_it_holds_the_charts_numbers():
    cast = build_cast()
    client = login(cast.manager)

    funnel = {t.key: t for t in tables_of(client, f"/analytics/funnel/?{RANGE}")}["funnel"]
    assert funnel.in_section_with_chart
    assert "Funnel steps" in funnel.caption and "chart above" in funnel.caption

    # The cohort heatmap's table: a header per week column, the cohort's date heading each row.
    cohorts = {t.key: t for t in tables_of(client, f"/analytics/cohorts/?{RANGE}")}["cohorts"]
    assert cohorts.in_section_with_chart and "chart above" in cohorts.caption
    assert len(cohorts.column_headers) >= 3 and cohorts.row_headers[0] == ("th", "row")

    # A table drawn without a chart does not point at one.
    metrics = {t.key: t for t in tables_of(client, f"/analytics/?{RANGE}")}["metrics"]
    assert not metrics.in_section_with_chart
    assert "chart" not in metrics.caption
