"""Alembic migrations of the ledger: `upgrade(engine)` is the one explicit upgrade step.

Other processes only check the revision (`require_current`) and refuse a stale schema, so a
fresh database is never migrated by whichever command happens to touch it first, and two
upgrades started at once run one after the other (a PostgreSQL advisory lock; SQLite's write
lock) instead of racing.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from models.errors import SchemaOutdated

if TYPE_CHECKING:
    from alembic.config import Config

HERE = Path(__file__).resolve().parent
HEAD = "0009"
"""The newest revision in versions/ (a test keeps it true); lets a CLI call skip Alembic."""
_LOCK_ID = 0x726F6761  # "roga": the advisory lock every PostgreSQL upgrade takes


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    return config


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None


def require_current(engine: Engine) -> None:
    """Refuse a ledger whose schema is not at HEAD, saying how to upgrade it."""
    found = current_revision(engine)
    if found == HEAD:
        return
    where = engine.url.render_as_string(hide_password=True)
    state = "has no rogatory tables yet" if found is None else f"is at schema revision {found}"
    raise SchemaOutdated(
        f"the ledger {where} {state}; this version of rogatory needs revision {HEAD}: "
        "run `rogatory db upgrade` once (it is safe to run again)"
    )


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the ledger at `engine` to `revision`; a no-op when it is already there."""
    if revision == "head" and current_revision(engine) == HEAD:
        return  # already current: no need to load Alembic (a second off every CLI call)
    if engine.dialect.name == "sqlite":
        with _sqlite_upgrade_lock(engine):
            # Persistent, and it needs the file to itself: set here, never per connection. A
            # raw connection, because the engine's own connections always open a transaction.
            raw = engine.raw_connection()
            try:
                raw.cursor().execute("PRAGMA journal_mode=WAL")
            finally:
                raw.close()
            _run_alembic(engine, revision)
    else:
        _run_alembic(engine, revision)


@contextmanager
def _sqlite_upgrade_lock(engine: Engine) -> Iterator[None]:
    """Upgrades of one SQLite file, one at a time: switching to WAL ignores the busy timeout."""
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.upgrade-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run_alembic(engine: Engine, revision: str) -> None:
    from alembic import command

    from models.ledger import WRITE_OPTION

    config = alembic_config()
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
