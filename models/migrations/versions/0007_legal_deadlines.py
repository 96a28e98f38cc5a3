"""legal deadlines counted from case events, beside the hops' SLAs

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.ledger

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Cases registered before have no legal deadlines: their pinned routings count every
    # preset from the hop's opening, as they did when the cases were registered.
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deadlines", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("deadline_next_at", models.ledger.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("legal_due_at", models.ledger.UTCDateTime(), nullable=True))
        batch_op.create_index("ix_requests_deadline_next_at", ["deadline_next_at"], unique=False)
        batch_op.create_index("ix_requests_legal_due_at", ["legal_due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index("ix_requests_legal_due_at")
        batch_op.drop_index("ix_requests_deadline_next_at")
        batch_op.drop_column("legal_due_at")
        batch_op.drop_column("deadline_next_at")
        batch_op.drop_column("deadlines")
