"""Reads behind the 数据 (analytics) pages and API: the metrics of a period for the groups,
channels and people a login may see, straight from analytics.metrics, and the daily series
of a slice from analytics.rollups.

Shared by the pages (analytics/pages.py) and the API (analytics/api.py) so both show the same
numbers. Each report calls the metric functions a fixed number of times per row (per group,
per channel), never per day: the daily series come from one query each.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from analytics import activity, comparison, group_snapshot, metrics, rollups
from analytics.metrics import ALL_GROUPS, DailyMean, Groups, Period, Ratio
from analytics.models import DailyRollup
from contacts.models import ChannelCode
from groups.models import Group
from groups.selectors import channel_codes_visible_to, groups_visible_to, user_sees_all, user_staff

# The default range: the last 30 whole Shanghai days, ending yesterday (today is not over).
DEFAULT_DAYS = 30
# Longest range a page or the API computes in one go: the daily series are one row a day.
MAX_DAYS = 366
# How many weeks or days after joining a cohort triangle follows by default.
COHORT_HORIZON = 12

# PRODUCT.md "Stage focus": the columns a group's stage puts first.
STAGE_FOCUS = {
    Group.Stage.FOUNDING: ("joins", "leave_rate"),
    Group.Stage.ACTIVATION: ("interaction_rate", "messages_per_member"),
    Group.Stage.RETENTION: ("retention",),
    Group.Stage.MONETIZATION: ("conversion", "average_order_value", "roi"),
    Group.Stage.PROPAGATION: ("referral_rate",),
}


def default_period(*, now: datetime | None = None) -> Period:
    yesterday = timezone.localdate(now or timezone.now(), metrics.SHANGHAI) - timedelta(days=1)
    return Period(yesterday - timedelta(days=DEFAULT_DAYS - 1), yesterday)


def groups_for(user) -> Groups:
    """The slice a login's numbers cover: every group, or an operator's own groups."""
    if user_sees_all(user):
        return ALL_GROUPS
    return Groups(tuple(groups_visible_to(user).order_by("pk").values_list("pk", flat=True)))


# --- overview -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Overview:
    members_start: int
    members_end: int
    leave_rate: Ratio
    retention: Ratio
    interaction_rate: DailyMean
    messages_per_member: DailyMean
    conversion: Ratio
    average_order_value: Ratio  # fen per buyer
    repurchase_rate: Ratio
    referral_rate: Ratio
    block_rate: Ratio

    @property
    def has_data(self) -> bool:
        """Anyone to count: a member during P (the leave rate's denominator) or a contact
        for the block rate."""
        return bool(
            self.leave_rate.denominator or self.block_rate.denominator or self.block_rate.numerator
        )


def _block_rate(user, period: Period) -> Ratio:
    if user_sees_all(user):
        return metrics.block_rate(period)
    staff = user_staff(user)
    # A login without a WeCom identity has no contacts of its own: nothing to divide.
    return Ratio(0, 0) if staff is None else metrics.block_rate(period, staff=staff.pk)


def overview(*, user, period: Period) -> Overview:
    """The headline metrics of every group the login may see, as one slice.

    For every group (managers, analysts) the people figures come from per-customer activity
    and the daily ones from the "all" rollups, both kept equal to analytics.metrics by
    their own tests; an operator's own groups are few enough for the metrics themselves."""
    groups = groups_for(user)
    if groups == ALL_GROUPS:
        everyone = activity.everyone(period)
        return Overview(
            members_start=everyone.members_start,
            members_end=everyone.members_end,
            leave_rate=everyone.leave_rate,
            retention=everyone.retention,
            interaction_rate=rollups.interaction_rate(rollups.ALL, period),
            messages_per_member=rollups.messages_per_member(rollups.ALL, period),
            conversion=everyone.conversion,
            average_order_value=everyone.average_order_value,
            repurchase_rate=everyone.repurchase_rate,
            referral_rate=everyone.referral_rate,
            block_rate=_block_rate(user, period),
        )
    orders = metrics.orders(groups, period)
    return Overview(
        members_start=metrics.members_at(groups, period.start),
        members_end=metrics.members_at(groups, period.end),
        leave_rate=metrics.leave_rate(groups, period),
        retention=metrics.retention(groups, period),
        interaction_rate=metrics.interaction_rate(groups, period),
        messages_per_member=metrics.messages_per_member(groups, period),
        conversion=metrics.conversion(groups, period, buyers=orders.buyers),
        average_order_value=orders.average_order_value,
        repurchase_rate=orders.repurchase_rate,
        referral_rate=metrics.referral_rate(groups, period),
        block_rate=_block_rate(user, period),
    )


# --- groups ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupFigures:
    group: Group
    members_start: int
    members_end: int
    joins: int  # people who became members during P without being members at its start
    leave_rate: Ratio
    retention: Ratio
    interaction_rate: DailyMean
    messages_per_member: DailyMean
    conversion: Ratio
    average_order_value: Ratio
    repurchase_rate: Ratio
    roi: Ratio
    referral_rate: Ratio

    @property
    def focus(self) -> tuple[str, ...]:
        return STAGE_FOCUS.get(self.group.stage, ())


def _figures(group: Group, row: comparison.GroupRow) -> GroupFigures:
    return GroupFigures(
        group=group,
        members_start=row.members_start,
        members_end=row.members_end,
        joins=row.joins,
        leave_rate=row.leave_rate,
        retention=row.retention,
        interaction_rate=row.interaction_rate,
        messages_per_member=row.messages_per_member,
        conversion=row.conversion,
        average_order_value=row.orders.average_order_value,
        repurchase_rate=row.orders.repurchase_rate,
        roi=row.roi,
        referral_rate=row.referral_rate,
    )


def group_figures(group: Group, period: Period) -> GroupFigures:
    return _figures(group, comparison.group_rows([group.pk], period)[group.pk])


def live_groups_for(user):
    """The live groups the login may see (operators: their own), by name."""
    return groups_visible_to(user).filter(dismissed_at__isnull=True).order_by("name", "pk")


def group_comparison(*, user, period: Period, groups=None) -> list[GroupFigures]:
    """One row per live group the login may see, by name, or per group of `groups` (a page
    of live_groups_for's) in their order; all of them computed together
    (analytics.comparison)."""
    groups = list(live_groups_for(user) if groups is None else groups)
    rows = comparison.group_rows([group.pk for group in groups], period)
    return [_figures(group, rows[group.pk]) for group in groups]


def group_comparison_to_sort(*, user, period: Period, parts: frozenset[str]) -> list[GroupFigures]:
    """Every live group the login may see, by name, with what sorting by a figure made of
    `parts` needs: the period's stored figures while they hold (analytics.group_snapshot),
    those parts computed for the groups they lack. A range with none is stored in the
    background for the next sort or page."""
    groups = list(live_groups_for(user))
    ids = [group.pk for group in groups]
    rows = group_snapshot.snapshot_rows(period, ids)
    if rows is None:
        group_snapshot.snapshot_request(period)
        rows = {}
    missing = [gid for gid in ids if gid not in rows]
    if missing:
        rows.update(comparison.group_rows(missing, period, parts=parts))
    return [_figures(group, rows[group.pk]) for group in groups]


# --- channels -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelFigures:
    channel: ChannelCode
    join_rate: Ratio  # joins ÷ exposures
    roi: Ratio

    @property
    def exposures(self) -> int:
        return int(self.join_rate.denominator)

    @property
    def joins(self) -> int:
        return int(self.join_rate.numerator)


def channel_comparison(*, user, period: Period) -> list[ChannelFigures]:
    """One row per channel code the login may see, active ones first, by name."""
    codes = list(channel_codes_visible_to(user).order_by("-is_active", "name", "pk"))
    rates = metrics.channel_rates([code.pk for code in codes], period)
    return [
        ChannelFigures(channel=code, join_rate=rates[code.pk][0], roi=rates[code.pk][1])
        for code in codes
    ]


# --- daily series (from the rollups) --------------------------------------------------------


class SliceNotAllowed(PermissionError):
    """A slice outside what the login may read (an operator asking for someone else's)."""


def default_slice(user) -> str:
    """Managers and analysts: every group; an operator: the groups they own."""
    if user_sees_all(user):
        return rollups.ALL
    staff = user_staff(user)
    if staff is None:
        raise SliceNotAllowed("a login without a WeCom identity owns no groups")
    return rollups.owner_slice(staff.pk)


def slice_check(user, slice: str) -> None:
    """Raise ValueError for a malformed slice, SliceNotAllowed for one the login may not read:
    an operator reads only their own groups (group:<id>), the groups they own as a whole
    (owner:<their staff id>) and their channel codes (channel:<id>)."""
    if not isinstance(slice, str) or not rollups.SLICE_PATTERN.fullmatch(slice):
        raise ValueError(
            "expected 'all', 'group:<id>', 'type:<group type>', 'owner:<staff id>' or "
            "'channel:<id>'"
        )
    kind, _sep, target = slice.partition(":")
    if kind == "type" and target not in Group.Type.values:
        raise ValueError(f"the group type is one of {', '.join(Group.Type.values)}")
    if user_sees_all(user):
        return
    staff = user_staff(user)
    allowed = {
        "group": lambda: groups_visible_to(user).filter(pk=int(target)).exists(),
        "owner": lambda: staff is not None and int(target) == staff.pk,
        "channel": lambda: channel_codes_visible_to(user).filter(pk=int(target)).exists(),
    }
    if kind not in allowed or not allowed[kind]():
        raise SliceNotAllowed(f"{slice} is not one of your groups, owner slice or channel codes")


def daily_series(*, user, slice: str, period: Period) -> dict[date, DailyRollup]:
    """Each day of P with the slice's figures (members at the end of the day, joins, leaves,
    speakers, messages, buyers, orders, revenue, exposures), after checking the login may
    read the slice. One query, whatever the length of P."""
    slice_check(user, slice)
    return rollups.daily_series(slice, period)


def daily_ratios(row: DailyRollup) -> dict[str, Ratio]:
    """The ratios one day's figures give exactly (each is the metric for that one day)."""
    return {
        "interaction_rate": Ratio(row.speakers, row.members_end),
        "messages_per_member": Ratio(row.messages, row.members_end),
        "average_order_value": Ratio(row.revenue_fen, row.buyers),
        "join_rate": Ratio(row.joins, row.exposures),
    }


# --- formatting shared by the pages and the exports -----------------------------------------

UNDEFINED = "—"


def _count(n: int | Decimal) -> str:
    return f"{int(n):,d}" if Decimal(n) == int(n) else f"{Decimal(n):,.2f}"


def as_percent(ratio: Ratio | None) -> str:
    """12.3%（37 / 301）, or — when undefined."""
    if ratio is None or ratio.value is None:
        return UNDEFINED
    return f"{ratio.value * 100:.1f}%（{_count(ratio.numerator)} / {_count(ratio.denominator)}）"


def as_yuan(fen: int | Decimal | None) -> str:
    if fen is None:
        return UNDEFINED
    amount = (Decimal(fen) / 100).quantize(Decimal("0.01"))
    return f"{'-' if amount < 0 else ''}¥{abs(amount):,.2f}"


def as_order_value(ratio: Ratio) -> str:
    """Average order value in yuan: ¥123.45（¥1,234.50 / 10）."""
    if ratio.value is None:
        return UNDEFINED
    return f"{as_yuan(ratio.value)}（{as_yuan(ratio.numerator)} / {_count(ratio.denominator)}）"


def as_roi(ratio: Ratio) -> str:
    """Sales per yuan of cost: 2.50（¥250.00 / ¥100.00）."""
    if ratio.value is None:
        return UNDEFINED
    return f"{ratio.value:.2f}（{as_yuan(ratio.numerator)} / {as_yuan(ratio.denominator)}）"


def as_per_member(ratio: Ratio) -> str:
    """A per-member figure with what it divides: 1.25（5 / 4）."""
    if ratio.value is None:
        return UNDEFINED
    return f"{ratio.value:.2f}（{_count(ratio.numerator)} / {_count(ratio.denominator)}）"


def as_daily_percent(mean: DailyMean) -> str:
    return UNDEFINED if mean.value is None else f"{mean.value * 100:.1f}%"


def as_daily_number(mean: DailyMean) -> str:
    return UNDEFINED if mean.value is None else f"{mean.value:.2f}"
