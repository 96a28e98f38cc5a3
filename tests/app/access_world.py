"""A small world for the access tests: one account per role, their tokens, four cases registered
through the HTTP API, and the API itself over the ledger and a clock that stands still.

The cases are an ordinary Salvadoran request (hop 1 at fgr), a confidential one on the same
route (fgr, csj, mjsp, rree), a confidential incoming extradition whose route never passes mjsp
(rree, csj, fgr), and an ordinary Guatemalan request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.api import create_app
from models import identity
from models.clock import FixedClock
from models.identity import Grant, RoleName, Scope
from models.ledger import Event, Ledger, Request
from tests.samples import intake

ACCOUNTS: dict[str, tuple[Grant, ...]] = {
    "clerk-fgr": (Grant(RoleName.CLERK, "SV", "fgr"),),
    "head-fgr": (Grant(RoleName.HEAD, "SV", "fgr"),),
    "clerk-mjsp": (Grant(RoleName.CLERK, "SV", "mjsp"),),
    "coord-sv": (Grant(RoleName.COORDINATOR, "SV"),),
    "coord-gt": (Grant(RoleName.COORDINATOR, "GT"),),
    "ministry-sv": (Grant(RoleName.MINISTRY, "SV"),),
    "auditor-sv": (Grant(RoleName.AUDITOR, "SV"),),
    "auditor-all": (Grant(RoleName.AUDITOR),),
    "admin": (Grant(RoleName.ADMIN),),
}
READ_ONLY = "coord-sv:read"
"""The key of a second token of the SV coordinator, limited to reading."""
SIGNS_IN = "clerk-fgr"
"""The one account with a password (hashing is slow on purpose: one is enough)."""
PASSWORD = "a long enough passphrase"
TOKEN_LIFETIME = timedelta(days=30)

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "sv": ("coord-sv", intake()),
    "sv-confidential": ("coord-sv", intake(confidential=True)),
    "sv-sealed": (
        "coord-sv",
        intake(
            confidential=True,
            kind="extradition",
            direction="incoming",
            persons=["the person sought"],
        ),
    ),
    "gt": ("coord-gt", intake(country="GT")),
}
"""Each case: who registers it, and its request."""


@dataclass
class World:
    client: TestClient
    ledger: Ledger
    clock: FixedClock
    tokens: dict[str, str]
    token_ids: dict[str, int]
    refs: dict[str, str]
    """Case name (as in CASES) to its reference."""

    def headers(self, who: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}", **extra}

    def browser(self) -> TestClient:
        """A client of its own, as a browser is: no token, only the cookies it is given."""
        return TestClient(self.client.app, base_url="https://testserver")

    def get(self, who: str, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, headers=self.headers(who), params=params)

    def command(
        self, who: str, case: str, name: str, body: dict[str, Any], **headers: str
    ) -> httpx.Response:
        return self.client.post(
            f"/api/cases/{self.refs[case]}/{name}", json=body, headers=self.headers(who, **headers)
        )

    def register(self, who: str, request: dict[str, Any]) -> httpx.Response:
        return self.client.post("/api/cases", json={"request": request}, headers=self.headers(who))

    def seq(self, case: str) -> int:
        """The case's last event sequence, as its country's coordinator reads it."""
        coordinator = "coord-gt" if case == "gt" else "coord-sv"
        response = self.get(coordinator, f"/api/cases/{self.refs[case]}")
        assert response.status_code == 200, response.text
        return int(response.json()["seq"])

    def events_after(self, reference: str, seq: int = 0) -> list[tuple[str, str]]:
        """(kind, actor) of the case's events after `seq`, read from the ledger."""
        with self.ledger.session() as session:
            rows = session.execute(
                select(Event.kind, Event.actor)
                .join(Request, Event.request_id == Request.id)
                .where(Request.reference == reference, Event.seq > seq)
                .order_by(Event.seq)
            ).all()
        return [(row.kind, row.actor) for row in rows]

    def written(self) -> tuple[int, int]:
        """How many cases and events the ledger holds."""
        with self.ledger.session() as session:
            cases = session.scalar(select(func.count()).select_from(Request))
            events = session.scalar(select(func.count()).select_from(Event))
        return int(cases or 0), int(events or 0)


def build_world(ledger: Ledger, clock: FixedClock) -> World:
    now = clock.now()
    tokens: dict[str, str] = {}
    token_ids: dict[str, int] = {}
    with ledger.transaction() as session:
        for name, grants in ACCOUNTS.items():
            identity.add_account(
                session,
                name=name,
                grants=grants,
                now=now,
                actor="test",
                password=PASSWORD if name == SIGNS_IN else None,
            )
            token_ids[name], tokens[name] = identity.issue_token(
                session,
                name=name,
                label="access tests",
                scopes=list(Scope),
                expires_in=TOKEN_LIFETIME,
                now=now,
                actor="test",
            )
        token_ids[READ_ONLY], tokens[READ_ONLY] = identity.issue_token(
            session,
            name="coord-sv",
            label="read only",
            scopes=[Scope.READ],
            expires_in=TOKEN_LIFETIME,
            now=now,
            actor="test",
        )
    client = TestClient(
        create_app(ledger, clock=clock, wake=lambda command, result: None),
        base_url="https://testserver",
    )
    world = World(client, ledger, clock, tokens, token_ids, refs={})
    for case, (who, request) in CASES.items():
        response = world.register(who, request)
        assert response.status_code == 201, response.text
        world.refs[case] = response.json()["reference"]
    return world
