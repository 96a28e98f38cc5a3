"""Business calendars: deadlines in business days, calendar days or hours, per country and holder.

Semantics (the tests hold the code to them):

- "N business days from t" (`Nbd`) ends at the end (23:59:59 local) of the N-th business day
  strictly after t's local date, in the calendar's timezone. A business day is a day that is
  not a weekend day, not a public holiday and not a closure. A holiday that falls on a weekend
  closes nothing extra; where the law moves it to a weekday, the `holidays` package lists the
  observed day and that day is closed.
- "N calendar days from t" (`Nd`) ends at the end of the N-th counted calendar day after t's
  local date, whether or not that day is a business day (EU instruments count this way). Every
  day counts except the days of a suspending closure (Italy's August suspension of judicial time
  limits): 30d from 20 July ends on 19 September (11 days of July, 19 of September), and a count
  that starts inside the suspension counts its first day on the day after it ends.
- "N hours from t" (`Nh`) runs on the wall clock: exactly N elapsed hours, across nights,
  weekends and DST changes alike.
- A closure closes days once (dated), every year on fixed month-days (a range may cross the year
  end) or every year around Easter; each carries the reason `skipped` shows.
- `business_days_between(a, b)` counts the business days after a's local date up to and
  including b's local date, so `business_days_between(t, add(t, "Nbd")) == N`.

The fast path precomputes, for every day of the years in use, whether it is a business day,
the running count of business days (and, where a closure suspends calendar-day deadlines, of
counted calendar days), and the UTC instants of local midnight and end of day. A
deadline is then two look-ups, in plain Python (`add`) or vectorised over NumPy arrays
(`add_many`). The years are built on first use, a few at a time around the dates asked, up to
FIRST_YEAR..LAST_YEAR: a command about a 2026 case asks the `holidays` package for 2025-2027, not
for ninety years. Business-day ranks keep their values as the years grow, so ranks read at
different times can still be subtracted. `models.calendar_reference` holds the plain day-by-day
definition it is tested against.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache, partial
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from models.errors import CalendarError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

HolidaySource = Callable[[int, int], Mapping[date, str]]
"""The public holidays of the years `first..last` (inclusive), by day."""

Unit = Literal["bd", "d", "h"]
_DURATION_RE = re.compile(r"^\s*(\d{1,6})\s*(bd|d|h)\s*$")
UNIT_WORDS: dict[str, str] = {"bd": "business days", "d": "calendar days", "h": "hours"}
FIRST_YEAR = 1990
LAST_YEAR = 2080
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
MAX_YEARS = 5
MAX_AMOUNT = {"bd": 260 * MAX_YEARS, "d": 366 * MAX_YEARS, "h": 24 * 366 * MAX_YEARS}
"""The longest deadline that makes sense: a `999999d` SLA would validate and then break every
registration, its due date far past the calendar's range."""
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True, slots=True)
class Duration:
    """A deadline length: `10bd`, `30d` or `48h`."""

    amount: int
    unit: Unit

    @classmethod
    def parse(cls, text: str) -> Duration:
        return _parse_duration(text)

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    def words(self) -> str:
        return f"{self.amount} {UNIT_WORDS[self.unit]}"

    def scaled(self, share: float) -> Duration:
        """This duration times `share`, rounded up to a whole unit (never below 1)."""
        return Duration(max(1, -(-int(self.amount * share * 1000) // 1000)), self.unit)


@lru_cache(maxsize=4096)
def _parse_duration(text: str) -> Duration:
    match = _DURATION_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise CalendarError(
            f"{text!r} is not a duration: write a whole number followed by bd (business days), "
            "d (calendar days) or h (hours), e.g. 10bd, 30d, 48h"
        )
    amount, unit = int(match.group(1)), match.group(2)
    if amount < 1:
        raise CalendarError(f"{text!r}: a duration must be at least 1")
    if amount > MAX_AMOUNT[unit]:
        raise CalendarError(
            f"{text!r}: at most {MAX_AMOUNT[unit]}{unit} (about {MAX_YEARS} years); a longer "
            "deadline is no deadline, and could not be counted on the calendar"
        )
    return Duration(amount, unit)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SkippedDay:
    day: date
    reason: str


@dataclass(frozen=True, slots=True)
class Closure:
    """Days closed for one reason: once (`dated`), every year on the same month-days
    (`every_year`), or every year around Easter (`easter`); exactly one of the three is set.

    Every closure closes business days. One that `suspends` also stops calendar-day deadlines:
    its days are not counted (l. 742/1969 art. 1, Italy's August suspension).
    """

    reason: str
    dated: tuple[date, date] | None = None
    every_year: tuple[tuple[int, int], tuple[int, int]] | None = None
    """(month, day) of the first and the last day; a last before the first crosses the year end.
    February 29 is not allowed: it would close nothing three years in four."""
    easter: tuple[int, int] | None = None
    """Days from (Western) Easter Sunday of the first and the last day: (-3, 0) is Maundy
    Thursday to Easter Sunday."""
    suspends: bool = False

    def spans(self, first_year: int, last_year: int) -> Iterator[tuple[date, date]]:
        """The closed periods (first and last day) touching the years first_year..last_year."""
        if self.dated is not None:
            yield self.dated
        elif self.every_year is not None:
            (m1, d1), (m2, d2) = self.every_year
            wraps = int((m2, d2) < (m1, d1))
            for year in range(first_year - wraps, last_year + 1):
                yield date(year, m1, d1), date(year + wraps, m2, d2)
        elif self.easter is not None:
            for year in range(first_year, last_year + 1):
                sunday = easter_sunday(year)
                yield (
                    sunday + timedelta(days=self.easter[0]),
                    sunday + timedelta(days=self.easter[1]),
                )

    def ordinals(self, first_year: int, last_year: int) -> Iterator[int]:
        """The closed days of the years first_year..last_year, as ordinals."""
        low, high = date(first_year, 1, 1).toordinal(), date(last_year, 12, 31).toordinal()
        for first, last in self.spans(first_year, last_year):
            yield from range(max(first.toordinal(), low), min(last.toordinal(), high) + 1)


def easter_sunday(year: int) -> date:
    """Western (Gregorian) Easter Sunday of `year`."""
    from dateutil.easter import easter

    sunday: date = easter(year)
    return sunday


class Calendar:
    """A business calendar over the years FIRST_YEAR..LAST_YEAR, in one timezone."""

    def __init__(
        self,
        *,
        timezone: str,
        weekend: Iterable[int],
        holidays: Mapping[date, str] | HolidaySource,
        closures: Iterable[Closure] | Mapping[date, str],
        first_year: int = FIRST_YEAR,
        last_year: int = LAST_YEAR,
    ) -> None:
        self.timezone = timezone
        self.tz = ZoneInfo(timezone)
        self.weekend = frozenset(weekend)
        self.first = date(first_year, 1, 1)
        self.last = date(last_year, 12, 31)
        self._holidays: HolidaySource = (
            holidays if callable(holidays) else partial(_holidays_in, dict(holidays))
        )
        if isinstance(closures, Mapping):
            closures = [Closure(name, dated=(day, day)) for day, name in closures.items()]
        self._closures = tuple(closures)
        self._suspends = any(c.suspends for c in self._closures)
        self._holiday_years: dict[int, dict[date, str]] = {}
        self._years: _Years | None = None
        self._growing = threading.Lock()
        # Local midnight of the first day and of the day after the last: the calendar's range.
        self._start = _year_midnights(timezone, first_year)[0]
        self._end = _year_midnights(timezone, last_year)[-1]

    # -- the years built so far ------------------------------------------------------------

    def _covering(self, first: int, last: int) -> _Years:
        """The tables over at least the years first..last (clamped to the calendar's range)."""
        first, last = max(first, self.first.year), min(last, self.last.year)
        years = self._years
        if years is not None and years.first <= first and last <= years.last:
            return years
        with self._growing:
            years = self._years
            if years is not None:
                if years.first <= first and last <= years.last:
                    return years
                first, last = min(first, years.first), max(last, years.last)
            years = self._build(first, last, years)
            self._years = years
            return years

    def _build(self, first: int, last: int, before: _Years | None) -> _Years:
        missing = [y for y in range(first, last + 1) if y not in self._holiday_years]
        if missing:
            # One look-up for the years not asked yet: those before the built ones, those after.
            fresh: dict[int, dict[date, str]] = {year: {} for year in missing}
            for low, high in _runs(missing):
                for day, name in self._holidays(low, high).items():
                    if day.year in fresh:
                        fresh[day.year][day] = name
            self._holiday_years.update(fresh)
        base = date(first, 1, 1).toordinal()
        n = date(last, 12, 31).toordinal() - base + 1
        reasons: dict[int, str] = {}
        for year in range(first, last + 1):
            for day, name in self._holiday_years[year].items():
                reasons[day.toordinal()] = f"{name} (public holiday)"
        closed: dict[int, str] = {}
        suspended: set[int] = set()
        for closure in self._closures:
            for ordinal in closure.ordinals(first, last):
                closed[ordinal] = closure.reason  # a later closure (the authority's) names the day
                if closure.suspends:
                    suspended.add(ordinal)
        for ordinal, reason in closed.items():
            reasons.setdefault(ordinal, reason)
        weekday = date(first, 1, 1).weekday()
        is_open = [
            (weekday + i) % 7 not in self.weekend and base + i not in reasons for i in range(n)
        ]
        counted: list[bool] | None = None
        if self._suspends:
            counted = [base + i not in suspended for i in range(n)]
        midnight: list[int] = []
        for year in range(first, last + 1):
            midnight += _year_midnights(self.timezone, year)[:-1]
        midnight.append(_year_midnights(self.timezone, last)[-1])
        rank = list(accumulate(map(int, is_open)))
        offset = 0
        if before is not None:
            # Keep the ranks already handed out: the old first day keeps its rank.
            at = before.base - base
            offset = before.rank[0] + before.offset - rank[at]
        return _Years(
            first=first,
            last=last,
            base=base,
            is_open=is_open,
            rank=rank,
            offset=offset,
            bdays=[i for i, o in enumerate(is_open) if o],
            crank=None if counted is None else list(accumulate(map(int, counted))),
            cdays=None if counted is None else [i for i, c in enumerate(counted) if c],
            midnight=midnight,
            eod=[m - 1 for m in midnight[1:]],
            reasons=reasons,
        )

    def _locate(self, *instants: float) -> tuple[_Years, list[int]] | None:
        """The tables covering every instant, and each instant's day index in them; None if
        one is outside the calendar's range."""
        if any(not self._start <= ts < self._end for ts in instants):
            return None
        years = self._years
        if years is None or not all(years.start <= ts < years.end for ts in instants):
            low, high = _year_of(min(instants)), _year_of(max(instants))
            years = self._covering(low - 1, high + 1)
        return years, [bisect_right(years.midnight, ts) - 1 for ts in instants]

    def _later(self, years: _Years, index: int, days: int) -> tuple[_Years, int] | None:
        """Tables reaching at least `days` days past day `index`, with `index` moved into
        them; None when that runs past the calendar's last year."""
        if years.last >= self.last.year:
            return None
        grown = self._covering(years.first, years.last + max(2, days // 250 + 1))
        return grown, index + years.base - grown.base

    def _index(self, instant: datetime) -> tuple[_Years, int]:
        if instant.tzinfo is None:
            raise CalendarError(f"{instant.isoformat()} has no timezone: pass an aware datetime")
        ts = instant.timestamp()
        years = self._years
        # The hot path (the engine, the simulator): the years are built already.
        if years is not None and years.start <= ts < years.end:
            return years, bisect_right(years.midnight, ts) - 1
        found = self._locate(ts)
        if found is None:
            raise CalendarError(
                f"{instant.isoformat()} is outside this calendar's range "
                f"({self.first.year}-{self.last.year})"
            )
        years, (i,) = found
        return years, i

    # -- single instants -------------------------------------------------------------------

    def local_date(self, instant: datetime) -> date:
        years, i = self._index(instant)
        return date.fromordinal(years.base + i)

    def is_business_day(self, day: date) -> bool:
        years, i = self._years, day.toordinal()
        if years is not None and 0 <= i - years.base < len(years.is_open):
            return years.is_open[i - years.base]  # the hot path: the year is built already
        if not self.first <= day <= self.last:
            raise CalendarError(f"{day} is outside this calendar's range")
        years = self._covering(day.year - 1, day.year + 1)
        return years.is_open[i - years.base]

    def add(self, start: datetime, duration: str | Duration) -> datetime:
        """The instant `duration` after `start` (see the module docstring for the semantics)."""
        d = duration if isinstance(duration, Duration) else _parse_duration(duration)
        years, i = self._index(start)
        if d.unit == "h":
            # In UTC: aware + timedelta in the start's own zone would add wall-clock hours.
            return (start.astimezone(UTC) + timedelta(hours=d.amount)).astimezone(self.tz)
        target = self._target(years, i, d)
        if target is None:
            raise CalendarError(f"{d} from {start.isoformat()} runs past {self.last.year}")
        return datetime.fromtimestamp(target, self.tz)

    def _target(self, years: _Years, i: int, d: Duration) -> int | None:
        """The end (UTC epoch seconds) of the day `d` after day `i`: the deadline."""
        while True:
            if d.unit == "d" and years.cdays is None:
                target = i + d.amount
            else:
                # The amount-th counted day after day i: business days, or calendar days less
                # the suspended ones.
                rank, days = (years.rank, years.bdays) if d.unit == "bd" else years.counted()
                k = rank[i] + d.amount - 1
                target = days[k] if k < len(days) else len(years.eod)
            if target < len(years.eod):
                return years.eod[target]
            grown = self._later(years, i, d.amount if d.unit == "d" else d.amount * 7 // 5)
            if grown is None:
                return None
            years, i = grown

    def add_ts(self, start: float, duration: Duration) -> int:
        """`add` on UTC epoch seconds, for hot paths that need no datetime objects."""
        if duration.unit == "h":
            return int(start) + 3600 * duration.amount
        years = self._years
        if years is not None and years.start <= start < years.end:
            i = bisect_right(years.midnight, start) - 1
        else:
            found = self._locate(start)
            if found is None:
                raise CalendarError(f"epoch {start} is outside this calendar's range")
            years, (i,) = found
        target = self._target(years, i, duration)
        if target is None:
            raise CalendarError(f"{duration} from epoch {start} runs past {self.last.year}")
        return target

    def business_days_between(self, a: datetime, b: datetime) -> int:
        """Business days after a's local date up to and including b's (negative if b < a)."""
        at_a, i = self._index(a)
        at_b, j = self._index(b)
        # Ranks keep their values as the tables grow, so two tables' ranks still subtract.
        return (at_b.rank[j] + at_b.offset) - (at_a.rank[i] + at_a.offset)

    def _pair(self, a: datetime, b: datetime) -> tuple[_Years, list[int]]:
        self._index(b)  # refuses a naive or out-of-range instant with its own message
        found = self._locate(a.timestamp(), b.timestamp())
        assert found is not None
        return found

    def skipped(self, start: datetime, end: datetime) -> list[SkippedDay]:
        """The non-business days after start's local date up to end's, each with its reason."""
        self._index(start)
        years, (first, last) = self._pair(start, end)
        out = []
        for i in range(first + 1, last + 1):
            if not years.is_open[i]:
                day = date.fromordinal(years.base + i)
                reason = years.reasons.get(years.base + i)
                out.append(SkippedDay(day, reason or f"{WEEKDAY_NAMES[day.weekday()]} (weekend)"))
        return out

    # -- many instants at once (the clock sweep, the simulator, the benchmark) --------------

    def _many(self, *instants: npt.NDArray[np.int64]) -> _Years:
        """The tables covering every instant of the arrays; refused if one is out of range."""
        sized = [a for a in instants if a.size]
        if any(a.min() < self._start or a.max() >= self._end for a in sized):
            raise CalendarError(
                f"an instant is outside this calendar's range ({self.first.year}-{self.last.year})"
            )
        if not sized:
            return self._years or self._covering(self.first.year, self.first.year)
        low = _year_of(int(min(a.min() for a in sized)))
        high = _year_of(int(max(a.max() for a in sized)))
        return self._covering(low - 1, high + 1)

    def add_many(
        self, starts: npt.NDArray[np.int64], duration: str | Duration
    ) -> npt.NDArray[np.int64]:
        """`add` over an array of UTC epoch seconds, returning UTC epoch seconds."""
        import numpy as np

        d = duration if isinstance(duration, Duration) else _parse_duration(duration)
        years = self._many(starts)
        if d.unit == "h":
            return starts + 3600 * d.amount
        days = d.amount if d.unit == "d" else d.amount * 7 // 5
        while True:
            arrays = years.arrays()
            idx = np.searchsorted(arrays.midnight, starts, side="right") - 1
            if d.unit == "d" and arrays.cdays is None:
                target = idx + d.amount
            else:
                if d.unit == "bd":
                    rank, counted = arrays.rank, arrays.bdays
                else:
                    assert arrays.crank is not None and arrays.cdays is not None
                    rank, counted = arrays.crank, arrays.cdays
                k = rank[idx] + (d.amount - 1)
                if k.size and k.max() >= len(counted):
                    target = np.full_like(k, len(arrays.eod))
                else:
                    target = counted[k]
            if not target.size or target.max() < len(arrays.eod):
                result: npt.NDArray[np.int64] = arrays.eod[target]
                return result
            grown = self._later(years, 0, days)
            if grown is None:
                raise CalendarError(f"{d} runs past {self.last.year}")
            years = grown[0]

    def _day_index_many(
        self, years: _Years, instants: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        import numpy as np

        # A local day is 24 hours give or take a DST hour, so the day an instant falls on is
        # its whole days since the first midnight, give or take one: a guess, two corrections,
        # and a binary search only for instants the guess still misses (a zone that skipped a
        # day). Ten times faster than searching every instant.
        midnight = years.arrays().midnight
        last = midnight.size - 2
        guess = np.clip((instants - midnight[0]) // 86_400, 0, last)
        guess -= instants < midnight[guess]
        guess = np.clip(guess, 0, last)
        guess += instants >= midnight[guess + 1]
        guess = np.clip(guess, 0, last)
        missed = (instants < midnight[guess]) | (instants >= midnight[guess + 1])
        if missed.any():
            guess[missed] = np.searchsorted(midnight, instants[missed], side="right") - 1
        found: npt.NDArray[np.int64] = guess
        return found

    def business_days_between_many(
        self, a_epoch: npt.NDArray[np.int64], b_epoch: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        """`business_days_between` over arrays of UTC epoch seconds (the audit report)."""
        years = self._many(a_epoch, b_epoch)
        rank = years.arrays().rank
        counts: npt.NDArray[np.int64] = (
            rank[self._day_index_many(years, b_epoch)] - rank[self._day_index_many(years, a_epoch)]
        )
        return counts

    def calendar_days_between_many(
        self, a_epoch: npt.NDArray[np.int64], b_epoch: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        """Local calendar days from a's date to b's date, over arrays of UTC epoch seconds."""
        years = self._many(a_epoch, b_epoch)
        return self._day_index_many(years, b_epoch) - self._day_index_many(years, a_epoch)

    def day_and_rank_many(
        self, epoch: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """For UTC epoch seconds: the local day (days since 1970-01-01) and the business-day
        rank, so that differences of ranks are `business_days_between` and differences of days
        are calendar days. One look-up serves both (the audit report times a million hops)."""
        years = self._many(epoch)
        index = self._day_index_many(years, epoch)
        day: npt.NDArray[np.int64] = index + (years.base - _EPOCH_ORDINAL)
        rank: npt.NDArray[np.int64] = years.arrays().rank[index] + years.offset
        return day, rank


@dataclass(frozen=True, slots=True)
class _Arrays:
    rank: npt.NDArray[np.int64]
    bdays: npt.NDArray[np.int64]
    midnight: npt.NDArray[np.int64]
    eod: npt.NDArray[np.int64]
    crank: npt.NDArray[np.int64] | None
    cdays: npt.NDArray[np.int64] | None


class _Years:
    """A calendar's day tables over the years first..last, never changed once built.

    Index i is the local day `base + i` (an ordinal); `rank[i] + offset` is the stable
    business-day rank; `midnight` has one more entry than there are days (the next midnight).
    `crank` and `cdays` rank and list the counted calendar days as `rank` and `bdays` do the
    business days; both are None when no closure suspends calendar days (every day counts).
    """

    def __init__(
        self,
        *,
        first: int,
        last: int,
        base: int,
        is_open: list[bool],
        rank: list[int],
        offset: int,
        bdays: list[int],
        crank: list[int] | None,
        cdays: list[int] | None,
        midnight: list[int],
        eod: list[int],
        reasons: dict[int, str],
    ) -> None:
        self.first, self.last, self.base = first, last, base
        self.is_open, self.rank, self.offset, self.bdays = is_open, rank, offset, bdays
        self.crank, self.cdays = crank, cdays
        self.midnight, self.eod, self.reasons = midnight, eod, reasons
        self.start, self.end = midnight[0], midnight[-1]
        self._arrays: _Arrays | None = None

    def arrays(self) -> _Arrays:
        """The tables as NumPy arrays, made on first use (scalar callers never import NumPy)."""
        if self._arrays is None:
            import numpy as np

            self._arrays = _Arrays(
                rank=np.array(self.rank, dtype=np.int64),
                bdays=np.array(self.bdays, dtype=np.int64),
                midnight=np.array(self.midnight, dtype=np.int64),
                eod=np.array(self.eod, dtype=np.int64),
                crank=None if self.crank is None else np.array(self.crank, dtype=np.int64),
                cdays=None if self.cdays is None else np.array(self.cdays, dtype=np.int64),
            )
        return self._arrays

    def counted(self) -> tuple[list[int], list[int]]:
        """`crank` and `cdays`, for a calendar that has them."""
        assert self.crank is not None and self.cdays is not None
        return self.crank, self.cdays


def _runs(years: list[int]) -> list[tuple[int, int]]:
    """Sorted years as (first, last) runs of consecutive years."""
    runs: list[tuple[int, int]] = []
    for year in years:
        if runs and runs[-1][1] == year - 1:
            runs[-1] = (runs[-1][0], year)
        else:
            runs.append((year, year))
    return runs


def _year_of(epoch: float) -> int:
    """The UTC year of an epoch second, give or take one (enough to pick the years to build)."""
    return 1970 + int(epoch // 31_556_952)


def _holidays_in(table: Mapping[date, str], first: int, last: int) -> dict[date, str]:
    return {day: name for day, name in table.items() if first <= day.year <= last}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@lru_cache(maxsize=256)
def build_calendar(
    *,
    timezone: str,
    weekend: tuple[int, ...],
    holiday_country: str | None,
    holiday_subdiv: str | None,
    closures: tuple[Closure, ...],
) -> Calendar:
    """A cached calendar; the loader turns CalendarSpec into these plain, hashable arguments."""
    names: Mapping[date, str] | HolidaySource = (
        partial(_holiday_names, holiday_country, holiday_subdiv) if holiday_country else {}
    )
    return Calendar(timezone=timezone, weekend=weekend, holidays=names, closures=closures)


# An authority's calendar often differs from its country's only by closures: the holiday tables
# and the local midnights, the slow parts of building a calendar, are computed once and shared.


@lru_cache(maxsize=1024)
def _holiday_names(country: str, subdiv: str | None, first: int, last: int) -> dict[date, str]:
    """The holidays of the years first..last, as the table of FIRST_YEAR..LAST_YEAR has them.

    A holiday observed across New Year comes from its neighbouring year's rules, so the years
    on either side are computed too (within the calendar's range, as the full table was).
    """
    cached = _HolidayCache(country, subdiv, first, last)
    found = cached.read()
    if found is not None:
        return found
    import holidays as holidays_pkg

    years = range(max(first - 1, FIRST_YEAR), min(last + 1, LAST_YEAR) + 1)
    table = holidays_pkg.country_holidays(country, subdiv=subdiv, years=years)
    names = {day: str(name) for day, name in table.items() if first <= day.year <= last}
    cached.write(names)
    return names


@lru_cache(maxsize=1)
def _holidays_version() -> str | None:
    """The installed `holidays` package's version (a look-up in its metadata: 4 ms each)."""
    try:
        return importlib.metadata.version("holidays")
    except importlib.metadata.PackageNotFoundError:
        return None


class _HolidayCache:
    """A holiday table kept on disk between processes, under $ROGATORY_VAR/cache/holidays.

    Importing the `holidays` package loads every country's rules (0.2 s): a command that
    reads one case should not pay that each time. The file is named after the package's
    version, so an upgrade of its rules is read afresh; a cache that cannot be read or written
    is no cache, never an error.
    """

    SCHEMA = 1

    def __init__(self, country: str, subdiv: str | None, first: int, last: int) -> None:
        self.path: Path | None = None
        version = _holidays_version()
        if version is None:
            return
        folder = Path(os.environ.get("ROGATORY_VAR", "var")) / "cache" / "holidays"
        name = f"{country}-{subdiv or '_'}-{first}-{last}-{version}-{self.SCHEMA}.json"
        self.path = folder / name

    def read(self) -> dict[date, str] | None:
        if self.path is None:
            return None
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
            return {date.fromisoformat(day): str(name) for day, name in stored.items()}
        except (OSError, ValueError, AttributeError):
            return None

    def write(self, names: Mapping[date, str]) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({d.isoformat(): n for d, n in sorted(names.items())}))
            tmp.replace(self.path)
        except OSError:
            return


@lru_cache(maxsize=4096)
def _year_midnights(timezone: str, year: int) -> tuple[int, ...]:
    """UTC epoch seconds of local midnight on every day of `year` and on the next January 1."""
    # An aware local midnight's timestamp is the naive midnight less the zone's offset then
    # (fold 0 in a gap or an overlap): asking the zone for the offset alone is 3x faster.
    offset = ZoneInfo(timezone).utcoffset
    epoch = date(1970, 1, 1).toordinal()
    first, after = date(year, 1, 1).toordinal(), date(year + 1, 1, 1).toordinal()
    midnights = []
    for ordinal in range(first, after + 1):
        shift = offset(datetime.fromordinal(ordinal))
        if shift is None:
            raise CalendarError(f"time zone {timezone!r} gives no UTC offset")
        midnights.append((ordinal - epoch) * 86400 - (shift.days * 86400 + shift.seconds))
    return tuple(midnights)
