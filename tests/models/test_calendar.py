"""The business calendar keeps the semantics of its module docstring, for every configured country.

Hand-worked examples pin down the meaning; property tests hold the fast paths (`Calendar.add`,
`Calendar.add_many`) to the day-by-day definition in `models.calendar_reference`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, cached_property
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays as holidays_pkg
import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from models.calendar import (
    FIRST_YEAR,
    LAST_YEAR,
    Calendar,
    Closure,
    Duration,
    SkippedDay,
    _holiday_names,
    build_calendar,
)
from models.calendar_reference import (
    closure_covers,
    reference_add,
    reference_business_days_between,
)
from models.config import WEEKDAYS
from models.errors import CalendarError
from models.loader import Routing, calendar_closures, load_all

CONFIG = Path(__file__).resolve().parents[2] / "config"
ROUTINGS = load_all(CONFIG)

SV = ZoneInfo("America/El_Salvador")
ROME = ZoneInfo("Europe/Rome")
NEW_YORK = ZoneInfo("America/New_York")
RIYADH = ZoneInfo("Asia/Riyadh")


def at(year: int, month: int, day: int, hour: int, minute: int, second: int, tz: ZoneInfo):
    return datetime(year, month, day, hour, minute, second, tzinfo=tz)


def same_instant_and_offset(got: datetime, want: datetime) -> bool:
    """Aware datetimes sharing a tzinfo compare as wall times; compare the instants instead."""
    return got.timestamp() == want.timestamp() and got.utcoffset() == want.utcoffset()


@pytest.fixture(scope="module")
def el_salvador() -> Calendar:
    return ROUTINGS["SV"].calendar()


def us_calendar() -> Calendar:
    return build_calendar(
        timezone="America/New_York",
        weekend=(5, 6),
        holiday_country="US",
        holiday_subdiv=None,
        closures=(),
    )


def italy_calendar() -> Calendar:
    return build_calendar(
        timezone="Europe/Rome",
        weekend=(5, 6),
        holiday_country="IT",
        holiday_subdiv=None,
        closures=(),
    )


def riyadh_calendar() -> Calendar:
    return Calendar(
        timezone="Asia/Riyadh",
        weekend={4, 5},
        holidays={date(2026, 1, 13): "Test holiday"},
        closures={},
    )


# -- hand-worked examples ------------------------------------------------------------------------


def test_sv_business_days_skip_the_year_end_closure_new_year_and_weekends(el_salvador):
    start = datetime(2026, 12, 23, 15, 0, tzinfo=UTC)  # Wednesday 09:00 in San Salvador

    deadline = el_salvador.add(start, "10bd")

    # Dec 24-Jan 2 closed (Dec 25 is also Christmas, Jan 1 New Year), then Jan 4-8 and 11-15.
    assert same_instant_and_offset(deadline, at(2027, 1, 15, 23, 59, 59, SV))
    assert deadline.tzinfo == SV
    closure = (
        "vacación de fin de año (Ley de Asuetos, Vacaciones y Licencias de los Empleados Públicos)"
    )
    assert el_salvador.skipped(start, deadline) == [
        SkippedDay(date(2026, 12, 24), closure),
        SkippedDay(date(2026, 12, 25), "Christmas Day (public holiday)"),
        *(SkippedDay(date(2026, 12, d), closure) for d in range(26, 32)),
        SkippedDay(date(2027, 1, 1), "New Year's Day (public holiday)"),
        SkippedDay(date(2027, 1, 2), closure),  # a Saturday, named for its closure
        SkippedDay(date(2027, 1, 3), "Sunday (weekend)"),
        SkippedDay(date(2027, 1, 9), "Saturday (weekend)"),
        SkippedDay(date(2027, 1, 10), "Sunday (weekend)"),
    ]


def test_sv_calendar_days_count_closed_days_too(el_salvador):
    start = datetime(2026, 12, 23, 15, 0, tzinfo=UTC)

    assert same_instant_and_offset(el_salvador.add(start, "30d"), at(2027, 1, 22, 23, 59, 59, SV))


def test_business_days_count_from_the_local_date_in_the_calendars_timezone(el_salvador):
    thursday_late = datetime(2027, 1, 8, 5, 59, 59, tzinfo=UTC)  # Thu Jan 7, 23:59:59 local
    friday_midnight = datetime(2027, 1, 8, 6, 0, 0, tzinfo=UTC)  # Fri Jan 8, 00:00:00 local

    assert same_instant_and_offset(
        el_salvador.add(thursday_late, "1bd"), at(2027, 1, 8, 23, 59, 59, SV)
    )
    assert same_instant_and_offset(
        el_salvador.add(friday_midnight, "1bd"), at(2027, 1, 11, 23, 59, 59, SV)
    )


def test_sv_holiday_on_a_saturday_closes_no_extra_weekday(el_salvador):
    # Labour Day 2027-05-01 is a Saturday; El Salvador moves nothing, so Monday May 3 is open.
    friday = at(2027, 4, 30, 10, 0, 0, SV)

    assert el_salvador.is_business_day(date(2027, 5, 3))
    assert same_instant_and_offset(el_salvador.add(friday, "1bd"), at(2027, 5, 3, 23, 59, 59, SV))


def test_italian_holidays_on_a_weekend_close_no_extra_weekday():
    # Christmas 2027 is a Saturday, St Stephen a Sunday; Italy observes neither on Monday.
    italy = italy_calendar()

    deadline = italy.add(at(2027, 12, 24, 12, 0, 0, ROME), "1bd")

    assert same_instant_and_offset(deadline, at(2027, 12, 27, 23, 59, 59, ROME))


def test_us_holiday_on_a_sunday_closes_the_observed_monday():
    # Independence Day 2027 is a Sunday; the holidays package lists Monday July 5 as observed.
    us = us_calendar()

    deadline = us.add(at(2027, 7, 2, 12, 0, 0, NEW_YORK), "1bd")

    assert not us.is_business_day(date(2027, 7, 5))
    assert same_instant_and_offset(deadline, at(2027, 7, 6, 23, 59, 59, NEW_YORK))


@pytest.mark.parametrize(
    ("calendar", "start", "deadline"),
    [
        pytest.param(
            italy_calendar(),
            at(2026, 3, 28, 12, 0, 0, ROME),
            at(2026, 3, 30, 13, 0, 0, ROME),
            id="rome-spring-forward",
        ),
        pytest.param(
            italy_calendar(),
            at(2026, 10, 24, 12, 0, 0, ROME),
            at(2026, 10, 26, 11, 0, 0, ROME),
            id="rome-fall-back",
        ),
        pytest.param(
            us_calendar(),
            at(2026, 3, 7, 9, 0, 0, NEW_YORK),
            at(2026, 3, 9, 10, 0, 0, NEW_YORK),
            id="new-york-spring-forward",
        ),
    ],
)
def test_hours_are_elapsed_hours_across_a_dst_change(calendar, start, deadline):
    got = calendar.add(start, "48h")
    many = calendar.add_many(np.array([int(start.timestamp())], dtype=np.int64), "48h")

    assert got.timestamp() - start.timestamp() == 48 * 3600
    assert same_instant_and_offset(got, deadline)
    assert many.tolist() == [int(deadline.timestamp())]


def test_business_day_deadline_ends_at_local_midnight_after_a_dst_change():
    italy = italy_calendar()

    deadline = italy.add(at(2026, 3, 27, 9, 0, 0, ROME), "1bd")  # Friday, winter time

    assert same_instant_and_offset(deadline, at(2026, 3, 30, 23, 59, 59, ROME))
    assert deadline.utcoffset() == timedelta(hours=2)


# -- a Friday/Saturday weekend -------------------------------------------------------------------


def test_friday_and_saturday_are_the_weekend_in_riyadh():
    riyadh = riyadh_calendar()

    assert not riyadh.is_business_day(date(2026, 1, 9))  # Friday
    assert not riyadh.is_business_day(date(2026, 1, 10))  # Saturday
    assert riyadh.is_business_day(date(2026, 1, 11))  # Sunday


def test_riyadh_business_days_skip_friday_saturday_and_holidays():
    riyadh = riyadh_calendar()
    thursday = at(2026, 1, 8, 10, 0, 0, RIYADH)

    assert same_instant_and_offset(riyadh.add(thursday, "1bd"), at(2026, 1, 11, 23, 59, 59, RIYADH))
    # Sun 11, Mon 12, (Tue 13 holiday), Wed 14, Thu 15, (Fri 16, Sat 17), Sun 18.
    assert same_instant_and_offset(riyadh.add(thursday, "5bd"), at(2026, 1, 18, 23, 59, 59, RIYADH))
    assert riyadh.business_days_between(thursday, at(2026, 1, 18, 8, 0, 0, RIYADH)) == 5


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["10 weeks", "bd10", "", "1.5bd", "-3d", "10BD", "10 bd 2"])
def test_bad_duration_says_how_to_write_one(el_salvador, text):
    start = datetime(2026, 6, 1, tzinfo=UTC)

    with pytest.raises(CalendarError) as info:
        el_salvador.add(start, text)

    assert str(info.value) == (
        f"{text!r} is not a duration: write a whole number followed by bd (business days), "
        "d (calendar days) or h (hours), e.g. 10bd, 30d, 48h"
    )


def test_zero_duration_is_refused(el_salvador):
    with pytest.raises(CalendarError, match=r"^'0bd': a duration must be at least 1$"):
        el_salvador.add(datetime(2026, 6, 1, tzinfo=UTC), "0bd")


@pytest.mark.parametrize("duration", ["1bd", "1d", "1h"])
def test_naive_datetimes_are_refused(el_salvador, duration):
    with pytest.raises(CalendarError, match="has no timezone: pass an aware datetime"):
        el_salvador.add(datetime(2026, 6, 1, 12, 0), duration)


def test_naive_datetimes_are_refused_when_counting_business_days(el_salvador):
    aware = datetime(2026, 6, 1, tzinfo=UTC)

    with pytest.raises(CalendarError, match="has no timezone"):
        el_salvador.business_days_between(aware, datetime(2026, 6, 9))


@pytest.mark.parametrize("duration", ["1bd", "1d", "1h"])
@pytest.mark.parametrize(
    "start", [datetime(1989, 12, 31, 12, tzinfo=UTC), datetime(2081, 1, 1, 12, tzinfo=UTC)]
)
def test_instants_outside_the_calendar_range_are_refused(el_salvador, start, duration):
    with pytest.raises(CalendarError, match=r"outside this calendar's range \(1990-2080\)"):
        el_salvador.add(start, duration)
    with pytest.raises(CalendarError, match=r"outside this calendar's range \(1990-2080\)"):
        el_salvador.add_many(np.array([int(start.timestamp())], dtype=np.int64), duration)


@pytest.mark.parametrize("duration", ["400bd", "90d"])
def test_deadline_past_the_calendar_range_is_refused(el_salvador, duration):
    start = datetime(2080, 12, 1, tzinfo=UTC)

    with pytest.raises(CalendarError, match="runs past 2080"):
        el_salvador.add(start, duration)
    with pytest.raises(CalendarError, match="runs past 2080"):
        el_salvador.add_many(np.array([int(start.timestamp())], dtype=np.int64), duration)


# -- every configured calendar against the day-by-day reference ---------------------------------


@dataclass(frozen=True)
class Facts:
    """What a file says one calendar is; the reference walks through these, day by day."""

    timezone: str
    weekend: frozenset[int]
    holiday_country: str | None
    holiday_subdiv: str | None
    closures: frozenset[date]
    suspended: frozenset[date] = frozenset()
    """Days of closures that also stop calendar-day deadlines."""


@dataclass(eq=False)
class Case:
    """A fast calendar, built on first use, and the facts it must agree with."""

    name: str
    facts: Facts
    build: Callable[[], Calendar]
    extra_holidays: dict[date, str] = field(default_factory=dict)

    @cached_property
    def calendar(self) -> Calendar:
        return self.build()

    @cached_property
    def holidays(self) -> holidays_pkg.HolidayBase | dict[date, str]:
        if self.facts.holiday_country is None:
            return self.extra_holidays
        # Lazy: the package computes each year on its first look-up, with no precomputed index.
        return holidays_pkg.country_holidays(
            self.facts.holiday_country, subdiv=self.facts.holiday_subdiv
        )

    @property
    def timezone(self) -> str:
        return self.facts.timezone

    def reference_add(self, start: datetime, duration: str) -> datetime:
        return reference_add(
            start=start,
            duration=duration,
            timezone=self.facts.timezone,
            weekend=set(self.facts.weekend),
            holidays=self.holidays,
            closures=set(self.facts.closures),
            suspended=self.facts.suspended,
        )

    def reference_business_days_between(self, a: datetime, b: datetime) -> int:
        return reference_business_days_between(
            a=a,
            b=b,
            timezone=self.facts.timezone,
            weekend=set(self.facts.weekend),
            holidays=self.holidays,
            closures=set(self.facts.closures),
        )


# The days the property tests below can reach: instants from 2000 to 2060, 800 days either side.
REACHED = [date(1997, 1, 1) + timedelta(days=i) for i in range(68 * 366)]


@cache
def closed_days(closures: tuple[Closure, ...]) -> tuple[frozenset[date], frozenset[date]]:
    """The days `closures` close, and those they suspend, asked of each day alone."""
    closed = {d for d in REACHED if any(closure_covers(c, d) for c in closures)}
    suspending = [c for c in closures if c.suspends]
    suspended = {d for d in closed if any(closure_covers(c, d) for c in suspending)}
    return frozenset(closed), frozenset(suspended)


def facts_of(routing: Routing, authority: str | None) -> Facts:
    """What the file says the calendar of `authority` (None: the country's) should be."""
    config = routing.config
    spec, timezone, closures = config.calendar, config.timezone, calendar_closures(config.calendar)
    if authority is not None:
        own = config.authorities[authority]
        timezone = own.timezone or timezone
        if own.calendar is not None:
            spec, closures = own.calendar, closures + calendar_closures(own.calendar)
    closed, suspended = closed_days(tuple(closures))
    return Facts(
        timezone=timezone,
        weekend=frozenset(WEEKDAYS.index(d) for d in spec.weekend),
        holiday_country=spec.holidays.country if spec.holidays else None,
        holiday_subdiv=spec.holidays.subdiv if spec.holidays else None,
        closures=closed,
        suspended=suspended,
    )


def calendar_groups() -> dict[tuple[str, Facts], list[str | None]]:
    """Per country, the authorities (None: the country itself) sharing each distinct calendar."""
    groups: dict[tuple[str, Facts], list[str | None]] = {}
    for country, routing in ROUTINGS.items():
        for authority in [None, *routing.config.authorities]:
            groups.setdefault((country, facts_of(routing, authority)), []).append(authority)
    return groups


def configured_cases() -> list[Case]:
    """Every distinct calendar of every file in config/countries, the country's and authorities'."""
    cases = []
    for (country, facts), authorities in calendar_groups().items():
        first = authorities[0]
        names = "+".join(a or "country" for a in authorities[:3])
        more = f"+{len(authorities) - 3}" if len(authorities) > 3 else ""
        cases.append(
            Case(
                f"{country}-{names}{more}",
                facts,
                lambda routing=ROUTINGS[country], authority=first: routing.calendar(authority),
            )
        )
    return cases


SYNTHETIC_CLOSURES = (
    Closure("August suspension", every_year=((8, 1), (8, 31)), suspends=True),
    Closure("Christmas", every_year=((12, 24), (1, 1))),
    Closure("Holy Week", easter=(-6, 0)),
    Closure("closure 2031-07-30/2031-08-02", dated=(date(2031, 7, 30), date(2031, 8, 2))),
)
EXTRA_CASES = [
    Case(
        "riyadh-fri-sat",
        Facts("Asia/Riyadh", frozenset({4, 5}), None, None, frozenset()),
        riyadh_calendar,
        extra_holidays={date(2026, 1, 13): "Test holiday"},
    ),
    # Santiago changes clocks at midnight, so some local days start at 01:00 or last 25 hours.
    Case(
        "santiago-midnight-dst",
        Facts("America/Santiago", frozenset({5, 6}), "CL", None, frozenset({date(2031, 2, 3)})),
        lambda: build_calendar(
            timezone="America/Santiago",
            weekend=(5, 6),
            holiday_country="CL",
            holiday_subdiv=None,
            closures=(Closure("closure", dated=(date(2031, 2, 3), date(2031, 2, 3))),),
        ),
    ),
    # Every kind of recurring closure at once: a suspension, one across the year end, Easter's.
    Case(
        "recurring-suspension-christmas-holy-week",
        Facts(
            "Europe/Rome",
            frozenset({5, 6}),
            "IT",
            None,
            *closed_days(SYNTHETIC_CLOSURES),
        ),
        lambda: build_calendar(
            timezone="Europe/Rome",
            weekend=(5, 6),
            holiday_country="IT",
            holiday_subdiv=None,
            closures=SYNTHETIC_CLOSURES,
        ),
    ),
]
CASES = [pytest.param(case, id=case.name) for case in configured_cases() + EXTRA_CASES]


@pytest.mark.parametrize("group", list(calendar_groups().items()), ids=lambda g: g[0][0])
def test_authorities_with_the_same_calendar_facts_get_the_same_calendar(group):
    # The property tests below run once per distinct calendar; this keeps that sound.
    (country, _), authorities = group
    routing = ROUTINGS[country]
    first = routing.calendar(authorities[0])

    days = [date(2000, 1, 1) + timedelta(days=i) for i in range(61 * 366)]
    for authority in authorities[1:]:
        calendar = routing.calendar(authority)
        assert calendar.timezone == first.timezone
        assert [calendar.is_business_day(d) for d in days] == [
            first.is_business_day(d) for d in days
        ]


FIRST, LAST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2061, 1, 1, tzinfo=UTC)
OTHER_ZONES = [
    ZoneInfo(z)
    for z in (
        "UTC",
        "Pacific/Kiritimati",
        "Pacific/Pago_Pago",
        "America/St_Johns",
        "Europe/Rome",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
    )
]

durations = st.one_of(
    st.integers(1, 400).map(lambda n: f"{n}bd"),
    st.integers(1, 400).map(lambda n: f"{n}d"),
    st.integers(1, 2000).map(lambda n: f"{n}h"),
)
# Flat integer draws, decoded by `instant` below: far cheaper for Hypothesis than nested
# builds, which matters with a few thousand examples per run.
raw_instants = st.tuples(
    st.integers(0, int((LAST - FIRST).total_seconds()) - 1),
    st.integers(0, len(OTHER_ZONES)),
    st.integers(0, 5),
)


def instant(raw: tuple[int, int, int], timezone: str) -> datetime:
    """An aware instant from 2000 to 2060 seen from one of several zones; in half the draws, a
    second before, at or after a local midnight of `timezone`, where off-by-one bugs live."""
    seconds, zone, mode = raw
    tz = ZoneInfo(timezone)
    seen_from = tz if zone == len(OTHER_ZONES) else OTHER_ZONES[zone]
    if mode < 3:
        moment = FIRST + timedelta(seconds=seconds)
    else:
        day = FIRST.date() + timedelta(days=1 + seconds // 86400)
        moment = datetime.combine(day, time(), tz).astimezone(UTC) + timedelta(seconds=mode - 4)
    start = moment.astimezone(seen_from)
    note(f"instant {start.isoformat()}")
    return start


@pytest.mark.parametrize("case", CASES)
@settings(max_examples=200, deadline=None)
@given(raws=st.lists(raw_instants, min_size=1, max_size=3), duration=durations)
def test_add_add_ts_and_add_many_equal_the_day_by_day_reference(case: Case, raws, duration):
    starts = [instant(raw, case.timezone) for raw in raws]
    want = [case.reference_add(start, duration) for start in starts]

    scalar = [case.calendar.add(start, duration) for start in starts]
    epoch = np.array([int(s.timestamp()) for s in starts], dtype=np.int64)
    many = case.calendar.add_many(epoch, duration)
    on_epochs = [case.calendar.add_ts(s.timestamp(), Duration.parse(duration)) for s in starts]

    assert [d.timestamp() for d in scalar] == [w.timestamp() for w in want]
    assert on_epochs == [int(w.timestamp()) for w in want]
    assert [d.utcoffset() for d in scalar] == [w.utcoffset() for w in want]
    assert many.dtype == np.int64
    assert many.tolist() == [int(w.timestamp()) for w in want]


@pytest.mark.parametrize("case", CASES)
@settings(max_examples=100, deadline=None)
@given(raw=raw_instants, n=st.integers(1, 400))
def test_business_days_between_counts_back_what_add_added(case: Case, raw, n):
    start = instant(raw, case.timezone)

    deadline = case.calendar.add(start, f"{n}bd")

    assert case.calendar.business_days_between(start, deadline) == n
    assert case.calendar.business_days_between(deadline, start) == -n


@pytest.mark.parametrize("case", CASES)
@settings(max_examples=100, deadline=None)
@given(raw=raw_instants, offset=st.integers(-800 * 86400, 800 * 86400))
def test_business_days_between_equals_the_day_by_day_reference(case: Case, raw, offset):
    a = instant(raw, case.timezone)
    b = a + timedelta(seconds=offset)

    want = case.reference_business_days_between(a, b)

    assert case.calendar.business_days_between(a, b) == want


# -- the years are built lazily, with the answers of the full table --------------------------------


def full_table(country: str, subdiv: str | None) -> dict[date, str]:
    """The holiday table as it was built before years were built lazily: all years at once."""
    table = holidays_pkg.country_holidays(
        country, subdiv=subdiv, years=range(FIRST_YEAR, LAST_YEAR + 1)
    )
    return {day: str(name) for day, name in table.items()}


HOLIDAY_SOURCES = sorted(
    {(c.facts.holiday_country, c.facts.holiday_subdiv) for c in configured_cases() + EXTRA_CASES}
    - {(None, None)},
    key=str,
)


@pytest.mark.parametrize(("country", "subdiv"), HOLIDAY_SOURCES, ids=str)
def test_holidays_of_each_year_alone_equal_the_full_range_table(country, subdiv):
    full = full_table(country, subdiv)

    for year in range(FIRST_YEAR, LAST_YEAR + 1):
        want = {day: name for day, name in full.items() if day.year == year}
        assert _holiday_names(country, subdiv, year, year) == want, year


@cache
def eager(case: Case) -> Calendar:
    """The calendar of `case` with every year built up front, from the full table."""
    facts = case.facts
    table = (
        full_table(facts.holiday_country, facts.holiday_subdiv)
        if facts.holiday_country
        else case.extra_holidays
    )
    built = case.calendar
    calendar = Calendar(
        timezone=facts.timezone, weekend=facts.weekend, holidays=table, closures=built._closures
    )
    calendar.is_business_day(date(FIRST_YEAR, 1, 1))
    calendar.is_business_day(date(LAST_YEAR, 12, 31))
    return calendar


def fresh(case: Case) -> Calendar:
    """A new calendar of `case` with no year built yet (build_calendar's are cached)."""
    built = case.calendar
    return Calendar(
        timezone=built.timezone,
        weekend=built.weekend,
        holidays=built._holidays,
        closures=built._closures,
    )


@pytest.mark.parametrize("case", CASES)
@settings(max_examples=60, deadline=None)
@given(raws=st.lists(raw_instants, min_size=2, max_size=5), duration=durations)
def test_a_calendar_built_year_by_year_answers_as_the_full_table(case: Case, raws, duration):
    whole, lazy = eager(case), fresh(case)
    starts = [instant(raw, case.timezone) for raw in raws]
    first_ranks = lazy.day_and_rank_many(np.array([int(starts[0].timestamp())]))[1]

    for a, b in pairwise(starts):
        assert lazy.add(a, duration).timestamp() == whole.add(a, duration).timestamp()
        assert lazy.business_days_between(a, b) == whole.business_days_between(a, b)
        assert lazy.skipped(a, lazy.add(a, duration)) == whole.skipped(a, whole.add(a, duration))
    epoch = np.array([int(s.timestamp()) for s in starts], dtype=np.int64)
    assert lazy.add_many(epoch, duration).tolist() == whole.add_many(epoch, duration).tolist()
    # Ranks handed out before the calendar grew keep their value: differences stay counts.
    again = lazy.day_and_rank_many(np.array([int(starts[0].timestamp())]))[1]
    assert again.tolist() == first_ranks.tolist()
    lazy_days, lazy_ranks = lazy.day_and_rank_many(epoch)
    whole_days, whole_ranks = whole.day_and_rank_many(epoch)
    assert lazy_days.tolist() == whole_days.tolist()
    assert np.diff(lazy_ranks).tolist() == np.diff(whole_ranks).tolist()


def test_a_deadline_in_2026_builds_only_the_years_around_it(el_salvador):
    calendar = fresh(next(c for c in configured_cases() if c.name.startswith("SV-country")))

    calendar.add(datetime(2026, 12, 23, 15, 0, tzinfo=UTC), "10bd")

    built = calendar._years
    assert built is not None and built.last - built.first <= 4
