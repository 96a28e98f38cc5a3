"""Recurring closures and the closures that suspend calendar-day deadlines, worked by hand.

Italy's August suspension (l. 742/1969 art. 1) is the model: its days are not counted and the
count resumes on 1 September. The property tests in test_calendar.py hold `add`, `add_ts` and
`add_many` to the day-by-day reference on every shipped calendar; these pin down the meaning.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from pydantic import ValidationError

from models.calendar import Calendar, Closure, Duration, SkippedDay, build_calendar
from models.config import CalendarSpec
from models.loader import calendar_closures

ROME = ZoneInfo("Europe/Rome")
SUSPENSION = Closure("sospensione feriale", every_year=((8, 1), (8, 31)), suspends=True)
CHRISTMAS = Closure("Christmas vacation", every_year=((12, 24), (1, 1)))
HOLY_WEEK = Closure("Holy Week", easter=(-6, 0))


def rome(*closures: Closure) -> Calendar:
    return build_calendar(
        timezone="Europe/Rome",
        weekend=(5, 6),
        holiday_country="IT",
        holiday_subdiv=None,
        closures=closures,
    )


def end_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=ROME)


def every_way(calendar: Calendar, start: datetime, duration: str) -> set[float]:
    """The deadline as `add`, `add_ts` and `add_many` count it: one value when they agree."""
    many = calendar.add_many(np.array([int(start.timestamp())], dtype=np.int64), duration)
    return {
        calendar.add(start, duration).timestamp(),
        float(calendar.add_ts(start.timestamp(), Duration.parse(duration))),
        float(many[0]),
    }


def test_thirty_days_from_20_july_skip_august_and_end_19_september():
    start = datetime(2026, 7, 20, 10, 0, tzinfo=ROME)

    # 11 days of July (21-31), none of August, 19 of September.
    assert every_way(rome(SUSPENSION), start, "30d") == {end_of(date(2026, 9, 19)).timestamp()}


def test_a_count_started_inside_the_suspension_counts_1_september_as_day_one():
    calendar = rome(SUSPENSION)

    assert every_way(calendar, datetime(2026, 8, 10, 9, 0, tzinfo=ROME), "30d") == {
        end_of(date(2026, 9, 30)).timestamp()
    }
    assert every_way(calendar, datetime(2026, 8, 31, 23, 0, tzinfo=ROME), "1d") == {
        end_of(date(2026, 9, 1)).timestamp()
    }
    # The last day of July starts a count whose first day is, again, 1 September.
    assert every_way(calendar, datetime(2026, 7, 31, 8, 0, tzinfo=ROME), "1d") == {
        end_of(date(2026, 9, 1)).timestamp()
    }


def test_a_deadline_ends_at_the_end_of_its_last_counted_day():
    due = rome(SUSPENSION).add(datetime(2026, 7, 20, 10, 0, tzinfo=ROME), "30d")

    assert (due.hour, due.minute, due.second, due.tzinfo) == (23, 59, 59, ROME)


def test_hours_run_on_the_wall_clock_through_the_suspension():
    start = datetime(2026, 7, 31, 12, 0, tzinfo=ROME)

    assert rome(SUSPENSION).add(start, "48h") == datetime(2026, 8, 2, 12, 0, tzinfo=ROME)


def test_a_suspension_also_closes_business_days():
    calendar = rome(SUSPENSION)
    start = datetime(2026, 7, 30, 10, 0, tzinfo=ROME)  # a Thursday

    # Friday 31 July, then September: Tuesday 1 to Friday 4.
    assert calendar.add(start, "5bd") == end_of(date(2026, 9, 4))
    assert not calendar.is_business_day(date(2026, 8, 3))


def test_a_plain_closure_stops_business_days_only():
    calendar = rome(CHRISTMAS)
    start = datetime(2026, 12, 20, 10, 0, tzinfo=ROME)  # a Sunday

    assert calendar.add(start, "30d") == end_of(date(2027, 1, 19))
    # 21, 22 and 23 December, then closed until the weekend ends: Monday 4 January.
    assert calendar.add(start, "4bd") == end_of(date(2027, 1, 4))


def test_a_closure_across_the_year_end_closes_both_years_with_its_reason():
    calendar = rome(CHRISTMAS)
    start = datetime(2026, 12, 23, 10, 0, tzinfo=ROME)

    skipped = calendar.skipped(start, calendar.add(start, "1bd"))

    assert skipped[0] == SkippedDay(date(2026, 12, 24), "Christmas vacation")
    assert SkippedDay(date(2026, 12, 31), "Christmas vacation") in skipped
    assert SkippedDay(date(2027, 1, 1), "New Year's Day (public holiday)") in skipped
    assert not calendar.is_business_day(date(1995, 12, 28))


def test_holy_week_moves_with_easter():
    calendar = rome(HOLY_WEEK)

    # Easter Sunday: 5 April 2026, 28 March 2027.
    assert not calendar.is_business_day(date(2026, 3, 30))  # Monday of Holy Week
    assert calendar.is_business_day(date(2026, 3, 27))
    assert not calendar.is_business_day(date(2027, 3, 22))
    assert calendar.is_business_day(date(2026, 3, 23))


def test_recurring_closures_are_expanded_for_any_year_built():
    calendar = rome(SUSPENSION, HOLY_WEEK)

    for year in (1991, 2026, 2079):
        assert not calendar.is_business_day(date(year, 8, 17))
        assert calendar.is_business_day(date(year, 9, 17)) or date(year, 9, 17).weekday() >= 5
    start = datetime(2079, 7, 20, 10, 0, tzinfo=ROME)
    assert calendar.add(start, "30d") == end_of(date(2079, 9, 19))


# -- the YAML form -------------------------------------------------------------------------------


def spec(*recurring: dict[str, str]) -> CalendarSpec:
    return CalendarSpec.model_validate({"recurring": list(recurring)})


def test_the_yaml_form_builds_the_closures_after_the_dated_ones():
    parsed = CalendarSpec.model_validate(
        {
            "closures": ["2026-05-04"],
            "recurring": [
                {"every_year": "08-01..08-31", "kind": "suspension", "reason": "feriale"},
                {"easter": "-3..0", "reason": "Triduum"},
            ],
        }
    )

    assert calendar_closures(parsed) == [
        Closure("closure 2026-05-04", dated=(date(2026, 5, 4), date(2026, 5, 4))),
        Closure("feriale", every_year=((8, 1), (8, 31)), suspends=True),
        Closure("Triduum", easter=(-3, 0)),
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"every_year": "8-1..8-31", "reason": "x"}, "is not MM-DD..MM-DD"),
        ({"every_year": "02-29..03-01", "reason": "x"}, "02-29 comes once in four years"),
        ({"every_year": "04-31..05-02", "reason": "x"}, "04-31 is not a day"),
        ({"easter": "0..-3", "reason": "x"}, "must not come after the last"),
        ({"easter": "-90..0", "reason": "x"}, "within 60 days of Easter Sunday"),
        ({"reason": "x"}, "give exactly one of `every_year`"),
        ({"every_year": "08-01..08-31", "easter": "0..0", "reason": "x"}, "exactly one"),
        ({"every_year": "08-01..08-31"}, "Field required"),
        ({"every_year": "08-01..08-31", "reason": "x", "kind": "suspended"}, "'suspension'"),
    ],
)
def test_a_malformed_recurring_closure_is_refused_saying_why(entry, message):
    with pytest.raises(ValidationError, match=message):
        spec(entry)
