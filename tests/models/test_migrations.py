"""The Alembic migrations build the same schema as the models, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import models.identity  # noqa: F401  (registers the identity tables)
from models.ledger import Base, Ledger
from models.migrations import HEAD, alembic_config, current_revision


def test_head_constant_names_the_newest_migration():
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD


def test_migrated_schema_matches_the_models(ledger: Ledger):
    assert current_revision(ledger.engine) == HEAD
    with ledger.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
