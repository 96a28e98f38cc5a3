"""The schema of a country routing file (`config/countries/<iso2>.yaml`) and of presets.

Every model forbids unknown keys, so a typo is an error rather than a silently ignored line.
Rules that span several fields (holders exist, steps are reachable, loops have an exit) live in
`models.loader`, which can point each problem at its line.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from models.calendar import Closure, Duration
from models.domain import (
    Direction,
    Kind,
    LegalBasis,
    OffenceCategory,
    Outcome,
    PrescriptionEffect,
    PrescriptionStart,
    Role,
    RungKind,
)
from models.errors import CalendarError

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

ID_PATTERN = r"^[a-z][a-z0-9_-]*$"
Identifier = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _as_list(value: Any) -> Any:
    """Let a matcher say `kind: mla` as well as `kind: [mla, extradition]`."""
    if value is None or isinstance(value, list):
        return value
    return [value]


def _as_duration(value: Any) -> Any:
    if isinstance(value, Duration):
        return value
    if isinstance(value, dict) and set(value) == {"amount", "unit"}:
        # The form snapshots stored before durations were serialised as text (kept readable).
        value = f"{value['amount']}{value['unit']}"
    try:
        return Duration.parse(value if isinstance(value, str) else str(value))
    except CalendarError as exc:
        # A ValueError becomes a located config problem; any other exception escapes pydantic.
        raise ValueError(str(exc)) from exc


def _yaml_bool(value: Any) -> Any:
    """Only `true` and `false`: pydantic would otherwise read `yes`, `on` or `1` as True."""
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"{value!r} is not a boolean: write true or false")


DurationField = Annotated[
    Duration, BeforeValidator(_as_duration), PlainSerializer(str, return_type=str)
]
"""A duration read from `10bd`, `30d` or `48h` and written back the same way: one serialisation
for snapshots, content hashes and JSON output, so what is dumped always loads again."""
YamlBool = Annotated[bool | None, BeforeValidator(_yaml_bool)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class HolidaySource(Strict):
    """Public holidays from the `holidays` package."""

    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    subdiv: str | None = None


MONTH_DAYS_RE = re.compile(r"^(\d{2})-(\d{2})\.\.(\d{2})-(\d{2})$")
EASTER_RE = re.compile(r"^([+-]?\d{1,2})\.\.([+-]?\d{1,2})$")


class RecurringClosure(Strict):
    """A closure that comes back every year: on the same month-days, or around Easter."""

    every_year: str | None = None
    """`08-01..08-31` (MM-DD..MM-DD, inclusive); `12-24..01-01` runs into the next year."""
    easter: str | None = None
    """`-3..0`: days from Easter Sunday (Western), inclusive; -3..0 is Maundy Thursday to Easter
    Sunday, -6..0 Monday of Holy Week to Easter Sunday."""
    reason: Annotated[str, Field(min_length=1)]
    """Shown for each day it closes (cite the law)."""
    kind: Literal["closed", "suspension"] = "closed"
    """`closed` closes business days; `suspension` also stops calendar-day (`d`) deadlines,
    whose count skips its days (l. 742/1969 art. 1: Italy's August suspension)."""

    @field_validator("every_year")
    @classmethod
    def _month_days(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = MONTH_DAYS_RE.match(value)
        if match is None:
            raise ValueError(
                f"every_year {value!r} is not MM-DD..MM-DD (e.g. 08-01..08-31, or 12-24..01-01 "
                "across the year end)"
            )
        for month, day in (match.group(1, 2), match.group(3, 4)):
            if (month, day) == ("02", "29"):
                raise ValueError("02-29 comes once in four years: use 02-28 or 03-01")
            try:
                date(2001, int(month), int(day))
            except ValueError as exc:
                message = f"every_year {value!r}: {month}-{day} is not a day ({exc})"
                raise ValueError(message) from None
        return value

    @field_validator("easter")
    @classmethod
    def _easter_offsets(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = EASTER_RE.match(value)
        if match is None:
            raise ValueError(
                f"easter {value!r} is not FIRST..LAST in days from Easter Sunday (e.g. -3..0)"
            )
        first, last = int(match.group(1)), int(match.group(2))
        if not -60 <= first <= last <= 60:
            raise ValueError(
                f"easter {value!r}: the first day must not come after the last, both within "
                "60 days of Easter Sunday"
            )
        return value

    @model_validator(mode="after")
    def _one_rule(self) -> RecurringClosure:
        if (self.every_year is None) == (self.easter is None):
            raise ValueError("give exactly one of `every_year` (MM-DD..MM-DD) or `easter` (-3..0)")
        return self

    def closure(self) -> Closure:
        """The calendar's closure this entry describes."""
        suspends = self.kind == "suspension"
        if self.every_year is not None:
            m = MONTH_DAYS_RE.match(self.every_year)
            assert m is not None
            first, last = (int(m[1]), int(m[2])), (int(m[3]), int(m[4]))
            return Closure(self.reason, every_year=(first, last), suspends=suspends)
        assert self.easter is not None
        e = EASTER_RE.match(self.easter)
        assert e is not None
        return Closure(self.reason, easter=(int(e[1]), int(e[2])), suspends=suspends)


class CalendarSpec(Strict):
    weekend: list[Weekday] = ["sat", "sun"]
    holidays: HolidaySource | None = None
    closures: list[str] = []
    """Extra closed days: `2026-08-03` or a range `2026-08-03/2026-08-06` (inclusive)."""
    recurring: list[RecurringClosure] = []
    """Closures that come back every year, each with its reason; they never run out."""

    @field_validator("weekend")
    @classmethod
    def _weekend_is_not_the_whole_week(cls, value: list[Weekday]) -> list[Weekday]:
        if len(set(value)) >= 7:
            raise ValueError("every day is a weekend day: leave at least one working day")
        if len(set(value)) != len(value):
            raise ValueError("a weekend day is listed twice")
        return value

    @field_validator("closures")
    @classmethod
    def _closures_are_dates(cls, value: list[str]) -> list[str]:
        for item in value:
            parts = item.split("/")
            if len(parts) > 2 or not all(DATE_RE.match(p) for p in parts):
                raise ValueError(
                    f"closure {item!r} is not a date (YYYY-MM-DD) "
                    "or a range (YYYY-MM-DD/YYYY-MM-DD)"
                )
        return value


class Authority(Strict):
    name: Annotated[str, Field(min_length=1)]
    kind: Literal[
        "judiciary",
        "ministry",
        "foreign_affairs",
        "prosecution",
        "central_authority",
        "police",
        "financial_intelligence",
        "anti_corruption",
        "asset_recovery_office",
        "foreign",
    ]
    timezone: str | None = None
    calendar: CalendarSpec | None = None
    """Replaces the country's weekend/holidays when set; its closures add to the country's."""
    contacts: dict[Role, str] = {}
    """Apprise tags for this authority, overriding the country-wide templates."""


ROUTING_FIELDS = ("kind", "direction", "legal_basis", "coercive", "urgent", "counterpart")
"""The request fields a `when` matcher looks at."""


class Matcher(Strict):
    """Request fields a route or a conditional step applies to; an absent field matches all."""

    kind: Annotated[list[Kind] | None, BeforeValidator(_as_list)] = None
    direction: Direction | None = None
    legal_basis: Annotated[list[LegalBasis] | None, BeforeValidator(_as_list)] = None
    coercive: YamlBool = None
    urgent: YamlBool = None
    counterpart: Annotated[list[str] | None, BeforeValidator(_as_list)] = None
    """ISO 3166 alpha-2 codes of the other state."""

    def matches(self, request: dict[str, Any]) -> bool:
        """Whether `request` fits: `mismatches` is empty, found without wording the misses."""
        for name in ("kind", "legal_basis", "counterpart"):
            allowed = getattr(self, name)
            if allowed is not None and request.get(name) not in allowed:
                return False
        for name in ("direction", "coercive", "urgent"):
            wanted = getattr(self, name)
            if wanted is not None and request.get(name) != wanted:
                return False
        return True

    def mismatches(self, request: dict[str, Any]) -> list[str]:
        """The fields of `request` this matcher rejects (empty: it matches)."""
        out: list[str] = []
        for name in ("kind", "legal_basis", "counterpart"):
            allowed = getattr(self, name)
            if allowed is not None and request.get(name) not in allowed:
                out.append(f"{name} {request.get(name)!r} not in {[str(a) for a in allowed]}")
        for name in ("direction", "coercive", "urgent"):
            wanted = getattr(self, name)
            if wanted is not None and request.get(name) != wanted:
                out.append(f"{name} is {request.get(name)!r}, route needs {wanted!r}")
        return out


class Rung(Strict):
    """One level of an escalation ladder, fired once per hop occurrence (and on each repeat)."""

    at: str
    """A share of the SLA (`75%`) or an offset from the hop's opening (`3bd`, `48h`)."""
    notify: Annotated[list[Role], Field(min_length=1)]
    kind: RungKind
    repeat: DurationField | None = None

    @field_validator("at")
    @classmethod
    def _at_is_share_or_offset(cls, value: str) -> str:
        if value.endswith("%"):
            number = value[:-1]
            if not number.isdigit() or not 1 <= int(number) <= 1000:
                raise ValueError(f"{value!r}: a share must be a whole percentage from 1% to 1000%")
            return value
        _as_duration(value)
        return value

    @property
    def share(self) -> float | None:
        return int(self.at[:-1]) / 100 if self.at.endswith("%") else None

    @property
    def offset(self) -> Duration | None:
        return None if self.at.endswith("%") else Duration.parse(self.at)


Target = str
"""`next`, `end`, `requester`, `stay`, or the id of a step of the same route."""
SPECIAL_TARGETS = ("next", "end", "requester", "stay")


class Step(Strict):
    id: Identifier
    holder: Identifier
    sla: DurationField | None = None
    preset: str | None = None
    """A preset deadline instead of `sla`, as `<preset>.<deadline>`, counted from the hop's
    opening (the form of routings published before legal deadlines: new files use `deadline`)."""
    deadline: Identifier | None = None
    """Instead of `sla`: the hop is due when the route's legal deadline of this id is due
    (counted from the event the law names, moved by its extensions)."""
    when: Matcher | None = None
    """The step applies only to requests this matches; others skip it."""
    decisions: dict[Outcome, Target] | None = None
    """Allowed decisions and where each leads; see `Route.decisions_for` for the defaults."""
    escalation: list[Rung] | None = None
    note: str | None = None


ANCHOR_RE = re.compile(
    r"^(received|arrest|consent|decision"
    r"|opened:[a-z][a-z0-9_-]*|decided:[a-z][a-z0-9_-]*(:[a-z_]+)?)$"
)
"""`decided:<step>` is any decision of the step that settles it (not `returned` nor
`postponed`); `decided:<step>:<outcome>` only that outcome (the EAW's final decision on consent
is `executed`, while `forwarded` there means "no consent, decide on the contested case").
`opened:<step>` is the first opening of the step: on an outgoing route, the request reaching the
executing state (its receipt abroad)."""
ANCHOR_WORDS = {
    "received": "receipt of the request",
    "arrest": "the arrest",
    "consent": "the person's consent",
    "decision": "the decision the law names",
}


def anchor_words(anchor: str) -> str:
    """`decided:recognition` as "the decision of step recognition", for status and notices."""
    if anchor.startswith("decided:"):
        step, _, outcome = anchor.removeprefix("decided:").partition(":")
        return f"the decision of step {step}" + (f" ({outcome})" if outcome else "")
    if anchor.startswith("opened:"):
        return f"the request reaching step {anchor.removeprefix('opened:')}"
    return ANCHOR_WORDS[anchor]


def _anchors(value: Any) -> Any:
    value = _as_list(value)
    for item in value or ():
        if not isinstance(item, str) or not ANCHOR_RE.match(item):
            raise ValueError(
                f"{item!r} is not an event a deadline can run from: write received, arrest, "
                "consent, opened:<step id> (the request reaching that step), decided:<step id> "
                "(a decision of that step) or decided:<step id>:<outcome>"
            )
    return value


Anchors = Annotated[list[str], BeforeValidator(_anchors), Field(min_length=1)]
StepOutcome = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*(:[a-z_]+)?$", max_length=100)]


class Extension(Strict):
    """How far the law lets the executing authority extend a deadline, once, with notice."""

    by: DurationField
    source: str


class LegalDeadline(Strict):
    """A deadline set by law, counted from a case event, beside the hops' own SLAs.

    It starts when the first of its `runs_from` events happens (receipt, a recorded arrest or
    consent, a step's decision), is met by a decision of one of its `met_by` steps, and moves
    only by the events the law provides (an extension notified, a new surrender date agreed, a
    shorter deadline requested).
    """

    id: Identifier
    preset: str | None = None
    """`<preset>.<deadline>`: length, starting event, extension and source from the preset."""
    length: DurationField | None = None
    runs_from: Anchors | None = None
    """Overrides the preset's; the preset's `decision` must be named here as decided:<step>."""
    met_by: Annotated[list[StepOutcome], BeforeValidator(_as_list), Field(min_length=1)]
    """Steps whose decision meets it: `<step>` (any decision but returned or postponed) or
    `<step>:<outcome>` (that outcome only)."""
    extension: Extension | None = None
    source: str | None = None
    escalation: list[Rung] | None = None


class Route(Strict):
    id: Identifier
    name: str | None = None
    when: Matcher = Matcher()
    steps: Annotated[list[Step], Field(min_length=1)]
    escalation: list[Rung] | None = None
    deadlines: list[LegalDeadline] = []
    """Legal deadlines running beside the steps' SLAs (EU instruments)."""

    def deadline(self, deadline_id: str) -> LegalDeadline:
        for deadline in self.deadlines:
            if deadline.id == deadline_id:
                return deadline
        raise KeyError(deadline_id)

    def decisions_for(self, index: int) -> dict[Outcome, Target]:
        """The decisions allowed on step `index` and their targets.

        Without an explicit `decisions` map, a step that is not last may be forwarded to the next
        step, returned to the requester or refused; the last step may also be executed (fully or
        partly) or postponed, and may not be forwarded.
        """
        step = self.steps[index]
        if step.decisions is not None:
            return dict(step.decisions)
        last = index == len(self.steps) - 1
        if not last:
            return {
                Outcome.FORWARDED: "next",
                Outcome.RETURNED: "requester",
                Outcome.REFUSED: "end",
            }
        return {
            Outcome.EXECUTED: "end",
            Outcome.PARTIALLY_EXECUTED: "end",
            Outcome.REFUSED: "end",
            Outcome.POSTPONED: "stay",
            Outcome.RETURNED: "requester",
        }

    def step_index(self, step_id: str) -> int:
        for i, step in enumerate(self.steps):
            if step.id == step_id:
                return i
        raise KeyError(step_id)

    def rungs_for(self, index: int, default: list[Rung]) -> list[Rung]:
        step = self.steps[index]
        if step.escalation is not None:
            return step.escalation
        if self.escalation is not None:
            return self.escalation
        return default


class PrescriptionPeriod(Strict):
    offences: Annotated[list[OffenceCategory], Field(min_length=1)]
    years: Annotated[float, Field(gt=0, le=100)]
    start: PrescriptionStart = PrescriptionStart.OFFENCE_DATE
    cap_years: Annotated[float | None, Field(gt=0, le=100)] = None
    """Absolute cap, in years from the offence date (e.g. CPP art. 9-1: 12 for hidden délits)."""
    cap_factor: Annotated[float | None, Field(ge=1, le=10)] = None
    """Cap as a multiple of the period (StGB § 78c(3): 2; c.p. art. 161: 1.5)."""
    offences_from: date | None = None
    """The first offence date this period applies to (a reform that lengthened it)."""
    offences_until: date | None = None
    """The last offence date this period applies to (the period a later reform replaced)."""
    source: str | None = None

    def applies_to(self, offence_date: date) -> bool:
        return _within(offence_date, self.offences_from, self.offences_until)


class PrescriptionRule(Strict):
    """A named effect and the offences it applies to: a reform binds only later offences."""

    rule: PrescriptionEffect
    offences_from: date | None = None
    offences_until: date | None = None
    source: str | None = None
    """The law that brought the rule in or ended it (e.g. "L. 103/2017 art. 1(11), (15)")."""

    def applies_to(self, offence_date: date) -> bool:
        return _within(offence_date, self.offences_from, self.offences_until)


def _within(day: date, first: date | None, last: date | None) -> bool:
    return (first is None or first <= day) and (last is None or day <= last)


def _rule_from_name(value: Any) -> Any:
    # `effects: [us-3292]`, the form every routing pinned before dated rules, still loads.
    return {"rule": value} if isinstance(value, str) else value


def _rule_as_written(rule: PrescriptionRule) -> Any:
    # A rule without dates dumps as its bare name, so the routing versions of files that did
    # not change keep their content hash.
    written = rule.model_dump(mode="json", exclude_none=True)
    return rule.rule.value if written.keys() == {"rule"} else written


class NoPrescription(Strict):
    """Offences the country sets no limitation period for (or has no such offence), and why."""

    offences: Annotated[list[OffenceCategory], Field(min_length=1)]
    reason: Annotated[str, Field(min_length=1)]


class Prescription(Strict):
    periods: Annotated[list[PrescriptionPeriod], Field(min_length=1)]
    none: list[NoPrescription] = []
    """Offences with no period, each with its reason; `rogatory validate` warns of an offence
    category in neither list."""
    effects: list[
        Annotated[
            PrescriptionRule,
            BeforeValidator(_rule_from_name),
            PlainSerializer(_rule_as_written),
        ]
    ] = []
    """How requests abroad suspend or interrupt the period, with the offences each applies to."""


class CountryConfig(Strict):
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    name: Annotated[str, Field(min_length=1)]
    timezone: str
    calendar: CalendarSpec = CalendarSpec()
    authorities: Annotated[dict[Identifier, Authority], Field(min_length=1)]
    contacts: dict[Role, str]
    """Apprise tags per role; `{authority}` in a tag is replaced by the holder's id."""
    routes: Annotated[list[Route], Field(min_length=1)]
    escalation: list[Rung] = []
    prescription: Prescription | None = None
    retention_years: Annotated[int, Field(ge=1, le=100)] = 10
    """How long a closed case keeps its personal data before `rogatory erase` may destroy it."""

    def route(self, route_id: str) -> Route:
        for route in self.routes:
            if route.id == route_id:
                return route
        raise KeyError(route_id)

    def contact(self, role: Role, authority: str) -> str | None:
        """The apprise tag for `role` about a hop held by `authority`."""
        own = self.authorities[authority].contacts.get(role)
        if own is not None:
            return own
        template = self.contacts.get(role)
        return None if template is None else template.replace("{authority}", authority)


class PresetDeadline(Strict):
    sla: DurationField
    """The deadline's length."""
    source: str
    note: str | None = None
    runs_from: Anchors | None = None
    """The event it counts from (`decision`: a route names which step's, as decided:<step>);
    absent in presets written before legal deadlines, which counted from the hop's opening."""
    extension: Extension | None = None


class Preset(Strict):
    """Deadlines set by an instrument (e.g. the EIO directive), used by reference from steps."""

    id: Identifier
    name: str
    source: str
    deadlines: Annotated[dict[Identifier, PresetDeadline], Field(min_length=1)]
