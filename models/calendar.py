"""Business calendars: deadlines in business days, calendar days or hours, per country and holder.

Semantics (the tests hold the code to them):

- "N business days from t" (`Nbd`) ends at the end (23:59:59 local) of the N-th business day
  strictly after t's local date, in the calendar's timezone. A business day is a day that is
  not a weekend day, not a public holiday and not a closure. A holiday that falls on a weekend
  closes nothing extra; where the law moves it to a weekday, the `holidays` package lists the
  observed day and that day is closed.
- "N calendar days from t" (`Nd`) ends at the end of the N-th calendar day after t's local date,
  whether or not that day is a business day (EU instruments count this way).
- "N hours from t" (`Nh`) runs on the wall clock: exactly N elapsed hours, across nights,
  weekends and DST changes alike.
- `business_days_between(a, b)` counts the business days after a's local date up to and
  including b's local date, so `business_days_between(t, add(t, "Nbd")) == N`.

The fast path precomputes, for every day of the calendar's range, whether it is a business day,
the running count of business days, and the UTC instants of local midnight and end of day. A
deadline is then two array look-ups, in plain Python (`add`) or vectorised over NumPy arrays
(`add_many`). `models.calendar_reference` holds the plain day-by-day definition it is tested
against.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from models.errors import CalendarError

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


class Calendar:
    """A business calendar over the years FIRST_YEAR..LAST_YEAR, in one timezone."""

    def __init__(
        self,
        *,
        timezone: str,
        weekend: Iterable[int],
        holidays: Mapping[date, str],
        closures: Mapping[date, str],
        first_year: int = FIRST_YEAR,
        last_year: int = LAST_YEAR,
    ) -> None:
        self.timezone = timezone
        self.tz = ZoneInfo(timezone)
        self.weekend = frozenset(weekend)
        self.first = date(first_year, 1, 1)
        self.last = date(last_year, 12, 31)
        self._base = self.first.toordinal()
        n = self.last.toordinal() - self._base + 1
        self._reasons: dict[int, str] = {}
        for day, name in holidays.items():
            if self.first <= day <= self.last:
                self._reasons[day.toordinal() - self._base] = f"{name} (public holiday)"
        for day, name in closures.items():
            if self.first <= day <= self.last:
                self._reasons.setdefault(day.toordinal() - self._base, name)
        weekday_of_first = self.first.weekday()
        open_ = np.ones(n, dtype=bool)
        for wd in self.weekend:
            open_[(wd - weekday_of_first) % 7 :: 7] = False
        if self._reasons:
            open_[np.fromiter(self._reasons, dtype=np.int64)] = False
        self._open: npt.NDArray[np.bool_] = open_
        # rank[i]: business days among days 0..i; bdays[k]: index of the (k+1)-th business day.
        self._rank: npt.NDArray[np.int64] = np.cumsum(open_, dtype=np.int64)
        self._bdays: npt.NDArray[np.int64] = np.flatnonzero(open_).astype(np.int64)
        midnights = _local_midnights(timezone, self._base, n + 1)
        self._midnight: npt.NDArray[np.int64] = midnights
        # End of day i is the last second before the next local midnight.
        self._eod: npt.NDArray[np.int64] = midnights[1:] - 1
        self._midnight_list: list[int] = midnights.tolist()
        self._eod_list: list[int] = self._eod.tolist()
        self._rank_list: list[int] = self._rank.tolist()
        self._bdays_list: list[int] = self._bdays.tolist()

    # -- single instants -------------------------------------------------------------------

    def _day_index(self, instant: datetime) -> int:
        if instant.tzinfo is None:
            raise CalendarError(f"{instant.isoformat()} has no timezone: pass an aware datetime")
        i = bisect_right(self._midnight_list, instant.timestamp()) - 1
        if i < 0 or i >= len(self._eod_list):
            raise CalendarError(
                f"{instant.isoformat()} is outside this calendar's range "
                f"({self.first.year}-{self.last.year})"
            )
        return i

    def local_date(self, instant: datetime) -> date:
        return date.fromordinal(self._base + self._day_index(instant))

    def is_business_day(self, day: date) -> bool:
        i = day.toordinal() - self._base
        if not 0 <= i < len(self._open):
            raise CalendarError(f"{day} is outside this calendar's range")
        return bool(self._open[i])

    def add(self, start: datetime, duration: str | Duration) -> datetime:
        """The instant `duration` after `start` (see the module docstring for the semantics)."""
        d = duration if isinstance(duration, Duration) else _parse_duration(duration)
        i = self._day_index(start)
        if d.unit == "h":
            # In UTC: aware + timedelta in the start's own zone would add wall-clock hours.
            return (start.astimezone(UTC) + timedelta(hours=d.amount)).astimezone(self.tz)
        if d.unit == "d":
            target = i + d.amount
        else:
            k = self._rank_list[i] + d.amount - 1
            if k >= len(self._bdays_list):
                raise CalendarError(f"{d} from {start.isoformat()} runs past {self.last.year}")
            target = self._bdays_list[k]
        if target >= len(self._eod_list):
            raise CalendarError(f"{d} from {start.isoformat()} runs past {self.last.year}")
        return datetime.fromtimestamp(self._eod_list[target], self.tz)

    def add_ts(self, start: float, duration: Duration) -> int:
        """`add` on UTC epoch seconds, for hot paths that need no datetime objects."""
        if duration.unit == "h":
            return int(start) + 3600 * duration.amount
        i = bisect_right(self._midnight_list, start) - 1
        if i < 0 or i >= len(self._eod_list):
            raise CalendarError(f"epoch {start} is outside this calendar's range")
        if duration.unit == "d":
            target = i + duration.amount
        else:
            k = self._rank_list[i] + duration.amount - 1
            target = self._bdays_list[k] if k < len(self._bdays_list) else len(self._eod_list)
        if target >= len(self._eod_list):
            raise CalendarError(f"{duration} from epoch {start} runs past {self.last.year}")
        return self._eod_list[target]

    def business_days_between(self, a: datetime, b: datetime) -> int:
        """Business days after a's local date up to and including b's (negative if b < a)."""
        return self._rank_list[self._day_index(b)] - self._rank_list[self._day_index(a)]

    def skipped(self, start: datetime, end: datetime) -> list[SkippedDay]:
        """The non-business days after start's local date up to end's, each with its reason."""
        out = []
        for i in range(self._day_index(start) + 1, self._day_index(end) + 1):
            if not self._open[i]:
                day = date.fromordinal(self._base + i)
                reason = self._reasons.get(i) or f"{WEEKDAY_NAMES[day.weekday()]} (weekend)"
                out.append(SkippedDay(day, reason))
        return out

    # -- many instants at once (the clock sweep, the simulator, the benchmark) --------------

    def add_many(
        self, starts: npt.NDArray[np.int64], duration: str | Duration
    ) -> npt.NDArray[np.int64]:
        """`add` over an array of UTC epoch seconds, returning UTC epoch seconds."""
        d = duration if isinstance(duration, Duration) else _parse_duration(duration)
        if starts.size and (starts.min() < self._midnight[0] or starts.max() >= self._midnight[-1]):
            raise CalendarError(
                f"an instant is outside this calendar's range ({self.first.year}-{self.last.year})"
            )
        if d.unit == "h":
            return starts + 3600 * d.amount
        idx = np.searchsorted(self._midnight, starts, side="right") - 1
        if d.unit == "d":
            target = idx + d.amount
        else:
            k = self._rank[idx] + (d.amount - 1)
            if k.size and k.max() >= len(self._bdays):
                raise CalendarError(f"{d} runs past {self.last.year}")
            target = self._bdays[k]
        if target.size and target.max() >= len(self._eod):
            raise CalendarError(f"{d} runs past {self.last.year}")
        result: npt.NDArray[np.int64] = self._eod[target]
        return result

    def _day_index_many(self, instants: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        if instants.size and (
            instants.min() < self._midnight[0] or instants.max() >= self._midnight[-1]
        ):
            raise CalendarError(
                f"an instant is outside this calendar's range ({self.first.year}-{self.last.year})"
            )
        # A local day is 24 hours give or take a DST hour, so the day an instant falls on is
        # its whole days since the first midnight, give or take one: a guess, two corrections,
        # and a binary search only for instants the guess still misses (a zone that skipped a
        # day). Ten times faster than searching every instant.
        midnight = self._midnight
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
        counts: npt.NDArray[np.int64] = (
            self._rank[self._day_index_many(b_epoch)] - self._rank[self._day_index_many(a_epoch)]
        )
        return counts

    def calendar_days_between_many(
        self, a_epoch: npt.NDArray[np.int64], b_epoch: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        """Local calendar days from a's date to b's date, over arrays of UTC epoch seconds."""
        return self._day_index_many(b_epoch) - self._day_index_many(a_epoch)

    def day_and_rank_many(
        self, epoch: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """For UTC epoch seconds: the local day (days since 1970-01-01) and the business-day
        rank, so that differences of ranks are `business_days_between` and differences of days
        are calendar days. One look-up serves both (the audit report times a million hops)."""
        index = self._day_index_many(epoch)
        day: npt.NDArray[np.int64] = index + (self._base - _EPOCH_ORDINAL)
        rank: npt.NDArray[np.int64] = self._rank[index]
        return day, rank


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@lru_cache(maxsize=256)
def build_calendar(
    *,
    timezone: str,
    weekend: tuple[int, ...],
    holiday_country: str | None,
    holiday_subdiv: str | None,
    closures: tuple[tuple[date, str], ...],
) -> Calendar:
    """A cached calendar; the loader turns CalendarSpec into these plain, hashable arguments."""
    names = _holiday_names(holiday_country, holiday_subdiv) if holiday_country else {}
    return Calendar(timezone=timezone, weekend=weekend, holidays=names, closures=dict(closures))


# An authority's calendar often differs from its country's only by closures: the holiday table
# and the local midnights, the slow parts of building a calendar, are computed once and shared.


@lru_cache(maxsize=64)
def _holiday_names(country: str, subdiv: str | None) -> dict[date, str]:
    import holidays as holidays_pkg

    table = holidays_pkg.country_holidays(
        country, subdiv=subdiv, years=range(FIRST_YEAR, LAST_YEAR + 1)
    )
    return {day: str(name) for day, name in table.items()}


@lru_cache(maxsize=64)
def _local_midnights(timezone: str, first_ordinal: int, days: int) -> npt.NDArray[np.int64]:
    """UTC epoch seconds of local midnight on `days` days from `first_ordinal` (read-only)."""
    # An aware local midnight's timestamp is the naive midnight less the zone's offset then
    # (fold 0 in a gap or an overlap): asking the zone for the offset alone is 3x faster.
    offset = ZoneInfo(timezone).utcoffset
    epoch = date(1970, 1, 1).toordinal()
    midnights = np.empty(days, dtype=np.int64)
    for i in range(days):
        ordinal = first_ordinal + i
        shift = offset(datetime.fromordinal(ordinal))
        if shift is None:
            raise CalendarError(f"time zone {timezone!r} gives no UTC offset")
        midnights[i] = (ordinal - epoch) * 86400 - (shift.days * 86400 + shift.seconds)
    midnights.flags.writeable = False
    return midnights
