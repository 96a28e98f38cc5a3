"""The plain, day-by-day definition of the business calendar: the oracle `models.calendar` is
tested against.

It walks one local day at a time, asks zoneinfo where each local day ends and the `holidays`
package whether each day is a holiday, and precomputes nothing. Slow, and meant to be obviously
right; the semantics are those in the docstring of `models.calendar`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays as holidays_pkg
from dateutil.easter import easter

from models.calendar import Closure, Duration
from models.errors import CalendarError

Holidays = holidays_pkg.HolidayBase | Mapping[date, str]


def is_business_day(
    day: date, *, weekend: set[int], holidays: Holidays, closures: set[date]
) -> bool:
    """Not a weekend day (0 is Monday), not a public holiday, not a closure."""
    return day.weekday() not in weekend and day not in holidays and day not in closures


def closure_covers(closure: Closure, day: date) -> bool:
    """Whether `closure` closes `day`, asked of that day alone (the calendar expands spans)."""
    if closure.dated is not None:
        return closure.dated[0] <= day <= closure.dated[1]
    if closure.every_year is not None:
        first, last = closure.every_year
        here = (day.month, day.day)
        if first <= last:
            return first <= here <= last
        return here >= first or here <= last  # across the year end
    assert closure.easter is not None
    after_easter: int = (day - easter(day.year)).days
    return closure.easter[0] <= after_easter <= closure.easter[1]


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    if instant.tzinfo is None:
        raise CalendarError(f"{instant.isoformat()} has no timezone: pass an aware datetime")
    return instant.astimezone(tz).date()


def end_of_day(day: date, tz: ZoneInfo) -> datetime:
    """The last whole second before the next local midnight (23:59:59 on an ordinary day)."""
    # A midnight that a DST jump skips resolves, with fold=0, to the instant of the jump.
    next_midnight = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz)
    return (next_midnight.astimezone(UTC) - timedelta(seconds=1)).astimezone(tz)


def reference_add(
    *,
    start: datetime,
    duration: str,
    timezone: str,
    weekend: set[int],
    holidays: Holidays,
    closures: set[date],
    suspended: Collection[date] = frozenset(),
) -> datetime:
    """The instant `duration` after `start`, counted one day at a time; calendar days skip the
    `suspended` ones (days of a closure that suspends time limits)."""
    d = Duration.parse(duration)
    tz = ZoneInfo(timezone)
    day = local_date(start, tz)
    if d.unit == "h":
        return (start.astimezone(UTC) + timedelta(hours=d.amount)).astimezone(tz)
    counted = 0
    while counted < d.amount:
        day += timedelta(days=1)
        if d.unit == "d":
            counted += day not in suspended
        elif is_business_day(day, weekend=weekend, holidays=holidays, closures=closures):
            counted += 1
    return end_of_day(day, tz)


def reference_business_days_between(
    *,
    a: datetime,
    b: datetime,
    timezone: str,
    weekend: set[int],
    holidays: Holidays,
    closures: set[date],
) -> int:
    """Business days after a's local date up to and including b's (negative if b is earlier)."""
    tz = ZoneInfo(timezone)
    first, last = local_date(a, tz), local_date(b, tz)
    sign = 1
    if last < first:
        first, last, sign = last, first, -1
    count = 0
    day = first
    while day < last:
        day += timedelta(days=1)
        if is_business_day(day, weekend=weekend, holidays=holidays, closures=closures):
            count += 1
    return sign * count
