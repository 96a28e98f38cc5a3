"""How a ministry's former register maps onto rogatory: the mapping file of `rogatory import`.

A mapping (YAML, read by the same hardened reader as the country files, every problem located
`file:line:column`) names the register's columns: its own case number, the intake fields with
their value maps ("Extradición" -> extradition, "EE.UU." -> US), how dates are written, and the
history, in one of two layouts:

- `case_per_row` (a spreadsheet kept by hand): one row per case, a date column per authority
  or step for the day it passed the request on, and the final outcome in columns of its own;
- `event_per_row` (the export of a case-management system): one row per event, grouped by the
  case number, each with its date, kind, authority and grounds.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from models.errors import ConfigError, ConfigProblem
from models.loader import Routing, validate_model
from models.safe_yaml import read_yaml

DATE_FORMATS = {
    "dd/mm/yyyy": "%d/%m/%Y",
    "dd/mm/yy": "%d/%m/%y",
    "dd-mm-yyyy": "%d-%m-%Y",
    "dd.mm.yyyy": "%d.%m.%Y",
    "mm/dd/yyyy": "%m/%d/%Y",
    "yyyy-mm-dd": "%Y-%m-%d",
    "yyyy/mm/dd": "%Y/%m/%d",
}
"""How a register may write its dates as text; `excel` reads Excel serial day numbers."""
DateFormat = Literal[
    "dd/mm/yyyy",
    "dd/mm/yy",
    "dd-mm-yyyy",
    "dd.mm.yyyy",
    "mm/dd/yyyy",
    "yyyy-mm-dd",
    "yyyy/mm/dd",
    "excel",
]
EventKind = Literal[
    "received",
    "forwarded",
    "returned",
    "refused",
    "postponed",
    "executed",
    "partially_executed",
    "resubmitted",
    "withdrawn",
]
"""What a row of an event register says happened; `received` opens nothing by itself (the
engine opens a hop when the one before it is decided) and is checked against the open hop."""
FinalOutcome = Literal[
    "executed", "partially_executed", "refused", "postponed", "withdrawn", "open"
]
ColumnName = Annotated[str, Field(min_length=1, max_length=200)]
Label = Annotated[str, Field(max_length=500)]
INTAKE_FIELDS = frozenset(
    {
        "direction",
        "kind",
        "legal_basis",
        "offence_category",
        "offence_date",
        "discovery_date",
        "counterpart",
        "urgent",
        "urgency_reason",
        "coercive",
        "confidential",
        "channel",
        "languages",
        "translation",
        "external_reference",
        "requesting_authority",
        "conducting_authority",
        "subject",
        "facts_summary",
        "assistance_sought",
        "procedure",
        "persons",
        "purpose",
        "service_of_documents",
        "assets",
        "order_reference",
    }
)
"""The request fields a register may feed (`country` comes from the mapping, `register_number`
from its `number` column)."""
DATE_FIELDS = frozenset({"offence_date", "discovery_date"})
LIST_FIELDS = frozenset({"languages", "persons"})


def label_key(text: str) -> str:
    """How a register's label is matched against a value map: trimmed, inner spaces collapsed,
    case folded, NFC (accents kept: "Peru" and "Perú" are different words to a clerk)."""
    return " ".join(unicodedata.normalize("NFC", text).split()).casefold()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """Where a value comes from: a column (with an optional value map), or a fixed value."""

    column: ColumnName | None = None
    value: str | StrictBool | None = None
    """A fixed value for every case (or the value of a blank cell, with `column`)."""
    values: dict[Label, str | StrictBool] | None = None
    """The register's labels and what each means; a label not listed is an error."""
    split: Annotated[str, Field(min_length=1, max_length=5)] | None = None
    """For lists (persons, languages): the separator between items in one cell."""

    @model_validator(mode="after")
    def _one_source(self) -> Source:
        if self.column is None and self.value is None:
            raise ValueError("give a `column` of the register or a fixed `value`")
        if self.values is not None:
            keys = [label_key(k) for k in self.values]
            twice = sorted({k for k in keys if keys.count(k) > 1})
            if twice:
                raise ValueError(
                    f"labels listed twice (case and spaces are ignored): {', '.join(twice)}"
                )
        return self

    def lookup(self) -> dict[str, str | bool] | None:
        return None if self.values is None else {label_key(k): v for k, v in self.values.items()}


class HistoryColumn(_Strict):
    """`case_per_row`: the day a step's (or an authority's) holder passed the request on."""

    step: Annotated[str, Field(max_length=64)] | None = None
    holder: Annotated[str, Field(max_length=64)] | None = None
    """Every hop at this authority (a column per authority, as registers are often kept)."""
    passed_on: ColumnName
    received: ColumnName | None = None
    """The day it reached the holder, if the register has it: checked, never used to open."""

    @model_validator(mode="after")
    def _one_key(self) -> HistoryColumn:
        if (self.step is None) == (self.holder is None):
            raise ValueError("name either the route `step` or the `holder` authority")
        return self


class OutcomeColumns(_Strict):
    """`case_per_row`: how the case ended (or that it is still open)."""

    column: ColumnName
    values: dict[Label, FinalOutcome]
    date: ColumnName
    ground: Source | None = None
    """A refusal's ground, mapped onto rogatory's refusal grounds."""
    by: Source | None = None
    """The authority that decided (mapped onto the country's authority ids): checked."""


class EventColumns(_Strict):
    """`event_per_row`: what each row records."""

    date: ColumnName
    kind: Source
    authority: Source | None = None
    ground: Source | None = None
    cause: Source | None = None
    note: Source | None = None


class Mapping(_Strict):
    """A mapping file: how one register's columns become requests and their history."""

    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    """Whose chain of authorities the register's cases run on."""
    layout: Literal["case_per_row", "event_per_row"]
    title: Annotated[str, Field(max_length=200)] | None = None
    sheet: Annotated[str, Field(min_length=1, max_length=31)] | None = None
    """Excel: the sheet (default: the first)."""
    header_row: Annotated[int, Field(ge=1, le=1000)] = 1
    encoding: Annotated[str, Field(max_length=30)] = "utf-8-sig"
    """CSV: the text encoding (utf-8-sig reads UTF-8 with or without a byte-order mark)."""
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    dates: Annotated[list[DateFormat], Field(min_length=1)] = ["dd/mm/yyyy", "excel"]
    """How the register writes dates, tried in order (a cell Excel stores as a date is a date)."""
    number: ColumnName
    """The register's own case number: kept on the case; re-import is keyed on it."""
    received: ColumnName | None = None
    """The day the request entered the chain: the first hop opens then."""
    fields: dict[str, Source]
    history: list[HistoryColumn] = []
    outcome: OutcomeColumns | None = None
    events: EventColumns | None = None

    @model_validator(mode="after")
    def _layout(self) -> Mapping:
        unknown = sorted(set(self.fields) - INTAKE_FIELDS)
        if unknown:
            raise ValueError(
                f"fields {', '.join(unknown)} are not request fields "
                f"(known: {', '.join(sorted(INTAKE_FIELDS))})"
            )
        if self.layout == "case_per_row":
            if self.received is None:
                raise ValueError("case_per_row needs `received`: the column of the day it came in")
            if self.events is not None:
                raise ValueError("`events` belongs to the event_per_row layout")
        else:
            if self.events is None:
                raise ValueError("event_per_row needs `events`: the columns of each event row")
            if self.history or self.outcome is not None:
                raise ValueError("`history` and `outcome` belong to the case_per_row layout")
        return self

    def columns(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Every column the mapping names, with where in the mapping it is named."""
        out: list[tuple[tuple[str | int, ...], str]] = [(("number",), self.number)]
        if self.received:
            out.append((("received",), self.received))
        for name, source in self.fields.items():
            if source.column:
                out.append((("fields", name, "column"), source.column))
        for n, entry in enumerate(self.history):
            out.append((("history", n, "passed_on"), entry.passed_on))
            if entry.received:
                out.append((("history", n, "received"), entry.received))
        if self.outcome is not None:
            out += [(("outcome", "column"), self.outcome.column)]
            out += [(("outcome", "date"), self.outcome.date)]
            for name in ("ground", "by"):
                source = getattr(self.outcome, name)
                if source is not None and source.column:
                    out.append((("outcome", name, "column"), source.column))
        if self.events is not None:
            out.append((("events", "date"), self.events.date))
            for name in ("kind", "authority", "ground", "cause", "note"):
                source = getattr(self.events, name)
                if source is not None and source.column:
                    out.append((("events", name, "column"), source.column))
        return out


class LoadedMapping:
    """A valid mapping and its document, to locate later problems (a column not in the file)."""

    def __init__(self, mapping: Mapping, doc: Any, path: Path) -> None:
        self.mapping = mapping
        self.doc = doc
        self.path = path

    def problem(self, where: tuple[str | int, ...], message: str) -> ConfigProblem:
        found: ConfigProblem = self.doc.problem(where, message)
        return found


def load_mapping(path: Path) -> LoadedMapping:
    """Read and check a mapping file; ConfigError lists every problem, `file:line:column`."""
    if not path.is_file():
        raise ConfigError([ConfigProblem(str(path), 1, 1, "", "no such mapping file")])
    doc = read_yaml(path)
    mapping = validate_model(doc, Mapping)
    if mapping is None:
        raise ConfigError(doc.problems)
    return LoadedMapping(mapping, doc, path)


def check_mapping(loaded: LoadedMapping, routing: Routing) -> None:
    """The steps, authorities and codes a mapping names exist in the country's routing."""
    mapping, problems = loaded.mapping, []
    steps = {s.id for r in routing.config.routes for s in r.steps}
    holders = set(routing.config.authorities)
    for n, entry in enumerate(mapping.history):
        if entry.step is not None and entry.step not in steps:
            problems.append(
                loaded.problem(
                    ("history", n, "step"),
                    f"{routing.country} has no step {entry.step!r} "
                    f"(steps: {', '.join(sorted(steps))})",
                )
            )
        if entry.holder is not None and entry.holder not in holders:
            problems.append(
                loaded.problem(
                    ("history", n, "holder"),
                    f"{routing.country} has no authority {entry.holder!r} "
                    f"(authorities: {', '.join(sorted(holders))})",
                )
            )
    authority_maps = [("outcome", "by")] if mapping.outcome and mapping.outcome.by else []
    if mapping.events and mapping.events.authority:
        authority_maps.append(("events", "authority"))
    for where in authority_maps:
        source = getattr(getattr(mapping, where[0]), where[1])
        for label, value in (source.values or {}).items():
            if value not in holders:
                problems.append(
                    loaded.problem(
                        (*where, "values", label),
                        f"{value!r} is not an authority of {routing.country} "
                        f"(authorities: {', '.join(sorted(holders))})",
                    )
                )
    problems += _vocabulary_problems(loaded)
    if problems:
        raise ConfigError(problems)


def _vocabulary_problems(loaded: LoadedMapping) -> list[ConfigProblem]:
    """Values a map (or a fixed value) gives that rogatory's closed lists do not have."""
    from models.countries import ISO_3166_ALPHA2
    from models.domain import (
        Channel,
        DelayCause,
        Direction,
        Kind,
        LegalBasis,
        OffenceCategory,
        RefusalGround,
    )

    closed: dict[str, set[str]] = {
        "direction": {e.value for e in Direction},
        "kind": {e.value for e in Kind},
        "legal_basis": {e.value for e in LegalBasis},
        "offence_category": {e.value for e in OffenceCategory},
        "channel": {e.value for e in Channel},
        "translation": {"not_needed", "pending", "done"},
        "counterpart": set(ISO_3166_ALPHA2),
    }
    booleans = {"urgent", "coercive", "confidential", "service_of_documents"}
    grounds = {e.value for e in RefusalGround}
    causes = {e.value for e in DelayCause}
    mapping = loaded.mapping
    sources: list[tuple[tuple[str | int, ...], Source, set[str] | None]] = [
        (("fields", name), source, closed.get(name)) for name, source in mapping.fields.items()
    ]
    if mapping.outcome is not None and mapping.outcome.ground is not None:
        sources.append((("outcome", "ground"), mapping.outcome.ground, grounds))
    if mapping.events is not None:
        kinds = set(EventKind.__args__)  # type: ignore[attr-defined]
        sources.append((("events", "kind"), mapping.events.kind, kinds))
        for name, vocabulary in (("ground", grounds), ("cause", causes)):
            source = getattr(mapping.events, name)
            if source is not None:
                sources.append((("events", name), source, vocabulary))
    problems = []
    for where, source, allowed in sources:
        field = where[1] if where[0] == "fields" else None
        given: list[tuple[tuple[str, ...], str | bool]] = []
        if source.value is not None:
            given.append((("value",), source.value))
        given += [(("values", k), v) for k, v in (source.values or {}).items()]
        for path, value in given:
            if field in booleans:
                if not isinstance(value, bool):
                    message = f"{value!r}: write true or false"
                    problems.append(loaded.problem((*where, *path), message))
            elif isinstance(value, bool):
                problems.append(loaded.problem((*where, *path), f"{value!r}: a text is expected"))
            elif allowed is not None and value not in allowed:
                shown = ", ".join(sorted(allowed)) if len(allowed) < 40 else "ISO 3166 codes"
                problems.append(
                    loaded.problem((*where, *path), f"{value!r} is not one of: {shown}")
                )
    return problems
