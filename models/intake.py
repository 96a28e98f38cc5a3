"""What a request carries when it is registered: UNCAC art. 46(15) and the tracking fields.

`RequestIntake.check` refuses a request before anything is written and lists every reason,
like the UNODC Request Writer Tool refuses to move on while essentials are missing.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.config import ROUTING_FIELDS
from models.countries import ISO_3166_ALPHA2
from models.domain import Channel, Direction, Kind, LegalBasis, OffenceCategory
from models.errors import IntakeError

Text = Annotated[str, Field(min_length=1, max_length=4000)]


class RequestIntake(BaseModel):
    """A request for assistance as a clerk enters it (YAML or JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    """The state whose chain of authorities handles the request (a configured country)."""
    direction: Direction
    kind: Kind
    legal_basis: LegalBasis
    offence_category: OffenceCategory
    offence_date: date
    discovery_date: date | None = None
    """For hidden offences: when the offence came to light (may start the limitation period)."""
    counterpart: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    """The other state: requested state for outgoing requests, requesting state for incoming."""
    urgent: bool = False
    urgency_reason: str | None = None
    coercive: bool = False
    """Coercive measures sought (search, seizure, freezing, arrest): some chains add a court."""
    confidential: bool = False
    channel: Channel = Channel.CENTRAL_AUTHORITY
    languages: list[Annotated[str, Field(pattern=r"^[a-z]{2}$")]] = ["en"]
    translation: Literal["not_needed", "pending", "done"] = "not_needed"
    external_reference: str | None = None
    """The other state's reference for the same request."""

    # UNCAC art. 46(15)
    requesting_authority: Text  # (a)
    conducting_authority: Text  # (b)
    subject: Text  # (b) subject and nature of the investigation, prosecution or proceeding
    facts_summary: str | None = None  # (c), not needed for service of documents
    assistance_sought: Text  # (d)
    procedure: str | None = None  # (d) any particular procedure to follow
    persons: list[str] = []  # (e) identity, location, nationality where possible
    purpose: Text  # (f)
    service_of_documents: bool = False
    assets: str | None = None
    """Asset recovery: the assets to trace, freeze, seize, confiscate or return."""
    order_reference: str | None = None
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


def _reason(error: Any) -> str:
    loc = ".".join(str(p) for p in error["loc"]) or "request"
    if error["type"] == "extra_forbidden":
        return f"{loc}: unknown field (check its spelling)"
    if error["type"] == "missing":
        return f"{loc}: required"
    value = error.get("input")
    shown = f"{value!r}: " if isinstance(value, str | int | float) else ""
    return f"{loc}: {shown}{error['msg']}"
