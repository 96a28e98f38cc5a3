"""What a request carries when it is registered: UNCAC art. 46(15) and the tracking fields.

`RequestIntake.check` refuses a request before anything is written and lists every reason,
like the UNODC Request Writer Tool refuses to move on while essentials are missing. Request
files are read by the same hardened reader as the country files (`read_request`), every text
field has a length cap, dates are written YYYY-MM-DD and booleans true or false: nothing is
guessed, and no message echoes a huge value back.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, ValidationError

from models.config import ROUTING_FIELDS
from models.countries import ISO_3166_ALPHA2
from models.domain import Channel, Direction, Kind, LegalBasis, OffenceCategory
from models.errors import IntakeError
from models.safe_yaml import read_yaml

MAX_REQUEST_BYTES = 256 * 1024
EARLIEST_OFFENCE = date(1900, 1, 1)
"""No limitation period reaches further back; an earlier date is a typing mistake."""
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_day(value: Any) -> Any:
    """A day written YYYY-MM-DD: `0` or `20240510` must not become 1970-01-01 or a timestamp."""
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    if isinstance(value, str) and _ISO_DAY.match(value):
        return value
    raise ValueError("write the date as YYYY-MM-DD, e.g. 2024-05-10")


Day = Annotated[date, BeforeValidator(_iso_day)]
Text = Annotated[str, Field(min_length=1, max_length=4000)]
LongText = Annotated[str, Field(max_length=20_000)]
ShortText = Annotated[str, Field(max_length=500)]
Code = Annotated[str, Field(max_length=120)]


class RequestIntake(BaseModel):
    """A request for assistance as a clerk enters it (YAML or JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    """The state whose chain of authorities handles the request (a configured country)."""
    direction: Direction
    kind: Kind
    legal_basis: LegalBasis
    offence_category: OffenceCategory
    offence_date: Day
    discovery_date: Day | None = None
    """For hidden offences: when the offence came to light (may start the limitation period)."""
    counterpart: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    """The other state: requested state for outgoing requests, requesting state for incoming."""
    urgent: StrictBool = False
    urgency_reason: ShortText | None = None
    coercive: StrictBool = False
    """Coercive measures sought (search, seizure, freezing, arrest): some chains add a court."""
    confidential: StrictBool = False
    channel: Channel = Channel.CENTRAL_AUTHORITY
    languages: Annotated[
        list[Annotated[str, Field(pattern=r"^[a-z]{2}$")]], Field(max_length=12)
    ] = ["en"]
    translation: Literal["not_needed", "pending", "done"] = "not_needed"
    external_reference: Code | None = None
    """The other state's reference for the same request."""
    register_number: Code | None = None
    """The case's number in the register it was brought in from (`rogatory import`)."""

    # UNCAC art. 46(15)
    requesting_authority: Text  # (a)
    conducting_authority: Text  # (b)
    subject: Text  # (b) subject and nature of the investigation, prosecution or proceeding
    facts_summary: LongText | None = None  # (c), not needed for service of documents
    assistance_sought: Text  # (d)
    procedure: Annotated[str, Field(max_length=4000)] | None = None  # (d) particular procedure
    persons: Annotated[list[ShortText], Field(max_length=100)] = []  # (e) identity, location
    purpose: Text  # (f)
    service_of_documents: StrictBool = False
    assets: Annotated[str, Field(max_length=4000)] | None = None
    """Asset recovery: the assets to trace, freeze, seize, confiscate or return."""
    order_reference: Code | None = None
    """Confiscation and return: the court order to enforce."""

    @classmethod
    def check(cls, data: Any, *, today: date, countries: Collection[str]) -> RequestIntake:
        """Validate `data`; raise IntakeError with every reason it is refused."""
        try:
            intake = cls.model_validate(data)
        except ValidationError as exc:
            raise IntakeError([_reason(e) for e in exc.errors(include_url=False)]) from None
        reasons = intake.problems(today=today, countries=countries)
        if reasons:
            raise IntakeError(reasons)
        return intake

    def problems(self, *, today: date, countries: Collection[str]) -> list[str]:
        out = []
        if self.country not in countries:
            out.append(
                f"country: {self.country!r} has no routing file "
                f"(configured: {', '.join(sorted(countries))})"
            )
        if self.counterpart not in ISO_3166_ALPHA2:
            out.append(f"counterpart: {self.counterpart!r} is not an ISO 3166 country code")
        elif self.counterpart == self.country:
            out.append("counterpart: the other state cannot be the country itself")
        if self.offence_date > today:
            out.append(f"offence_date: {self.offence_date} is in the future")
        if self.offence_date < EARLIEST_OFFENCE:
            out.append(
                f"offence_date: {self.offence_date} is before {EARLIEST_OFFENCE.year}: "
                "check the year"
            )
        if self.discovery_date is not None:
            if self.discovery_date > today:
                out.append(f"discovery_date: {self.discovery_date} is in the future")
            if self.discovery_date < self.offence_date:
                out.append("discovery_date: an offence cannot be discovered before it happened")
        if self.urgent and not (self.urgency_reason and self.urgency_reason.strip()):
            out.append("urgency_reason: an urgent request must say why it is urgent")
        if self.translation == "pending" and self.languages == []:
            out.append("languages: a pending translation needs the target language")
        out += self._missing_essentials()
        return out

    def _missing_essentials(self) -> list[str]:
        """What UNCAC 46(15) and the kind of assistance require and the request lacks."""
        out = []
        if not self.service_of_documents and not (self.facts_summary or "").strip():
            out.append("facts_summary: a summary of the facts is required (46(15)(c))")
        if self.kind == Kind.EXTRADITION and not self.persons:
            out.append("persons: extradition needs the person sought (46(15)(e))")
        if self.kind.is_asset_recovery and not (self.assets or "").strip():
            out.append(f"assets: {self.kind} needs a description of the assets")
        if self.kind in (Kind.CONFISCATION, Kind.ASSET_RETURN) and not self.order_reference:
            out.append(f"order_reference: {self.kind} needs the court order to enforce")
        return out

    def routing_fields(self) -> dict[str, Any]:
        """The fields route matchers look at."""
        return {name: getattr(self, name) for name in ROUTING_FIELDS}


def read_request(path: Path) -> dict[str, Any]:
    """A request file (YAML, or JSON, which is YAML too) read by the hardened reader.

    Size, depth and node limits, no aliases, no tags, no guessed dates or booleans (`NO` stays
    Norway); every problem is located `file:line:col`, and IntakeError lists them all.
    """
    try:
        doc = read_yaml(path, max_bytes=MAX_REQUEST_BYTES)
    except OSError as exc:
        raise IntakeError([f"{path}: cannot be read ({exc.strerror})"]) from None
    if doc.problems:
        raise IntakeError([str(p) for p in doc.problems])
    if not isinstance(doc.data, dict):
        raise IntakeError([f"{path}:1:1: a request is a mapping of field names to values"])
    return doc.data


def _reason(error: Any) -> str:
    loc = ".".join(str(p) for p in error["loc"]) or "request"
    if error["type"] == "extra_forbidden":
        return f"{loc}: unknown field (check its spelling)"
    if error["type"] == "missing":
        return f"{loc}: required"
    value = error.get("input")
    shown = f"{shorten(value)}: " if isinstance(value, str | int | float) else ""
    return f"{loc}: {shown}{error['msg']}"


def shorten(value: Any, limit: int = 60) -> str:
    """`repr(value)`, cut to `limit` characters: a message never echoes megabytes back."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value):,} characters" if isinstance(value, str) else f"{len(text):,} chars"
    return f"{text[: limit - 1]}… ({size})"
