"""The rules of conduct in time: quiet hours, public holidays, push budgets (PRODUCT.md)."""

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import chinese_calendar
from django.conf import settings

from sop.models import Plan, SkipReason

SHANGHAI = ZoneInfo("Asia/Shanghai")
logger = logging.getLogger(__name__)


def local_day(at: datetime) -> date:
    return at.astimezone(SHANGHAI).date()


def week_start(day: date) -> date:
    """The Monday of the day's week: budgets count per Monday-to-Sunday week."""
    return day - timedelta(days=day.weekday())


def at_local(day: date, clock: time) -> datetime:
    return datetime.combine(day, clock, tzinfo=SHANGHAI)


@dataclass(frozen=True)
class Caps:
    """Pushes one receiver may get: our budget per day and week, and WeCom's own cap."""

    per_day: int
    per_week: int
    wecom_per_day: int

    @property
    def day(self) -> int:
        return min(self.per_day, self.wecom_per_day)

    @property
    def day_reason(self) -> str:
        """Which rule a receiver over `day` runs into, to record the right reason."""
        if self.wecom_per_day < self.per_day:
            return SkipReason.WECOM_CAP
        return SkipReason.BUDGET_DAY


def contact_caps() -> Caps:
    return Caps(
        settings.SOP_CONTACT_PUSHES_PER_DAY,
        settings.SOP_CONTACT_PUSHES_PER_WEEK,
        settings.WECOM_MASS_MESSAGES_PER_DAY,
    )


def group_caps() -> Caps:
    return Caps(
        settings.SOP_GROUP_PUSHES_PER_DAY,
        settings.SOP_GROUP_PUSHES_PER_WEEK,
        settings.WECOM_MASS_MESSAGES_PER_DAY,
    )


def quiet_hours() -> tuple[time, time] | None:
    return _quiet_hours(settings.SOP_QUIET_HOURS)


@cache
def _quiet_hours(setting: str) -> tuple[time, time] | None:
    if not setting:
        return None
    start, end = (time.fromisoformat(part) for part in setting.split("-"))
    return (start, end) if start != end else None


def after_quiet_hours(at: datetime) -> datetime:
    """`at`, or the end of the quiet hours it falls in (held until morning, never dropped)."""
    window = quiet_hours()
    if window is None:
        return at
    start, end = window
    local = at.astimezone(SHANGHAI)
    clock = local.time()
    if start > end:  # across midnight, e.g. 22:00–08:00
        if clock >= start:
            return at_local(local.date() + timedelta(days=1), end)
        if clock < end:
            return at_local(local.date(), end)
    elif start <= clock < end:
        return at_local(local.date(), end)
    return at


@cache
def public_holiday(day: date) -> str | None:
    """The public holiday's name (e.g. "National Day"), or None on an ordinary day.

    Weekends are not holidays here: plans choose their weekdays themselves. Years the
    chinese-calendar package has no data for yet count as having no holidays (logged).
    """
    try:
        is_holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        logger.warning("no public holiday data for %s; treated as an ordinary day", day.year)
        return None
    return name if is_holiday and name else None


def day_after_holidays(day: date) -> date:
    while public_holiday(day):
        day += timedelta(days=1)
    return day


@dataclass(frozen=True)
class Timing:
    """When a slot actually goes out, and why it moved or is skipped."""

    due_at: datetime
    reason: str = ""  # SkipReason, or "" when the slot goes out as planned
    skip: bool = False

    @property
    def due_day(self) -> date:
        return local_day(self.due_at)

    @property
    def due_week(self) -> date:
        return week_start(self.due_day)


def timing(slot_at: datetime, holiday_policy: str) -> Timing:
    """Apply the plan's holiday policy, then quiet hours, to a slot."""
    due, reason = slot_at, ""
    day = local_day(slot_at)
    if holiday_policy != Plan.HolidayPolicy.SEND and public_holiday(day):
        if holiday_policy == Plan.HolidayPolicy.SKIP:
            return Timing(slot_at, SkipReason.HOLIDAY, skip=True)
        shifted = day_after_holidays(day)
        due = at_local(shifted, slot_at.astimezone(SHANGHAI).time())
        reason = SkipReason.HOLIDAY_SHIFTED
    held = after_quiet_hours(due)
    if held != due and not reason:
        reason = SkipReason.QUIET_HOURS
    return Timing(held, reason)
