"""Alembic environment: always handed a live connection by `models.migrations.upgrade`."""

from alembic import context

import models.identity  # noqa: F401  (its tables are part of the ledger's schema)
from models.ledger import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
