"""The routing files in force, and every pinned version a case may still run on.

Apart from the engine so that reading a case (`rogatory status`, the case page) needs the
routings without importing the commands.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from models.errors import NotFound
from models.ledger import RoutingVersion
from models.loader import Routing, routing_from_snapshot


class Routings:
    """The routing files in force, and every pinned version a case may still run on."""

    def __init__(self, current: Mapping[str, Routing]) -> None:
        self.current = dict(current)
        self._by_version = {r.version: r for r in current.values()}

    def pinned(self, session: Session, version: str) -> Routing:
        routing = self._by_version.get(version)
        if routing is None:
            row = session.get(RoutingVersion, version)
            if row is None:
                raise NotFound(f"routing version {version} is not in the ledger")
            routing = routing_from_snapshot(
                {
                    "version": row.version,
                    "file": row.file,
                    "yaml_text": row.yaml_text,
                    "presets": row.presets,
                }
            )
            self._by_version[version] = routing
        return routing

    def loaded(self) -> list[Routing]:
        """Every routing known so far: those in force and the pinned versions read."""
        return list(
            {id(r): r for r in [*self.current.values(), *self._by_version.values()]}.values()
        )

    def for_country(self, country: str) -> Routing:
        try:
            return self.current[country]
        except KeyError:
            known = ", ".join(sorted(self.current))
            raise NotFound(f"no routing for country {country!r} (configured: {known})") from None
