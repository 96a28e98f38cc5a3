"""Prescription arithmetic: the day a case can no longer be prosecuted, and what moved it there.

Pure functions over calendar dates. Each rule cites the law it follows (shared/reference/domain.md,
"Limitation periods"), and every event leaves a `Movement` in the history with its arithmetic.
"""

from __future__ import annotations

import datetime
import math
from calendar import monthrange
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum

from models.config import Prescription, PrescriptionPeriod, PrescriptionRule
from models.domain import OffenceCategory, PrescriptionEffect, PrescriptionStart, RequestMaker

US = PrescriptionEffect.US_3292
IT = PrescriptionEffect.IT_159_3TER
DE = PrescriptionEffect.DE_78C
FR = PrescriptionEffect.FR_9

KOZENY = "United States v. Kozeny, 541 F.3d 166 (2d Cir. 2008)"
ATIYEH = "United States v. Atiyeh, 402 F.3d 354 (3d Cir. 2005)"
US_EARLY_CAP_MONTHS = 6  # 18 U.S.C. § 3292(c)(2): final action before the ordinary expiry
US_TOTAL_CAP_MONTHS = 36  # 18 U.S.C. § 3292(c)(1): all suspensions together
IT_ROGATORY_CAP_MONTHS = 6  # c.p. art. 159(1) n. 3-ter: "non oltre sei mesi"
DE_DEFAULT_CAP_FACTOR = 2.0  # StGB § 78c(3): "das Doppelte der gesetzlichen Verjährungsfrist"


class EventKind(StrEnum):
    """What happened in a case that may move its prescription date."""

    REQUEST_SENT_ABROAD = "request_sent_abroad"  # official request for evidence/assistance abroad
    SUSPENSION_ORDERED = "suspension_ordered"  # a court granted suspension (§ 3292; CPP 9-3)
    FOREIGN_FINAL_ACTION = "foreign_final_action"  # foreign authority acted / documents arrived
    INTERRUPTING_ACT = "interrupting_act"  # an act that interrupts (§ 78c, CPP 9-2, c.p. 160)


# On one day, a request is sent before it is answered, so a same-day pair is a closed window.
_SAME_DAY_ORDER = {
    EventKind.REQUEST_SENT_ABROAD: 0,
    EventKind.SUSPENSION_ORDERED: 1,
    EventKind.INTERRUPTING_ACT: 2,
    EventKind.FOREIGN_FINAL_ACTION: 3,
}


@dataclass(frozen=True)
class PrescriptionEvent:
    kind: EventKind
    on: date
    request: str | None = None
    """Which request abroad a start/end pair belongs to (None: the only one)."""
    applied_on: date | None = None
    """For a § 3292 order: the day the United States applied for it (Kozeny). Events recorded
    before this field existed have none; their order date stands in, being no earlier."""
    by: RequestMaker | None = None
    """For a request abroad: who made it (StGB § 78c(1) Nr. 12 counts only a judge's)."""

    @property
    def legal_day(self) -> date:
        """The day the law looks at to ask whether the event came in time: an order's
        application, anything else's own day."""
        return self.applied_on or self.on


@dataclass(frozen=True)
class PendingRequest:
    request: str | None
    sent: date

    def __str__(self) -> str:
        name = "(no name)" if self.request is None else repr(self.request)
        return f"{name} sent {self.sent}"


@dataclass(frozen=True)
class Movement:
    """One step of the history: what happened on `on` and how it moved the date."""

    on: date
    cause: str
    """An `EventKind` value, `base`, or `pending` (a suspension still open on `as_of`)."""
    before: date | None
    after: date
    why: str


@dataclass(frozen=True)
class PrescriptionResult:
    # `datetime.date`: inside this class, a bare `date` would name the field.
    date: datetime.date
    """The first day on which the case can no longer be prosecuted."""
    base: datetime.date
    """The same day without any suspension or interruption (the absolute cap still applies)."""
    history: tuple[Movement, ...]
    running: bool
    """A suspension is still open on `as_of`; `date` is counted as if it ended that day."""


# How each rule counts, as `status` states it. The date computed is always the first day barred
# under German counting (offence + period); where a law leaves the first day out, it errs a day
# early, on the side of acting in time.
COUNTING: dict[PrescriptionEffect | None, str] = {
    US: (
        '18 U.S.C. § 3282(a) "within five years next after": the offence day is not counted '
        "(Fed. R. Crim. P. 45(a)(1)(A)), so an indictment on the date shown is still in time; "
        "the date shown is a day early"
    ),
    IT: (
        "c.p. art. 14: the common calendar, the starting day not counted, so the date shown is "
        "still the last day to act; it is a day early"
    ),
    DE: (
        "StGB § 78a as the courts count it: the day of the offence counts, the period ends with "
        "the day before the anniversary, so the date shown is the first day barred"
    ),
    FR: (
        'CPP arts. 7-8, 9-1 "années révolues": the starting day is not counted and the '
        "period ends at the end of the anniversary, so the date shown is a day early"
    ),
    None: "the date shown is the start plus the period, the first day prosecution is barred",
}
MONTHS_NOTE = (
    "years and the 6-month caps count calendar months (2023-01-10 + 6 months = 2023-07-10; a "
    "month-end clamps: 2023-08-31 + 6 months = 2024-02-29), never a number of days"
)
RULES: dict[PrescriptionEffect, str] = {
    US: (
        "a court order on application suspends from the official request to the foreign final "
        "action (§ 3292(b)); the application must precede expiry (Kozeny) and the order the "
        "final action (Atiyeh); at most 3 years, or 6 months if every final action precedes "
        "the ordinary expiry (§ 3292(c))"
    ),
    IT: (
        "a letter rogatory suspends from its order until the documents arrive, at most 6 months "
        "(c.p. art. 159(1) n. 3-ter); interruptions (art. 160) at most the cap of art. 161"
    ),
    DE: (
        "a judge's request abroad interrupts (StGB § 78c(1) Nr. 12), a prosecutor's or the "
        "police's does not; at most twice the period (§ 78c(3))"
    ),
    FR: (
        "acts of investigation, requests abroad among them, interrupt (CPP art. 9-2) and start "
        "a new period equal to the initial one, beyond the 12-year limit of art. 9-1 when made "
        "before it; an obstacle suspends (art. 9-3)"
    ),
}


def describe_rules(
    prescription: Prescription, *, offence: OffenceCategory, offence_date: date
) -> list[str]:
    """What `status` says of the law applied to a case: period, rules, counting, rules left out."""
    period = period_for(prescription, offence, offence_date=offence_date)
    if period is None:
        return [no_period_reason(prescription, offence, offence_date=offence_date)]
    applied, not_applied = rules_in_force(prescription.effects, offence_date=offence_date)
    start = "discovery" if period.start is PrescriptionStart.DISCOVERY_DATE else "offence"
    lines = [f"period: {period.years:g} years from the {start} ({period.source or 'no source'})"]
    lines += [f"{rule}: {RULES[rule]}" for rule in sorted(applied)]
    lines += list(not_applied)
    # The counting belongs to the country's law, so it is stated even for a rule not applied.
    systems: Sequence[PrescriptionEffect | None] = sorted({e.rule for e in prescription.effects})
    for rule in systems or [None]:
        lines.append(f"counting ({rule or 'this country'}): {COUNTING[rule]}")
    lines.append(f"counting: {MONTHS_NOTE}")
    return lines


def no_period_reason(
    prescription: Prescription | None, offence: OffenceCategory, *, offence_date: date
) -> str:
    """Why a case has no prescription date: the law's own reason where the country file
    states one (`none:`), else that no period is configured."""
    for entry in prescription.none if prescription else ():
        if offence in entry.offences:
            return f"{offence} does not prescribe: {entry.reason}"
    return f"no limitation period configured for {offence} committed on {offence_date}"


def period_for(
    prescription: Prescription, offence: OffenceCategory, *, offence_date: date
) -> PrescriptionPeriod | None:
    """The period for `offence` committed on `offence_date`, or None if the country sets none.

    A reform that changed a period binds only offences committed after it (the periods of one
    offence cover offence dates that do not overlap: `models.loader` checks it).
    """
    for period in prescription.periods:
        if offence in period.offences and period.applies_to(offence_date):
            return period
    return None


def rules_in_force(
    effects: Sequence[PrescriptionEffect | PrescriptionRule], *, offence_date: date
) -> tuple[frozenset[PrescriptionEffect], tuple[str, ...]]:
    """The rules that apply to an offence of `offence_date`, and why each other one does not."""
    applied: set[PrescriptionEffect] = set()
    refused: list[tuple[PrescriptionEffect, str]] = []
    for effect in effects:
        rule = effect if isinstance(effect, PrescriptionRule) else PrescriptionRule(rule=effect)
        if rule.applies_to(offence_date):
            applied.add(rule.rule)
            continue
        law = rule.source or "the law that brought it in"
        if rule.offences_from is not None and offence_date < rule.offences_from:
            why = f"predates {law} (in force {rule.offences_from})"
        else:
            why = f"comes after {rule.offences_until}, the last offence date {law} covers"
        refused.append((rule.rule, f"{rule.rule} not applied: the offence ({offence_date}) {why}"))
    # A rule listed again for other offence dates, and applying under that entry, is applied.
    return frozenset(applied), tuple(why for rule, why in refused if rule not in applied)


def prescription_date(
    *,
    period: PrescriptionPeriod,
    effects: Sequence[PrescriptionEffect | PrescriptionRule],
    offence_date: date,
    discovery_date: date | None,
    events: Sequence[PrescriptionEvent],
    as_of: date,
) -> PrescriptionResult:
    """The day the case prescribes, given what has happened up to `as_of`.

    Counting: the period runs from its start (the offence, or the discovery when the period says
    so and a discovery date is known) and `date` is the first day on which prosecution is barred,
    start + years. This is German counting (the period ends with the day before the anniversary);
    where the law leaves the first day out (US, Italy, France: `COUNTING`), the bar falls a day
    later, so the date here errs, if at all, a day early. Fractional years count as whole months
    (rounded); a month-end date clamps (2020-02-29 + 1 year = 2021-02-28). The 6-month caps are
    calendar months too (2023-01-10 + 6 months = 2023-07-10), never a number of days.

    `effects` may bound a rule to offence dates (`PrescriptionRule`): a rule that does not apply
    to this offence is named in the base movement with the reason.

    A suspension from day s to day e stops the clock on days s .. e-1: it adds (e - s) days, and
    overlapping suspensions count once. An interruption on day i restarts the full period: the
    date becomes i + years plus any suspended days after i.

    Events are taken in date order. One dated on or after the date computed from the events
    before it, before the period's start, or after `as_of` has no effect; each still appears in
    the history, so every event has exactly one `Movement`. A suspension still open on `as_of` is
    counted up to `as_of`; `running` says whether it is still stopping the clock.
    """
    if discovery_date is not None and discovery_date < offence_date:
        raise ValueError(
            f"discovery date {discovery_date} precedes the offence date {offence_date}: "
            "an offence cannot be discovered before it is committed; check both dates"
        )
    law = _Law(period=period, effects=effects, offence_date=offence_date, discovery=discovery_date)
    history = [Movement(on=law.start, cause="base", before=None, after=law.base, why=law.base_why)]
    accepted: list[PrescriptionEvent] = []
    later: list[PrescriptionEvent] = []
    for event in sorted(events, key=lambda e: (e.on, _SAME_DAY_ORDER[e.kind])):
        if event.on > as_of:
            later.append(event)
            continue
        before = law.reckon(accepted, until=event.on)
        after = before
        if event.on < law.start:
            why = f"came before the period started on {law.start}: no effect"
        elif before.date <= event.legal_day:
            # A prescribed case stays prescribed. For § 3292 the application is what must come
            # in time, the order may follow expiry (United States v. Kozeny, 541 F.3d 166 (2d
            # Cir. 2008)).
            why = f"came after prescription on {before.date}: no effect"
            if event.applied_on is not None:
                why = (
                    f"applied for on {event.applied_on}, after prescription on {before.date}: "
                    f"no effect (the application must precede expiry: {KOZENY})"
                )
        else:
            leads = law.effect_of(event, accepted)
            accepted.append(event)
            after = law.reckon(accepted, until=event.on)
            why = law.unconfigured(event)
            if leads:
                why = f"{'; '.join(leads)}; date: {after.arithmetic}"
        history.append(Movement(event.on, event.kind.value, before.date, after.date, why))
    final = law.reckon(accepted, until=as_of)
    if final.pending:
        why = f"{'; '.join(final.pending)}; date: {final.arithmetic}"
        history.append(Movement(as_of, "pending", history[-1].after, final.date, why))
    for event in later:
        why = f"dated after as_of {as_of}: not counted yet"
        history.append(Movement(event.on, event.kind.value, final.date, final.date, why))
    return PrescriptionResult(
        date=final.date, base=law.base, history=tuple(history), running=final.running
    )


@dataclass(frozen=True)
class _Reckoning:
    date: date
    arithmetic: str
    running: bool
    pending: tuple[str, ...]


@dataclass
class _Suspensions:
    """The windows in which the clock stopped, with their arithmetic and what is still open."""

    windows: list[tuple[date, date]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    running: bool = False
    limit: tuple[date, str] | None = None
    """The latest date the suspensions may carry the period to, and the law that says so
    (§ 3292(c): the expiry plus 6 months or 3 years, counted in months, not days)."""


@dataclass
class _Cycle:
    """One request abroad, from sending to final action, with the court order if any."""

    request: str | None
    sent: date | None = None
    ordered: date | None = None
    final: date | None = None

    @property
    def ordered_in_time(self) -> bool:
        """§ 3292: the order came before the foreign authority's final action (Atiyeh)."""
        return self.ordered is not None and (self.final is None or self.ordered <= self.final)


class _Law:
    """One limitation period and its configured rules, applied to one case."""

    def __init__(
        self,
        *,
        period: PrescriptionPeriod,
        effects: Sequence[PrescriptionEffect | PrescriptionRule],
        offence_date: date,
        discovery: date | None,
    ) -> None:
        self.rules, self.not_applied = rules_in_force(effects, offence_date=offence_date)
        # Arts. 160-161 c.p. (interruption, its cap) bind every Italian case; only the rogatory
        # suspension of art. 159(1) n. 3-ter is bounded to offences from L. 103/2017 on.
        configured = {e.rule if isinstance(e, PrescriptionRule) else e for e in effects}
        self.italian = IT in configured
        self.offence_date = offence_date
        self.years = period.years
        self.months = _months(period.years)
        from_discovery = period.start is PrescriptionStart.DISCOVERY_DATE
        # A hidden offence not (yet) discovered is counted from the offence: the earliest, so
        # the safest, date a prosecutor can be told.
        if from_discovery and discovery is not None:
            self.start, self.start_label = discovery, "discovery"
        else:
            self.start, self.start_label = offence_date, "offence"
        # StGB § 78c(3) sets the 2× cap even where the config names no factor.
        self.cap_factor = period.cap_factor
        if self.cap_factor is None and DE in self.rules:
            self.cap_factor = DE_DEFAULT_CAP_FACTOR
        self.factor_cite = "configured cap_factor"
        if DE in self.rules:
            self.factor_cite = "StGB § 78c(3)"
        elif self.italian:
            self.factor_cite = "c.p. art. 161"
        self.cap_years = period.cap_years
        self.absolute = (
            None
            if period.cap_years is None
            else _add_months(offence_date, _months(period.cap_years))
        )
        self.absolute_cite = "CPP art. 9-1" if FR in self.rules else "configured cap_years"
        self.base = _add_months(self.start, self.months)
        self.base_why = f"{self.start} ({self.start_label}) + {self._years()} = {self.base}"
        if from_discovery and discovery is None:
            self.base_why += " (no discovery date given: counted from the offence)"
        if self.absolute is not None and self.base > self.absolute:
            self.base = self.absolute
            self.base_why += f", {self._absolute_clause()}"
        for note in self.not_applied:
            self.base_why += f"; {note}"

    def _years(self) -> str:
        text = f"{self.years:g} years"
        return text if self.years * 12 == self.months else f"{text} ({self.months} months)"

    def _absolute_clause(self) -> str:
        return (
            f"capped at {self.offence_date} + {self.cap_years:g} years = {self.absolute} "
            f"({self.absolute_cite})"
        )

    def interruption_cites(self, event: PrescriptionEvent) -> list[str]:
        """The laws under which `event` restarts the period."""
        cites: list[str] = []
        if event.kind is EventKind.INTERRUPTING_ACT:
            cites += ["StGB § 78c(1)"] if DE in self.rules else []
            cites += ["c.p. art. 160"] if self.italian else []
            cites += ["CPP art. 9-2"] if FR in self.rules else []
        elif event.kind is EventKind.REQUEST_SENT_ABROAD:
            # § 78c(1) Nr. 12: "jedes richterliche Ersuchen, eine Untersuchungshandlung im
            # Ausland vorzunehmen": a judge's request only. In France any act of investigation
            # interrupts, whoever made it (art. 9-2, 2° prosecutor and police, 3° judge). Italy
            # lists no such act in art. 160: there the letter rogatory only suspends.
            judge = event.by is RequestMaker.JUDGE
            cites += ["StGB § 78c(1) Nr. 12"] if DE in self.rules and judge else []
            cites += ["CPP art. 9-2"] if FR in self.rules else []
        return cites

    def unconfigured(self, event: PrescriptionEvent) -> str:
        names = ", ".join(sorted(self.rules)) or "none"
        why = f"no effect: no configured rule ({names}) gives '{event.kind}' events any effect"
        return "; ".join([why, *self.not_applied])

    def effect_of(
        self, event: PrescriptionEvent, accepted: Sequence[PrescriptionEvent]
    ) -> list[str]:
        """What `event` does under the configured rules, in words; empty if no rule uses it."""
        cycles = _cycles(accepted)
        name = _quoted(event.request)
        leads: list[str] = []
        cites = self.interruption_cites(event)
        if cites:
            leads.append(
                f"interrupts ({'; '.join(cites)}): the full period runs again from {event.on}"
            )
        elif event.kind is EventKind.REQUEST_SENT_ABROAD and DE in self.rules:
            made = "who made it is not recorded" if event.by is None else f"made by the {event.by}"
            leads.append(
                f"request{name} {made}: no interruption (StGB § 78c(1) Nr. 12 counts only "
                '"jedes richterliche Ersuchen", a judge\'s request; an act of the prosecutor '
                "that interrupts under another number of § 78c(1) is recorded as interrupting_act)"
            )
        if event.kind is EventKind.REQUEST_SENT_ABROAD:
            leads += self._request_leads(event, _open_cycle(cycles, event.request), name)
        elif event.kind is EventKind.SUSPENSION_ORDERED:
            leads += self._order_leads(event, _order_target(cycles, event.request), name)
        elif event.kind is EventKind.FOREIGN_FINAL_ACTION:
            leads += self._final_leads(_open_cycle(cycles, event.request), name)
        return leads

    def _request_leads(
        self, event: PrescriptionEvent, current: _Cycle | None, name: str
    ) -> list[str]:
        if current is not None and current.sent is not None:
            if self.rules & {US, IT}:
                return [f"request{name} already pending since {current.sent}: no new suspension"]
            return []
        leads: list[str] = []
        if IT in self.rules:
            leads.append(
                f"letter rogatory{name} suspends from {event.on} until the documents arrive, "
                "for at most 6 months (c.p. art. 159(1) n. 3-ter)"
            )
        elif self.italian:
            leads += [f"letter rogatory{name}: no suspension, {n}" for n in self.not_applied]
        if US in self.rules and current is not None and current.ordered is not None:
            leads.append(f"suspended under § 3292 from {event.on}, as ordered on {current.ordered}")
        elif US in self.rules:
            leads.append(
                f"request{name} sent abroad: it suspends only if a court so orders "
                "(18 U.S.C. § 3292)"
            )
        return leads

    def _order_leads(self, event: PrescriptionEvent, target: _Cycle | None, name: str) -> list[str]:
        if target is not None and target.ordered is not None:
            if self.rules & {US, FR}:
                return [f"suspension for the request{name} already ordered on {target.ordered}"]
            return []
        leads: list[str] = []
        if US in self.rules and target is not None and target.final is not None:
            leads.append(
                f"the foreign authority took final action on the request{name} on "
                f"{target.final}, before this order: no suspension ({ATIYEH})"
            )
        elif US in self.rules and target is not None and target.sent is not None:
            applied = (
                "" if event.applied_on is None else f" on the application of {event.applied_on}"
            )
            leads.append(
                f"court suspends under 18 U.S.C. § 3292{applied}, from the day the "
                f"request{name} was made, {target.sent} (§ 3292(b))"
            )
        elif US in self.rules:
            leads.append(f"no request{name} sent abroad on record: nothing to suspend (§ 3292)")
        if FR in self.rules and target is not None and target.final is not None:
            leads.append(
                f"the foreign authority already acted on the request{name} on {target.final}: "
                "no obstacle left to suspend (CPP art. 9-3)"
            )
        elif FR in self.rules:
            leads.append(
                f"obstacle to prosecution (CPP art. 9-3): suspended from {event.on} until the "
                f"foreign authority acts on the request{name}"
            )
        return leads

    def _final_leads(self, current: _Cycle | None, name: str) -> list[str]:
        if current is None:
            return [f"no pending request{name}: no effect"] if self.rules & {US, IT, FR} else []
        leads: list[str] = []
        if US in self.rules and current.sent is not None and current.ordered_in_time:
            leads.append(f"final action abroad: the § 3292 suspension from {current.sent} ends")
        elif US in self.rules and current.sent is not None:
            leads.append(f"final action abroad on the request{name}: no § 3292 suspension ordered")
        if IT in self.rules and current.sent is not None:
            leads.append(
                f"documents for letter rogatory{name} arrived: "
                f"the suspension from {current.sent} ends"
            )
        if FR in self.rules and current.ordered is not None:
            leads.append(
                f"final action abroad on the request{name}: "
                f"the obstacle suspension from {current.ordered} ends (CPP art. 9-3)"
            )
        return leads

    def reckon(self, accepted: Sequence[PrescriptionEvent], *, until: date) -> _Reckoning:
        """The date from the accepted events (in date order), open suspensions ending at `until`."""
        run_from, label = self.start, self.start_label
        for event in accepted:
            if self.interruption_cites(event):
                run_from, label = event.on, "interruption"
        cycles = _cycles(accepted)
        found = _Suspensions()
        for cycle in cycles:
            if IT in self.rules and cycle.sent is not None:
                self._suspend_it(cycle, cycle.sent, until, found)
            if FR in self.rules and cycle.ordered is not None:
                self._suspend_fr(cycle, cycle.ordered, until, found)
        if US in self.rules:
            self._suspend_us(cycles, until, found)
        notes, running = found.notes, found.running

        merged = _merge(found.windows)
        # A period that starts or restarts while the clock is stopped runs only once the
        # suspension ends (c.p. art. 159: "riprende il suo corso dal giorno in cui è cessata la
        # causa della sospensione"; likewise § 78b and art. 9-3).
        runs_from = run_from
        for begin, end in merged:
            if begin <= runs_from < end:
                runs_from = end
        counted = sum(max(0, (end - max(begin, runs_from)).days) for begin, end in merged)
        total = sum((end - begin).days for begin, end in merged)
        plain = _add_months(runs_from, self.months)
        result = plain + timedelta(days=counted)
        text = f"{run_from} ({label})"
        if runs_from != run_from:
            text += f" during a suspension, so from {runs_from}"
        text += f" + {self._years()} = {plain}"
        since = f" since {runs_from}" if runs_from != self.start else ""
        if counted:
            text += f", + {counted} days suspended{since} = {result} ({'; '.join(notes)})"
        elif notes:
            text += f", nothing suspended{since} ({'; '.join(notes)})"
        if found.limit is not None and result > found.limit[0]:
            limit, rule = found.limit
            result = limit
            text += f", capped at {self.base} + its cap = {limit} ({rule})"
        if self.cap_factor is not None:
            # § 78c(3) and art. 161 bound interruptions only: the time a suspension stopped the
            # clock is added to the cap (§ 78c(3) S. 3 "§ 78b bleibt unberührt"; in Italy the
            # art. 161 maximum is likewise extended by periods of suspension).
            cap = _add_months(self.start, _months(self.years * self.cap_factor))
            cap += timedelta(days=total)
            if result > cap:
                result = cap
                extra = f" + {total} days suspended" if total else ""
                text += (
                    f", capped at {self.start} + {self.cap_factor:g} × {self._years()}{extra} "
                    f"= {cap} ({self.factor_cite})"
                )
        restarted = FR in self.rules and label == "interruption"
        if self.absolute is not None and result > self.absolute and restarted:
            # Art. 9-1 al. 3 bounds the period run from the discovery ("sans toutefois que le
            # délai de prescription puisse excéder douze années révolues ... à compter du jour où
            # l'infraction a été commise"). An act interrupting it before that limit starts a new
            # period under art. 9-2 ("fait courir un délai de prescription d'une durée égale au
            # délai initial"), which the limit of art. 9-1 does not bound: the reading of the
            # Justice ministry's circular of 28 February 2017 presenting L. 2017-242.
            text += (
                f", not capped at {self.absolute}: the {self.cap_years:g}-year limit of CPP "
                "art. 9-1 bounds the period run from the discovery, and an interruption before "
                "it starts a new period equal to the initial one (CPP art. 9-2, last paragraph)"
            )
        elif self.absolute is not None and result > self.absolute:
            # Art. 9-1: no suspension carries the period run from the discovery past the limit.
            result = self.absolute
            text += f", {self._absolute_clause()}"
            if running:
                running = False
                found.pending.append("the absolute limit holds, so the date will not move")
        return _Reckoning(result, text, running=running, pending=tuple(found.pending))

    def _suspend_it(self, cycle: _Cycle, sent: date, until: date, found: _Suspensions) -> None:
        # Art. 159(1) n. 3-ter: from the order of the rogatory until the documents arrive,
        # "o comunque non oltre sei mesi"; each rogatory is capped on its own.
        limit = _add_months(sent, IT_ROGATORY_CAP_MONTHS)
        end = min(cycle.final or until, limit)
        found.windows.append((sent, end))
        cut = ", cut at 6 months" if (cycle.final or until) > limit else ""
        found.notes.append(f"art. 159 n. 3-ter {sent} → {end}: {(end - sent).days} days{cut}")
        if cycle.final is not None:
            return
        name = _quoted(cycle.request)
        if until < limit:
            found.running = True
            found.pending.append(
                f"letter rogatory{name} still unanswered on {until}: counted as if the documents "
                "arrived that day, so the date is provisional"
            )
        else:
            found.pending.append(
                f"letter rogatory{name} still unanswered on {until}, but its suspension ended "
                f"at the 6-month cap on {limit}"
            )

    def _suspend_fr(self, cycle: _Cycle, ordered: date, until: date, found: _Suspensions) -> None:
        # Art. 9-3: the obstacle suspends from the day it is found until it is lifted, here by
        # the foreign authority's action; an order after that action has nothing to suspend.
        end = cycle.final or until
        if end > ordered:
            found.windows.append((ordered, end))
            found.notes.append(f"art. 9-3 {ordered} → {end}: {(end - ordered).days} days")
        if cycle.final is None:
            found.running = True
            found.pending.append(
                f"obstacle for the request{_quoted(cycle.request)} still in place on {until}: "
                "counted as if it ended that day, so the date is provisional"
            )

    def _suspend_us(self, cycles: list[_Cycle], until: date, found: _Suspensions) -> None:
        # § 3292(b): from the day the request is made to the day of final action; only
        # requests for which a court ordered suspension count (§ 3292(a)(1)).
        # An order made after the foreign authority's final action suspends nothing: the period
        # of § 3292(b) had already ended (Atiyeh).
        suspended = [c for c in cycles if c.sent is not None and c.ordered_in_time]
        spans = [(c.sent, c.final or until) for c in suspended if c.sent is not None]
        if not spans:
            return
        # § 3292(c)(2): at most 6 months if every foreign authority acted before the period
        # would have run out without § 3292 (US law knows no interruption, so that is `base`);
        # a pending request counts as acting on `until`. Otherwise (c)(1): 3 years in all.
        early = all(end < self.base for _, end in spans)
        full_cap = (_add_months(self.base, US_TOTAL_CAP_MONTHS) - self.base).days
        cap_months = US_EARLY_CAP_MONTHS if early else US_TOTAL_CAP_MONTHS
        cap = (_add_months(self.base, cap_months) - self.base).days
        merged = _merge(spans)
        total = sum((end - begin).days for begin, end in merged)
        found.notes += [
            f"§ 3292 {begin} → {end}: {(end - begin).days} days" for begin, end in spans
        ]
        if total > cap:
            why = (
                f"because every final action came before the ordinary expiry {self.base} "
                "(§ 3292(c)(2))"
                if early
                else "(§ 3292(c)(1))"
            )
            found.notes.append(
                f"§ 3292 total {total} days capped at {cap_months} months = {cap} days {why}"
            )
        found.windows += _truncate(merged, cap)
        # The cap bounds the date itself: the ordinary expiry plus the months the law allows.
        # Days alone drift by one across a leap day when the suspension begins before `base`.
        rule = "§ 3292(c)(2)" if early else "§ 3292(c)(1)"
        found.limit = (_add_months(self.base, cap_months), rule)
        for cycle in suspended:
            if cycle.final is not None:
                continue
            name = _quoted(cycle.request)
            if total < full_cap:
                # Provisional even under the 6-month cap: a final action after the ordinary
                # expiry would lift it to 3 years.
                found.running = True
                found.pending.append(
                    f"request{name} still pending on {until} (§ 3292): counted as if the foreign "
                    "authority acted that day, so the date is provisional"
                )
            else:
                found.pending.append(
                    f"request{name} still pending on {until}, but § 3292 suspensions have "
                    "reached their 3-year cap"
                )


def pending_requests(events: Sequence[PrescriptionEvent], *, on: date) -> list[PendingRequest]:
    """The requests abroad sent by `on` and not yet finally acted on that day, oldest first."""
    known = sorted((e for e in events if e.on <= on), key=lambda e: (e.on, _SAME_DAY_ORDER[e.kind]))
    return [
        PendingRequest(c.request, c.sent)
        for c in _cycles(known)
        if c.sent is not None and c.final is None
    ]


def request_meant(
    kind: EventKind, request: str | None, events: Sequence[PrescriptionEvent], *, on: date
) -> str | None:
    """The request abroad a new event belongs to, or ValueError saying why it cannot be told.

    Answers and orders pair with their request by name. Unnamed, with one request pending,
    they belong to it; with several, any pairing would be a guess (answers paired with the
    wrong request moved dates by months, unseen), so the clerk must name the request.
    """
    pending = pending_requests(events, on=on)
    listed = "; ".join(str(p) for p in pending)
    names = {p.request for p in pending}
    if kind is EventKind.REQUEST_SENT_ABROAD:
        if request is None and pending:
            raise ValueError(
                f"other requests abroad are pending on {on} ({listed}): name this one with "
                "--request-abroad, so that each answer can be paired with its request"
            )
        if request is not None and request in names:
            raise ValueError(
                f"request {request!r} is already pending on {on} ({listed}): record its "
                "foreign_final_action first, or give the new request another name"
            )
        unnamed = [p for p in pending if p.request is None]
        answers = [
            e.on for e in events if e.kind is EventKind.FOREIGN_FINAL_ACTION and e.request is None
        ]
        if request is not None and unnamed and not any(a >= unnamed[0].sent for a in answers):
            raise ValueError(
                f"the request {unnamed[0]} has no name and no answer on record, so answers to "
                "the two could not be told apart: record its foreign_final_action first (then "
                "this request, with its own --on), or wait for it"
            )
        return request
    if kind not in (EventKind.SUSPENSION_ORDERED, EventKind.FOREIGN_FINAL_ACTION):
        return request
    if request is None and len(pending) > 1:
        raise ValueError(
            f"{len(pending)} requests abroad are pending on {on} ({listed}): say which one this "
            f"{kind} belongs to with --request-abroad"
        )
    if request is None and len(pending) == 1:
        return pending[0].request
    if kind is EventKind.FOREIGN_FINAL_ACTION and (request not in names or not pending):
        meant = "no request abroad" if request is None else f"no request {request!r}"
        where = f"pending: {listed}" if pending else "none is"
        raise ValueError(
            f"{meant} is pending on {on} ({where}): record the request_sent_abroad first, with "
            "its own --on, or name the request this final action answers"
        )
    return request


def _cycles(events: Sequence[PrescriptionEvent]) -> list[_Cycle]:
    """Pair the accepted events (in date order) into requests abroad, by `request`."""
    cycles: list[_Cycle] = []
    for event in events:
        current = _open_cycle(cycles, event.request)
        if event.kind is EventKind.REQUEST_SENT_ABROAD:
            if current is None:
                cycles.append(_Cycle(event.request, sent=event.on))
            elif current.sent is None:
                current.sent = event.on
        elif event.kind is EventKind.SUSPENSION_ORDERED:
            target = _order_target(cycles, event.request)
            if target is None:
                cycles.append(_Cycle(event.request, ordered=event.on))
            elif target.ordered is None:
                target.ordered = event.on
        elif event.kind is EventKind.FOREIGN_FINAL_ACTION and current is not None:
            current.final = event.on
    return cycles


def _quoted(request: str | None) -> str:
    return "" if request is None else f" '{request}'"


def _open_cycle(cycles: list[_Cycle], request: str | None) -> _Cycle | None:
    for cycle in reversed(cycles):
        if cycle.request == request and cycle.final is None:
            return cycle
    return None


def _order_target(cycles: list[_Cycle], request: str | None) -> _Cycle | None:
    """The request a suspension order attaches to: the pending one, else the last one answered.

    An order made after the final action attaches to its request so the history can say it
    suspends nothing (Atiyeh: § 3292(a)(1)'s "is, or was" speaks of where the evidence is, not
    of an order after the suspension period of § 3292(b) has ended).
    """
    current = _open_cycle(cycles, request)
    if current is not None:
        return current
    for cycle in reversed(cycles):
        if cycle.request == request:
            return cycle if cycle.ordered is None else None
    return None


def _merge(windows: Sequence[tuple[date, date]]) -> list[tuple[date, date]]:
    """Overlapping suspensions stop the clock once: their union, without empty windows."""
    merged: list[tuple[date, date]] = []
    for begin, end in sorted(w for w in windows if w[1] > w[0]):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((begin, end))
    return merged


def _truncate(merged: list[tuple[date, date]], days: int) -> list[tuple[date, date]]:
    """The first `days` days of the windows: a total cap is used up in date order."""
    kept: list[tuple[date, date]] = []
    for begin, end in merged:
        if days <= 0:
            break
        stop = min(end, begin + timedelta(days=days))
        kept.append((begin, stop))
        days -= (stop - begin).days
    return kept


def _months(years: float) -> int:
    """Fractional years as whole months, half up (7.5 years: 90 months)."""
    return math.floor(years * 12 + 0.5)


def _add_months(day: date, months: int) -> date:
    """Calendar months later, clamping to the month's last day (Jan 31 + 1 month = Feb 28/29)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))
