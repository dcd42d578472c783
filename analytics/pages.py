"""The 数据 (analytics) pages: overview, group and channel comparison, cohorts, customer types,
the funnel and customer value, each for a date range, each table downloadable as CSV or XLSX;
and the costs (投入) entered per group, channel code or campaign.

Thin: analytics.dashboard (and funnel, cohorts, customers, costs) compute, these views lay the
numbers out as `Table`s and chart specs. The same Table is rendered and exported.
"""

import uuid
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Value
from django.db.models.functions import Coalesce, Lower, NullIf
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, ngettext, pgettext
from django.utils.translation import gettext_lazy as _
from django.views.generic import TemplateView

from analytics import cohorts, costs, customers, dashboard
from analytics.dashboard import (
    as_daily_number,
    as_daily_percent,
    as_order_value,
    as_per_member,
    as_percent,
    as_roi,
    as_yuan,
)
from analytics.exports import FORMATS, Cell, Column, Table, table_download
from analytics.funnel import funnel
from analytics.metrics import Period, Ratio
from groups.models import Group
from groups.selectors import user_sees_all
from scrm.roles import RoleRequiredMixin, can_write


class RangeForm(forms.Form):
    first = forms.DateField(label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
    last = forms.DateField(label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        first, last = data.get("first"), data.get("last")
        if first and last:
            if last < first:
                self.add_error("last", _("The last day cannot be before the first."))
            elif (last - first).days + 1 > dashboard.MAX_DAYS:
                self.add_error(
                    "last", _("Pick at most %(days)d days.") % {"days": dashboard.MAX_DAYS}
                )
        return data


COHORT_UNITS = {"week": _("Weeks"), "day": _("Days")}


class CohortRangeForm(RangeForm):
    unit = forms.ChoiceField(label=_("Cohort by"), choices=list(COHORT_UNITS.items()))


def _number(value) -> float | None:
    """A value for a chart (display only; the tables carry the exact numbers)."""
    return None if value is None else round(float(value), 4)


class AnalyticsPage(RoleRequiredMixin, TemplateView):
    """One analytics page: a date range in, tables (and charts) out; ?format=csv|xlsx downloads
    the table named by ?table= (the first by default), exactly as shown.

    `build` returns the tables and the context it adds; a table without rows is shown as
    "no data for this period", and a chart is drawn only for a table with rows. A range with
    errors shows the form and its errors, no numbers.
    """

    section = ""
    title = ""
    form_class = RangeForm

    def get_template_names(self) -> list[str]:
        return [f"analytics/{self.section}.html"]

    def get(self, request, *args, **kwargs):
        self.groups = dashboard.groups_for(request.user)
        self.form, self.period = self._period()
        fmt = request.GET.get("format")
        if self.form.errors:
            # No numbers for a range other than the one asked for: only the form, with its errors.
            if fmt:
                return HttpResponseBadRequest(
                    "; ".join(f"{name}: {' '.join(e)}" for name, e in self.form.errors.items())
                )
            return self.render_to_response(self._context(tables=[]))
        tables, extra = self.build()
        if fmt:
            key = request.GET.get("table") or (tables[0].key if tables else "")
            table = next((t for t in tables if t.key == key), None)
            if table is None or fmt not in FORMATS:
                raise Http404("no such table or format")
            name = f"{self.section}-{table.key}-{self.period.first}-{self.period.last}"
            return table_download(table, fmt=fmt, filename=name)
        for table in tables:
            table.csv_url = self._url(format="csv", table=table.key)
            table.xlsx_url = self._url(format="xlsx", table=table.key)
        return self.render_to_response(self._context(tables=tables, **extra))

    def _context(self, **kwargs) -> dict:
        return self.get_context_data(
            active_nav="analytics",
            section=self.section,
            page_title=self.title,
            form=self.form,
            period=self.period,
            **kwargs,
        )

    def _period(self) -> tuple[RangeForm, Period | None]:
        default = dashboard.default_period()
        data = {
            "first": self.request.GET.get("first") or default.first.isoformat(),
            "last": self.request.GET.get("last") or default.last.isoformat(),
        }
        for name, field in self.form_class.base_fields.items():
            if name not in data and isinstance(field, forms.ChoiceField):
                data[name] = self.request.GET.get(name) or field.choices[0][0]
        form = self.form_class(data)
        if not form.is_valid():
            return form, None
        return form, Period(form.cleaned_data["first"], form.cleaned_data["last"])

    def _url(self, **changes) -> str:
        """This page with the range shown and `changes` (a download, another sort)."""
        query = self.request.GET.copy()
        query["first"], query["last"] = self.period.first.isoformat(), self.period.last.isoformat()
        for name, value in changes.items():
            query[name] = value
        return f"{self.request.path}?{query.urlencode()}"

    def build(self) -> tuple[list[Table], dict]:
        raise NotImplementedError


# --- overview -------------------------------------------------------------------------------


class OverviewPage(AnalyticsPage):
    section = "overview"
    title = _("Overview")

    def build(self):
        o = dashboard.overview(user=self.request.user, period=self.period)
        metrics = Table(
            key="metrics",
            title=gettext("Metrics for the period"),
            columns=[
                Column("metric", gettext("Metric"), numeric=False),
                Column("value", gettext("Value")),
            ],
        )
        daily = Table(
            key="daily",
            title=gettext("Interaction rate and messages per member, day by day"),
            columns=[
                Column("day", gettext("Day"), numeric=False),
                Column("interaction_rate", gettext("Interaction rate")),
                Column("messages_per_member", gettext("Messages per member")),
            ],
        )
        if not o.has_data:
            return [metrics, daily], {"charts": {}}
        for label, value in (
            (gettext("Members at the start"), o.members_start),
            (gettext("Members at the end"), o.members_end),
            (gettext("Leave rate"), as_percent(o.leave_rate)),
            (gettext("Retention"), as_percent(o.retention)),
            (gettext("Interaction rate (daily mean)"), as_daily_percent(o.interaction_rate)),
            (gettext("Messages per member (daily mean)"), as_daily_number(o.messages_per_member)),
            (gettext("Conversion"), as_percent(o.conversion)),
            (gettext("Average order value"), as_order_value(o.average_order_value)),
            (gettext("Repurchase rate"), as_percent(o.repurchase_rate)),
            (gettext("Referral rate"), as_percent(o.referral_rate)),
            (gettext("Block rate"), as_percent(o.block_rate)),
        ):
            metrics.rows.append([Cell(label), Cell(value)])

        days = list(o.interaction_rate.days)
        for day in days:
            daily.rows.append(
                [
                    Cell(day.isoformat()),
                    Cell(as_percent(o.interaction_rate.days[day])),
                    Cell(as_per_member(o.messages_per_member.days[day])),
                ]
            )
        chart = {
            "type": "line",
            "categories": [day.isoformat() for day in days],
            "series": [
                {
                    "name": gettext("Interaction rate"),
                    "data": [_number(o.interaction_rate.days[d].value) for d in days],
                    "percent": True,
                },
                {
                    "name": gettext("Messages per member"),
                    "data": [_number(o.messages_per_member.days[d].value) for d in days],
                    "axis": 1,
                },
            ],
        }
        return [metrics, daily], {"charts": {"daily": chart}}


# --- group comparison -----------------------------------------------------------------------

GROUP_COLUMNS = [
    # key, label, sort value, cell text
    ("members_start", _("Members at start"), lambda f: f.members_start, lambda f: f.members_start),
    ("members_end", _("Members at end"), lambda f: f.members_end, lambda f: f.members_end),
    ("joins", _("Joins"), lambda f: f.joins, lambda f: f.joins),
    (
        "leave_rate",
        _("Leave rate"),
        lambda f: f.leave_rate.value,
        lambda f: as_percent(f.leave_rate),
    ),
    ("retention", _("Retention"), lambda f: f.retention.value, lambda f: as_percent(f.retention)),
    (
        "interaction_rate",
        _("Interaction rate"),
        lambda f: f.interaction_rate.value,
        lambda f: as_daily_percent(f.interaction_rate),
    ),
    (
        "messages_per_member",
        _("Messages per member"),
        lambda f: f.messages_per_member.value,
        lambda f: as_daily_number(f.messages_per_member),
    ),
    (
        "conversion",
        _("Conversion"),
        lambda f: f.conversion.value,
        lambda f: as_percent(f.conversion),
    ),
    (
        "average_order_value",
        _("Average order value"),
        lambda f: f.average_order_value.value,
        lambda f: as_order_value(f.average_order_value),
    ),
    (
        "repurchase_rate",
        _("Repurchase rate"),
        lambda f: f.repurchase_rate.value,
        lambda f: as_percent(f.repurchase_rate),
    ),
    ("roi", _("ROI"), lambda f: f.roi.value, lambda f: as_roi(f.roi)),
    (
        "referral_rate",
        _("Referral rate"),
        lambda f: f.referral_rate.value,
        lambda f: as_percent(f.referral_rate),
    ),
]
GROUP_SORTS = {"name"} | {key for key, *_ in GROUP_COLUMNS}
# What sorting every group by a column computes of them (comparison.group_rows' parts).
GROUP_SORT_PARTS = {
    **dict.fromkeys(
        ["members_start", "members_end", "joins", "leave_rate", "retention"], {"stays"}
    ),
    **dict.fromkeys(["interaction_rate", "messages_per_member"], {"daily_means"}),
    **dict.fromkeys(["average_order_value", "repurchase_rate"], {"orders"}),
    "conversion": {"stays", "orders"},  # buyers ÷ exposed
    "roi": {"money"},
    "referral_rate": {"people"},  # referrers ÷ active: speech and orders per member
}
# Groups a comparison page shows (downloads hold them all).
GROUPS_PER_PAGE = 50
# Columns the chart shows as a percentage; average order value is charted in yuan.
GROUP_PERCENT_COLUMNS = {
    "leave_rate",
    "retention",
    "interaction_rate",
    "conversion",
    "repurchase_rate",
    "referral_rate",
}
# The chart follows the sorted column; sorted by name it shows this one.
GROUP_CHART_DEFAULT = "members_end"


def sort_rows(rows: list, value, *, descending: bool) -> list:
    """Sorted by `value(row)`; undefined values (None) last whichever the direction."""
    keyed = [(value(r), r) for r in rows]
    defined = [(v, r) for v, r in keyed if v is not None]
    defined.sort(key=lambda pair: pair[0], reverse=descending)
    return [r for _v, r in defined] + [r for v, r in keyed if v is None]


def _group_chart(figures: list, key: str, label: str) -> dict:
    """A bar per group (in the table's order) of one column: the numbers of that column."""
    value = {k: v for k, _label, v, _text in GROUP_COLUMNS}[key]
    scale = 100 if key == "average_order_value" else 1  # fen → yuan
    return {
        "type": "bar",
        "categories": [f.group.name or f.group.chat_id for f in figures],
        "series": [
            {
                "name": label,
                "data": [None if value(f) is None else _number(value(f) / scale) for f in figures],
                "percent": key in GROUP_PERCENT_COLUMNS,
            }
        ],
    }


class GroupComparisonPage(AnalyticsPage):
    section = "groups"
    title = _("Group comparison")

    def build(self):
        sort = self.request.GET.get("sort", "name")
        key = sort.removeprefix("-")
        if key not in GROUP_SORTS:
            key, sort = "name", "name"
        descending = sort.startswith("-")
        user, period = self.request.user, self.period
        downloading = bool(self.request.GET.get("format"))
        page_obj = None
        if key == "name" and not downloading:
            # By name the database orders the groups, and only the page's groups are
            # computed: 1,000 groups all at once take seconds (tests/bench/bench_pages.py).
            name = Lower(Coalesce(NullIf("name", Value("")), "chat_id"))
            groups = dashboard.live_groups_for(user).order_by(
                name.desc() if descending else name, "-pk" if descending else "pk"
            )
            page_obj = Paginator(groups, GROUPS_PER_PAGE).get_page(self.request.GET.get("page"))
            figures = dashboard.group_comparison(
                user=user, period=period, groups=page_obj.object_list
            )
        else:
            # A figure's order needs that figure of every group (only what it is made of is
            # computed for them all); the page's groups are then computed whole.
            values = {k: v for k, _label, v, _text in GROUP_COLUMNS}
            values["name"] = lambda f: (f.group.name or f.group.chat_id).lower()
            if downloading:
                figures = dashboard.group_comparison(user=user, period=period)
            else:
                figures = dashboard.group_comparison_to_sort(
                    user=user, period=period, parts=frozenset(GROUP_SORT_PARTS[key])
                )
            figures = sort_rows(figures, values[key], descending=descending)
            if not downloading:
                page_obj = Paginator(figures, GROUPS_PER_PAGE).get_page(
                    self.request.GET.get("page")
                )
                figures = dashboard.group_comparison(
                    user=user, period=period, groups=[f.group for f in page_obj.object_list]
                )

        columns = [
            Column("name", gettext("Group"), numeric=False, sortable=True),
            Column("stage", gettext("Stage"), numeric=False),
        ] + [Column(k, str(label), sortable=True) for k, label, _v, _t in GROUP_COLUMNS]
        table = Table(key="groups", title=gettext("Groups"), columns=columns)
        for f in figures:
            focus = set(f.focus)
            table.rows.append(
                [
                    Cell(
                        f.group.name or f.group.chat_id,
                        href=reverse("groups:detail", args=[f.group.pk]),
                    ),
                    Cell(f.group.get_stage_display()),
                ]
                + [Cell(text(f), highlight=k in focus) for k, _l, _v, text in GROUP_COLUMNS]
            )
        sort_links = {}
        for column in columns:
            if column.sortable:
                ascending = sort == column.key
                descending = sort == f"-{column.key}"
                # Names start A→Z; numbers start with the largest.
                if ascending:
                    next_sort = f"-{column.key}"
                elif descending or column.key == "name":
                    next_sort = column.key
                else:
                    next_sort = f"-{column.key}"
                sort_links[column.key] = {
                    "url": self._url(sort=next_sort, page=1),  # a new order starts at its top
                    "state": "ascending" if ascending else "descending" if descending else "",
                }
        table.sort_links = sort_links
        labels = {k: str(label) for k, label, _v, _t in GROUP_COLUMNS}
        focus_legend = [
            (label, [labels[k] for k in dashboard.STAGE_FOCUS.get(stage, ())])
            for stage, label in Group.Stage.choices
        ]
        charted = GROUP_CHART_DEFAULT if key == "name" else key
        charts = {"groups": _group_chart(figures, charted, labels[charted])} if figures else {}
        return [table], {"focus_legend": focus_legend, "charts": charts, "page_obj": page_obj}


# --- channel comparison ---------------------------------------------------------------------


class ChannelComparisonPage(AnalyticsPage):
    section = "channels"
    title = _("Channel comparison")

    def build(self):
        figures = dashboard.channel_comparison(user=self.request.user, period=self.period)
        table = Table(
            key="channels",
            title=gettext("Channel codes"),
            columns=[
                Column("name", gettext("Channel code"), numeric=False),
                Column("kind", gettext("Kind"), numeric=False),
                Column("exposures", gettext("Exposures")),
                Column("joins", gettext("Joins")),
                Column("join_rate", gettext("Join rate")),
                Column("roi", gettext("ROI")),
            ],
        )
        for f in figures:
            name = f.channel.name
            if not f.channel.is_active:
                name = f"{name} ({gettext('retired')})"
            table.rows.append(
                [
                    Cell(name),
                    Cell(f.channel.get_kind_display()),
                    Cell(f.exposures),
                    Cell(f.joins),
                    Cell(as_percent(f.join_rate)),
                    Cell(as_roi(f.roi)),
                ]
            )
        chart = {
            "type": "bar",
            "categories": [row[0].text for row in table.rows],
            "series": [
                {"name": gettext("Exposures"), "data": [f.exposures for f in figures]},
                {"name": gettext("Joins"), "data": [f.joins for f in figures]},
            ],
        }
        return [table], {"charts": {"channels": chart} if figures else {}}


# --- cohorts --------------------------------------------------------------------------------


class CohortPage(AnalyticsPage):
    section = "cohorts"
    title = _("Join cohorts")
    form_class = CohortRangeForm

    def build(self):
        unit = self.form.cleaned_data.get("unit") or "week"
        rows = cohorts.join_cohorts(
            self.groups,
            first=self.period.first,
            last=self.period.last,
            unit=unit,
            horizon=dashboard.COHORT_HORIZON,
        )
        offsets = list(range(dashboard.COHORT_HORIZON + 1))
        labels = [
            (
                ngettext("+%(n)d week", "+%(n)d weeks", n)
                if unit == "week"
                else ngettext("+%(n)d day", "+%(n)d days", n)
            )
            % {"n": n}
            for n in offsets
        ]
        table = Table(
            key="cohorts",
            title=gettext("Share of each join cohort still in the groups"),
            columns=[
                Column("start", gettext("Cohort"), numeric=False),
                Column("size", pgettext("cohort size", "Joined")),
            ]
            + [Column(f"n{n}", label) for n, label in zip(offsets, labels, strict=True)],
        )
        tables, extra = [table], {"charts": {}}
        # lifecycle_weeks counts every customer, not the login's groups: managers and analysts.
        if user_sees_all(self.request.user):
            lifecycle, lifecycle_chart = _lifecycle_table(
                cohorts.lifecycle_weeks(first=self.period.first, last=self.period.last)
            )
            tables.append(lifecycle)
            if lifecycle_chart:
                extra["charts"]["lifecycle"] = lifecycle_chart
        else:
            extra["lifecycle_note"] = gettext(
                "The customers' lifecycle week by week covers every customer, "
                "so only managers and analysts see it."
            )
        if not any(row.size for row in rows):
            return tables, extra
        cells = []
        for y, row in enumerate(rows):
            table.rows.append(
                [Cell(row.start.isoformat()), Cell(row.size)]
                + [Cell("" if r is None else as_percent(r)) for r in row.retained]
            )
            for x, r in enumerate(row.retained):
                if r is not None and r.value is not None:
                    cells.append([x, y, _number(r.value)])
        chart = {
            "type": "heatmap",
            "x": labels,
            "y": [row.start.isoformat() for row in rows],
            "data": cells,
            "percent": True,
        }
        extra["charts"]["cohorts"] = chart
        return tables, extra


def _lifecycle_table(weeks: list[cohorts.WeekStates]) -> tuple[Table, dict | None]:
    """cohorts.lifecycle_weeks as a table, a row per Monday-week, and a bar per state."""
    states = [
        ("new", gettext("New")),
        ("returning", gettext("Returning")),
        ("resurrected", gettext("Resurrected")),
        ("dormant", gettext("Dormant")),
    ]
    table = Table(
        key="lifecycle",
        title=gettext("Customers' lifecycle week by week"),
        columns=[Column("week", gettext("Week (from Monday)"), numeric=False)]
        + [Column(key, label) for key, label in states],
    )
    if not any(getattr(w, key) for w in weeks for key, _label in states):
        return table, None
    for w in weeks:
        table.rows.append([Cell(w.week.isoformat())] + [Cell(getattr(w, k)) for k, _l in states])
    chart = {
        "type": "bar",
        "categories": [w.week.isoformat() for w in weeks],
        "series": [
            {"name": label, "data": [getattr(w, key) for w in weeks]} for key, label in states
        ],
    }
    return table, chart


# --- customer types -------------------------------------------------------------------------


THRESHOLD_LABELS = {
    "low_need_max_orders": _("Low-need: at most this many orders ever"),
    "loyal_months": _("Loyal: ordered in each of this many last months"),
    "bargain_aov_fen": _("Bargain hunter: average order value under"),
    "need_driven_quiet_days": _("Need-driven: no order for this many days"),
}


def threshold_rows() -> list[tuple[str, object]]:
    """The customer types' thresholds in use, labelled, money in yuan."""
    return [
        (str(THRESHOLD_LABELS.get(name, name)), as_yuan(value) if name.endswith("_fen") else value)
        for name, value in customers.type_thresholds().items()
    ]


class CustomerTypesPage(AnalyticsPage):
    section = "customers"
    title = _("Customer types")

    def build(self):
        slices = customers.type_split(user=self.request.user, now=self.period.end)
        table = Table(
            key="types",
            title=gettext("Customers by type"),
            columns=[
                Column("type", gettext("Type"), numeric=False),
                Column("count", gettext("Customers")),
                Column("share", gettext("Share")),
            ],
        )
        extra = {"thresholds": threshold_rows(), "charts": {}}
        if not any(s.count for s in slices):
            return [table], extra
        for s in slices:
            table.rows.append(
                [Cell(str(s.label)), Cell(s.count, href=s.list_url), Cell(as_percent(s.share))]
            )
        extra["charts"]["types"] = {
            "type": "bar",
            "categories": [str(s.label) for s in slices],
            "series": [{"name": gettext("Customers"), "data": [s.count for s in slices]}],
        }
        return [table], extra


# --- funnel ---------------------------------------------------------------------------------


class FunnelPage(AnalyticsPage):
    section = "funnel"
    title = _("Funnel")

    def build(self):
        steps = funnel(self.groups, self.period)
        table = Table(
            key="funnel",
            title=gettext("Funnel steps"),
            columns=[
                Column("step", gettext("Step"), numeric=False),
                Column("count", gettext("Count")),
                Column("from_previous", gettext("Of the step before")),
                Column("from_first", gettext("Of exposures")),
            ],
        )
        if not any(step.count for step in steps):
            return [table], {"charts": {}}
        for step in steps:
            table.rows.append(
                [
                    Cell(step.label),
                    Cell(step.count),
                    Cell(as_percent(step.from_previous) if step.from_previous else ""),
                    Cell(as_percent(step.from_first) if step.from_first else ""),
                ]
            )
        chart = {
            "type": "funnel",
            "data": [{"name": step.label, "value": step.count} for step in steps],
        }
        return [table], {"charts": {"funnel": chart}}


# --- customer value -------------------------------------------------------------------------


class CustomerValuePage(AnalyticsPage):
    section = "value"
    title = _("Customer value")

    def get(self, request, *args, **kwargs):
        # RFM layers and lifetime value are computed over every customer (analytics.customers
        # takes no login), so only the roles that see every customer may read them.
        if not user_sees_all(request.user):
            raise PermissionDenied("Customer value covers every customer: managers and analysts.")
        return super().get(request, *args, **kwargs)

    def build(self):
        now = self.period.end
        layers, values = customers.customer_value(now=now)
        rfm, rfm_chart = _rfm_table(layers)
        channels, channel_chart = _channel_value_table(values)
        charts = {"rfm": rfm_chart, "channels": channel_chart}
        return [rfm, channels], {"charts": {k: v for k, v in charts.items() if v}}


def _rfm_table(layers: list) -> tuple[Table, dict | None]:
    """Each RFM cell as customers.rfm_layers counts it, and a recency × frequency grid."""
    table = Table(
        key="rfm",
        title=gettext("RFM layers of buyers"),
        columns=[
            Column("recency", gettext("Recency (5: most recent)")),
            Column("frequency", gettext("Frequency (5: most orders)")),
            Column("monetary", gettext("Money (5: most spent)")),
            Column("customers", gettext("Buyers")),
            Column("share", gettext("Share of buyers")),
            Column("revenue", gettext("Revenue")),
        ],
    )
    if not layers:
        return table, None
    buyers = sum(cell.contacts for cell in layers)
    grid: dict[tuple[int, int], int] = {}
    for cell in layers:
        table.rows.append(
            [
                Cell(cell.recency),
                Cell(cell.frequency),
                Cell(cell.monetary),
                Cell(cell.contacts),
                Cell(as_percent(Ratio(cell.contacts, buyers))),
                Cell(as_yuan(cell.revenue_fen)),
            ]
        )
        # Money summed away: the usual R × F grid, the most valuable top right.
        spot = (cell.frequency - 1, 5 - cell.recency)
        grid[spot] = grid.get(spot, 0) + cell.contacts
    chart = {
        "type": "heatmap",
        "x": [gettext("F %(n)d") % {"n": n} for n in range(1, 6)],
        "y": [gettext("R %(n)d") % {"n": n} for n in range(5, 0, -1)],
        "data": [[x, y, n] for (x, y), n in sorted(grid.items())],
    }
    return table, chart


def _channel_value_table(values: list) -> tuple[Table, dict | None]:
    """Lifetime value per source channel (customers.channel_values), and a bar per channel."""
    table = Table(
        key="channels",
        title=gettext("Lifetime value by source channel"),
        columns=[
            Column("channel", gettext("Source channel"), numeric=False),
            Column("contacts", gettext("Customers")),
            Column("revenue", gettext("Revenue")),
            Column("cost", gettext("Recorded cost")),
            Column("acquisition_cost", gettext("Acquisition cost per customer")),
            Column("lifetime_value", gettext("Lifetime value per customer")),
        ],
    )
    if not values:
        return table, None
    for v in values:
        name = v.name if v.channel_id is not None else gettext("No source channel")
        table.rows.append(
            [
                Cell(name),
                Cell(v.contacts),
                Cell(as_yuan(v.revenue_fen)),
                Cell(as_yuan(v.cost_fen)),
                Cell(as_order_value(v.acquisition_cost_fen)),
                Cell(as_order_value(v.lifetime_value_fen)),
            ]
        )
    chart = {
        "type": "bar",
        "categories": [row[0].text for row in table.rows],
        "series": [
            {
                "name": gettext("Lifetime value per customer (yuan)"),
                "data": [_yuan_number(v.lifetime_value_fen.value) for v in values],
            }
        ],
    }
    return table, chart


def _yuan_number(fen) -> float | None:
    return None if fen is None else _number(Decimal(fen) / 100)


# --- costs ----------------------------------------------------------------------------------

TARGET_LABELS = {
    "group": _("Groups"),
    "channel": _("Channel codes"),
    "campaign": _("Campaigns"),
}
TARGET_KIND_LABELS = {
    "group": _("Group"),
    "channel": _("Channel code"),
    "campaign": _("Campaign"),
}
# The service's field names as this form calls them.
COST_FORM_FIELDS = {"target_kind": "target", "target_id": "target", "amount_fen": "amount"}


class CostForm(forms.Form):
    target = forms.ChoiceField(label=_("Cost of"))
    amount = forms.DecimalField(
        label=_("Amount (yuan)"),
        max_digits=12,
        decimal_places=2,
        help_text=_("Spread evenly over the days from the first to the last."),
    )
    first = forms.DateField(label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
    last = forms.DateField(label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))
    note = forms.CharField(label=_("Note"), required=False, max_length=costs.NOTE_MAX_LENGTH)
    # Set when the form is shown: submitting it twice records the cost once.
    key = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, targets: dict, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("", "---------")]
        for kind, queryset in targets.items():
            options = [
                (f"{kind}:{target.pk}", costs.target_name(kind, target))
                for target in queryset.order_by("name", "pk")
            ]
            if options:
                choices.append((str(TARGET_LABELS[kind]), options))
        self.fields["target"].choices = choices
        self.has_targets = len(choices) > 1


class CostsPage(RoleRequiredMixin, TemplateView):
    """投入: the costs recorded against the groups, channel codes and campaigns the login may
    see, newest first (downloadable), and a form to record one."""

    template_name = "analytics/costs.html"

    def get(self, request, *args, **kwargs):
        table = self._table()
        fmt = request.GET.get("format")
        if fmt:
            if fmt not in FORMATS or request.GET.get("table", table.key) != table.key:
                raise Http404("no such table or format")
            today = timezone.localdate()
            return table_download(table, fmt=fmt, filename=f"costs-{today}")
        return self._render(self._form(initial={"key": uuid.uuid4().hex}), table)

    def post(self, request, *args, **kwargs):
        form = self._form(data=request.POST)
        if form.is_valid():
            data = form.cleaned_data
            kind, _sep, target_id = data["target"].partition(":")
            try:
                costs.cost_record(
                    target_kind=kind,
                    target_id=int(target_id),
                    amount_fen=int(data["amount"] * 100),
                    first=data["first"],
                    last=data["last"],
                    note=data["note"],
                    user=request.user,
                    key=data["key"] or None,
                )
            except costs.CostError as exc:
                form.add_error(COST_FORM_FIELDS.get(exc.field, exc.field), str(exc))
            else:
                messages.success(request, gettext("Cost recorded."))
                return redirect("analytics:costs")
        return self._render(form, self._table())

    def _form(self, **kwargs) -> CostForm | None:
        if not can_write(self.request.user):
            return None
        return CostForm(targets=costs.cost_targets(self.request.user), **kwargs)

    def _table(self) -> Table:
        table = Table(
            key="costs",
            title=gettext("Recorded costs"),
            columns=[
                Column("recorded_at", gettext("Recorded at"), numeric=False),
                Column("target", gettext("Cost of"), numeric=False),
                Column("kind", gettext("Kind"), numeric=False),
                Column("first", gettext("From"), numeric=False),
                Column("last", gettext("To"), numeric=False),
                Column("amount", gettext("Amount")),
                Column("note", gettext("Note"), numeric=False),
                Column("recorded_by", gettext("Recorded by"), numeric=False),
            ],
        )
        for entry in costs.costs_visible_to(self.request.user):
            table.rows.append(
                [
                    Cell(timezone.localtime(entry.recorded_at).strftime("%Y-%m-%d %H:%M")),
                    Cell(entry.target_name),
                    Cell(str(TARGET_KIND_LABELS.get(entry.target_kind, entry.target_kind))),
                    Cell(entry.first.isoformat()),
                    Cell(entry.last.isoformat()),
                    Cell(as_yuan(entry.amount_fen)),
                    Cell(entry.note),
                    Cell(entry.recorded_by),
                ]
            )
        table.csv_url = f"{self.request.path}?format=csv&table={table.key}"
        table.xlsx_url = f"{self.request.path}?format=xlsx&table={table.key}"
        return table

    def _render(self, form: CostForm | None, table: Table):
        return self.render_to_response(
            self.get_context_data(
                active_nav="analytics",
                section="costs",
                page_title=gettext("Costs"),
                cost_form=form,
                shown_max=costs.COSTS_SHOWN,
                tables=[table],
            )
        )
