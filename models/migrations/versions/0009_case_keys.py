"""per-case data keys, wrapped by the master key, with their erasure tombstones

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.ledger

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "case_keys",
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("wrapped", sa.String(length=128), nullable=True),
        sa.Column("created_at", models.ledger.UTCDateTime(), nullable=False),
        sa.Column("erased_at", models.ledger.UTCDateTime(), nullable=True),
        sa.Column("erased_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("reference"),
    )


def downgrade() -> None:
    op.drop_table("case_keys")
