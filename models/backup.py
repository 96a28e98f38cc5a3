"""Backups that restore: a consistent copy of a running ledger, and a restore that proves itself.

`backup` copies the ledger while commands keep writing: SQLite's online backup API copies the
database in one read transaction (WAL mode: writers carry on), PostgreSQL's `pg_dump` reads one
snapshot. The attached documents are copied beside it, and `manifest.json` records what the
copy holds (cases, events, the latest checkpoint and its signature, each file's SHA-256).
`restore` refuses a target that is not empty, checks every file against the manifest, loads
the copy, and then verifies it as `audit verify` would (every chain, every projection, the
latest checkpoint); it reports success only when all of that holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from models.checkpoints import Audit, Verifier, audit
from models.errors import RogatoryError
from models.ledger import Checkpoint, Event, Ledger, Request, make_engine

MANIFEST = "manifest.json"
SQLITE_FILE = "ledger.db"
DUMP_FILE = "ledger.dump"
DOCUMENTS = "documents"
FORMAT = 1


class BackupError(RogatoryError):
    """A backup could not be made, or a restore could not be done or did not verify."""


@dataclass(frozen=True)
class Manifest:
    """What a backup holds."""

    data: dict[str, Any]

    @property
    def checkpoint(self) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.data.get("checkpoint")
        return found


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pg_tool(name: str) -> str:
    """`pg_dump` or `pg_restore`: on the PATH, else beside the newest installed server."""
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    raise BackupError(f"{name} not found: install the PostgreSQL client tools")


def _libpq(url: URL) -> tuple[list[str], dict[str, str]]:
    """Connection options for the PostgreSQL tools; the password only in their environment."""
    args = []
    if url.host:
        args += ["--host", url.host]
    if url.port:
        args += ["--port", str(url.port)]
    if url.username:
        args += ["--username", url.username]
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return args, env


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{what} failed ({done.returncode}): {done.stderr.strip()[:2000]}")


def _summary(session: Session) -> dict[str, Any]:
    last = session.scalars(select(Checkpoint).order_by(Checkpoint.number.desc()).limit(1)).first()
    return {
        "cases": session.scalar(select(func.count()).select_from(Request)),
        "events": session.scalar(select(func.count()).select_from(Event)),
        "checkpoint": None if last is None else json.loads(last.statement),
        "signature": None if last is None else last.signature,
    }


def backup(ledger: Ledger, destination: Path, *, documents: Path | None, now: datetime) -> Manifest:
    """Copy the ledger (and its documents) into the new folder `destination`."""
    if destination.exists() and any(destination.iterdir()):
        raise BackupError(f"{destination} is not empty: back up into a new folder")
    destination.mkdir(mode=0o700, parents=True, exist_ok=True)
    url = ledger.engine.url
    files: dict[str, str] = {}
    if url.get_backend_name() == "sqlite":
        copy = destination / SQLITE_FILE
        source = sqlite3.connect(f"file:{url.database}?mode=ro", uri=True, timeout=30)
        target = sqlite3.connect(copy)
        try:
            # One step (pages=-1): the whole database from one read transaction.
            source.backup(target)
        finally:
            target.close()
            source.close()
        os.chmod(copy, 0o600)
        files[SQLITE_FILE] = _sha256(copy)
        copied = Ledger(f"sqlite:///{copy}")
        try:
            with copied.session() as session:
                held = _summary(session)
        finally:
            copied.dispose()
    else:
        dump = destination / DUMP_FILE
        args, env = _libpq(url)
        # pg_dump reads the snapshot this transaction exported, so the manifest describes
        # exactly what the dump holds while commands carry on.
        with ledger.engine.connect() as connection:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with Session(bind=connection) as session, session.begin():
                snapshot = (
                    session.connection().exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
                )
                held = _summary(session)
                _run(
                    [
                        pg_tool("pg_dump"),
                        "--format=custom",
                        "--no-owner",
                        f"--snapshot={snapshot}",
                        "--file",
                        str(dump),
                        *args,
                        "--dbname",
                        str(url.database),
                    ],
                    env,
                    "pg_dump",
                )
        os.chmod(dump, 0o600)
        files[DUMP_FILE] = _sha256(dump)
    kept = 0
    if documents is not None and documents.is_dir():
        shutil.copytree(documents, destination / DOCUMENTS)
        kept = sum(1 for p in (destination / DOCUMENTS).rglob("*") if p.is_file())
    data = {
        "format": FORMAT,
        "created_at": now.isoformat(),
        "backend": url.get_backend_name(),
        "source": url.render_as_string(hide_password=True),
        **held,
        "documents": kept,
        "files": files,
    }
    (destination / MANIFEST).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return Manifest(data)


def read_manifest(source: Path) -> Manifest:
    path = source / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(
            f"{path} cannot be read ({exc}): is {source} a rogatory backup?"
        ) from None
    if data.get("format") != FORMAT:
        raise BackupError(f"{path} is backup format {data.get('format')}, not {FORMAT}")
    for name, digest in data.get("files", {}).items():
        if not (source / name).exists() or _sha256(source / name) != digest:
            raise BackupError(f"{source / name} is missing or does not match the manifest")
    return Manifest(data)


def target_is_empty(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if path.exists() and path.stat().st_size > 0:
            raise BackupError(f"{path} exists: restore into an empty place (a new file)")
        return
    engine = make_engine(url)
    try:
        tables = inspect(engine).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise BackupError(
            f"{parsed.render_as_string(hide_password=True)} already holds tables "
            f"({', '.join(sorted(tables)[:5])}...): restore into an empty database"
        )


@dataclass(frozen=True)
class Restored:
    """A restore, and what verifying the restored ledger found."""

    manifest: Manifest
    audit: Audit
    checkpoint: dict[str, Any] | None
    """The latest checkpoint the restored ledger holds."""

    @property
    def problems(self) -> list[str]:
        found = [str(f) for f in self.audit.findings]
        if self.checkpoint != self.manifest.checkpoint:
            found.append(
                "the restored ledger's latest checkpoint is not the one the manifest records"
            )
        return found


def restore(
    source: Path,
    url: str,
    *,
    documents: Path | None,
    routings: Any,
    verifier: Verifier | None,
    now: datetime,
) -> Restored:
    """Load the backup in `source` into the empty ledger at `url`, then verify it: every
    chain and projection, and the latest checkpoint it holds (signed by the key, its seals
    folding into its root, every sealed case present and extending its seal)."""
    manifest = load(source, url, documents=documents)
    ledger = Ledger(url, migrate=True)
    try:
        found = audit(
            ledger, routings=routings, verifier=verifier, witness=None, now=now, record=False
        )
        with ledger.session() as session:
            held = _summary(session)["checkpoint"]
    finally:
        ledger.dispose()
    return Restored(manifest, found, held)


def load(source: Path, url: str, *, documents: Path | None) -> Manifest:
    """Load the backup in `source` into the empty ledger at `url` (and documents folder)."""
    manifest = read_manifest(source)
    target_is_empty(url)
    parsed = make_url(url)
    if manifest.data["backend"] != parsed.get_backend_name():
        raise BackupError(
            f"{source} is a {manifest.data['backend']} backup; restore it into a "
            f"{manifest.data['backend']} ledger, not {parsed.get_backend_name()}"
        )
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        path.parent.mkdir(parents=True, exist_ok=True)
        source_db = sqlite3.connect(f"file:{source / SQLITE_FILE}?mode=ro", uri=True)
        target = sqlite3.connect(path)
        try:
            source_db.backup(target)
            target.execute("PRAGMA journal_mode=WAL")
        finally:
            target.close()
            source_db.close()
        os.chmod(path, 0o600)
    else:
        args, env = _libpq(parsed)
        _run(
            [
                pg_tool("pg_restore"),
                "--no-owner",
                "--exit-on-error",
                *args,
                "--dbname",
                str(parsed.database),
                str(source / DUMP_FILE),
            ],
            env,
            "pg_restore",
        )
    if (source / DOCUMENTS).is_dir():
        if documents is None:
            raise BackupError(f"{source} holds documents: set ROGATORY_DOCUMENTS to where they go")
        shutil.copytree(source / DOCUMENTS, documents, dirs_exist_ok=True)
    return manifest
