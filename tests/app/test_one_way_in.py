"""One way in: the same scenario through the local CLI, the remote CLI and the HTTP API records
the same events, and the remote CLI prints what the local one prints.

The remote CLI talks to a real `rogatory web` process on loopback with a real token; the clerk's
side has no database URL at all.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from models import identity
from models.identity import Grant, RoleName
from models.ledger import Event, Ledger, Request
from models.privacy import CaseKeys
from tests.conftest import REPO, _free_port
from tests.samples import intake

BIN = Path(sys.executable).parent
SCENARIO: list[tuple[str, ...]] = [
    ("decide", "{ref}", "--outcome", "forwarded", "--hop", "1", "--note", "to the court"),
    ("clock", "stop", "{ref}", "--reason", "awaiting clarification"),
    ("clock", "resume", "{ref}", "--reason", "answer received"),
    ("reassign", "{ref}", "--to", "mjsp", "--note", "wrong desk"),
    ("record", "{ref}", "--event", "request_sent_abroad", "--on", "{today}"),
    ("decide", "{ref}", "--outcome", "refused", "--ground", "de_minimis", "--reasons-given"),
]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROGATORY_", "PREFECT_API"))}
    # One master key for every process: each ledger's case keys are wrapped with it.
    env["ROGATORY_MASTER_KEY"] = os.environ["ROGATORY_MASTER_KEY"]
    return {**env, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **extra}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "rogatory"), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """A `rogatory web` on its own ledger: (its URL, a coordinator's token, the ledger URL)."""
    url = f"sqlite:///{tmp_path / 'server.db'}"
    now = datetime.now(UTC)
    with Ledger(url, migrate=True) as ledger, ledger.transaction() as session:
        identity.add_account(
            session,
            name="coord-sv",
            grants=[Grant(RoleName.COORDINATOR, "SV")],
            now=now,
            actor="test",
        )
        _, token = identity.issue_token(
            session,
            name="coord-sv",
            label="test",
            scopes=list(identity.Scope),
            expires_in=timedelta(days=1),
            now=now,
            actor="test",
        )
    port = _free_port()
    log = open(tmp_path / "web.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [str(BIN / "rogatory"), "web", "--port", str(port)],
        env=_env(ROGATORY_DATABASE_URL=url, ROGATORY_VAR=str(tmp_path / "server-var")),
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise AssertionError((tmp_path / "web.log").read_text())
            time.sleep(0.2)
        yield base, token, url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _events(url: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, actor, payload without what differs from run to run) of every event; sealed
    fields opened (their ciphertexts differ from run to run)."""
    varying = {"command", "due_at", "on", "before", "after", "prescription", "intake"}
    with Ledger(url) as ledger, ledger.session() as session:
        rows = session.execute(
            select(Event.kind, Event.actor, Event.payload, Request.reference)
            .join(Request)
            .order_by(Event.id)
        ).all()
        keys = CaseKeys(session)
        opened = [(k, a, keys.reveal(r, k, json.loads(p))) for k, a, p, r in rows]
    return [(k, a, {x: y for x, y in p.items() if x not in varying}) for k, a, p in opened]


def _run_scenario(env: dict[str, str], request_file: Path) -> list[str]:
    registered = _cli(env, "request", "register", str(request_file), "--json")
    assert registered.returncode == 0, registered.stderr
    ref = json.loads(registered.stdout)["reference"]
    outputs = []
    today = datetime.now(UTC).date().isoformat()
    for step in SCENARIO:
        args = [a.format(ref=ref, today=today) for a in step]
        ran = _cli(env, *args)
        assert ran.returncode == 0, (args, ran.stderr)
        outputs.append(ran.stdout)
    status = _cli(env, "status", ref)
    assert status.returncode == 0, status.stderr
    return [*outputs, status.stdout]


def test_local_cli_remote_cli_and_api_record_the_same_events(
    server: tuple[str, str, str], tmp_path: Path
) -> None:
    base, token, server_url = server
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(intake()))

    local_url = f"sqlite:///{tmp_path / 'local.db'}"
    Ledger(local_url, migrate=True).dispose()
    local = _run_scenario(_env(ROGATORY_DATABASE_URL=local_url), request_file)
    # The clerk's machine: no database URL, only the API and a token.
    remote = _run_scenario(_env(ROGATORY_API_URL=base, ROGATORY_TOKEN=token), request_file)

    # The same scenario straight through the API, on the same server.
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
    ref = api.post("/api/cases", json={"request": intake()}).json()["reference"]
    today = datetime.now(UTC).date().isoformat()
    for path, body in [
        ("decide", {"outcome": "forwarded", "hop": 1, "note": "to the court"}),
        ("clock-stop", {"reason": "awaiting clarification"}),
        ("clock-resume", {"reason": "answer received"}),
        ("reassign", {"to": "mjsp", "note": "wrong desk"}),
        ("record", {"event": "request_sent_abroad", "on": today}),
        ("decide", {"outcome": "refused", "ground": "de_minimis", "reasons_given": True}),
    ]:
        response = api.post(f"/api/cases/{ref}/{path}", json=body)
        assert response.status_code == 200, response.text

    local_events = _events(local_url)
    server_events = _events(server_url)
    half = len(server_events) // 2
    remote_events, api_events = server_events[:half], server_events[half:]
    shape = [(k, p) for k, _, p in local_events]
    assert shape == [(k, p) for k, _, p in remote_events] == [(k, p) for k, _, p in api_events]
    assert {a for _, a, _ in local_events} == {f"local:{getpass.getuser()}"}
    assert {a for _, a, _ in remote_events + api_events} == {"coord-sv"}
    # Same words on the clerk's screen, whichever way the commands went (times may differ by
    # the seconds between the runs, so compare the lines without the instants).
    assert [_without_instants(o) for o in local] == [_without_instants(o) for o in remote]


def _without_instants(text: str) -> str:
    import re

    return re.sub(r"\d{4}-\d{2}-\d{2}(T[\d:.+-]+)?|SV-\d{4}-\d{6}", "*", text)


def test_the_remote_cli_exits_as_the_local_one_does_on_refusals(
    server: tuple[str, str, str], tmp_path: Path
) -> None:
    base, token, _ = server
    remote = _env(ROGATORY_API_URL=base, ROGATORY_TOKEN=token)
    missing = _cli(remote, "status", "SV-2026-999999")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: no case 'SV-2026-999999': check the reference"
    bad = _cli(_env(ROGATORY_API_URL=base, ROGATORY_TOKEN="rgt_not-a-token"), "status", "X")
    assert bad.returncode == 1 and bad.stderr.startswith("error: the API token is unknown")
    elsewhere = _cli(remote, "inbox", "GT", "minex")
    assert elsewhere.returncode == 1 and "may not read the inbox of GT/minex" in elsewhere.stderr


def test_the_remote_cli_attaches_a_document_through_the_api_and_reads_it_back(
    server: tuple[str, str, str], tmp_path: Path
) -> None:
    base, token, _ = server
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
    ref = api.post("/api/cases", json={"request": intake()}).json()["reference"]
    letter = tmp_path / "carta rogatoria.pdf"
    letter.write_bytes(b"%PDF-1.4 letter rogatory, bank records of account 4242")

    remote = _env(ROGATORY_API_URL=base, ROGATORY_TOKEN=token)
    attached = _cli(remote, "attach", ref, str(letter), "--kind", "request", "--json")
    assert attached.returncode == 0, attached.stderr
    listed = api.get(f"/api/cases/{ref}/documents").json()
    digest = hashlib.sha256(letter.read_bytes()).hexdigest()
    assert [(d["filename"], d["sha256"], d["actor"]) for d in listed] == [
        ("carta rogatoria.pdf", digest, "coord-sv")
    ]
    download = api.get(f"/api/cases/{ref}/documents/{digest}")
    assert download.content == letter.read_bytes()
    assert download.headers["content-disposition"].startswith("attachment;")

    # A hash alone attaches nothing: there is no JSON route for it.
    by_hash = api.post(f"/api/cases/{ref}/attach", json={"sha256": digest, "kind": "request"})
    assert by_hash.status_code in (404, 405)
    other = api.post("/api/cases", json={"request": intake()}).json()["reference"]
    assert api.get(f"/api/cases/{other}/documents/{digest}").status_code == 404


def test_a_decision_through_the_api_tells_the_next_holder_at_once_without_prefect(
    server: tuple[str, str, str], tmp_path: Path
) -> None:
    # No Prefect server answers here, so no flow run exists to send anything: the new hop's
    # notice, written with the decision, is sent by the API right after the commit.
    base, token, _ = server
    outbox = tmp_path / "server-var" / "outbox" / "outbox.jsonl"
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
    ref = api.post("/api/cases", json={"request": intake()}).json()["reference"]
    decided = api.post(f"/api/cases/{ref}/decide", json={"outcome": "forwarded", "hop": 1})
    assert decided.status_code == 200, decided.text

    def told() -> list[str]:
        if not outbox.exists():
            return []
        lines = [json.loads(x) for x in outbox.read_text().splitlines() if x.strip()]
        return [m["title"] for m in lines if f"Case: {ref}\n" in m["body"]]

    deadline = time.monotonic() + 10
    while len(told()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    # Each is sent from its own command's background task: to two holders, in either order.
    assert sorted(told()) == [
        f"New: {ref} hop 1 is now with you",
        f"New: {ref} hop 2 is now with you",
    ]
