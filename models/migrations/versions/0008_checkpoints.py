"""signed checkpoints, the heads they sealed, and the cases found tampered

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.ledger

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "checkpoints",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_at", models.ledger.UTCDateTime(), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=True),
        sa.Column("heads", sa.JSON(), nullable=False),
        sa.Column("cursor", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("number"),
    )
    op.create_table(
        "case_seals",
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("checkpoint", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("reference"),
    )
    op.create_table(
        "tampered_cases",
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("found_at", models.ledger.UTCDateTime(), nullable=False),
        sa.Column("found_by", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("reference"),
    )


def downgrade() -> None:
    op.drop_table("tampered_cases")
    op.drop_table("case_seals")
    op.drop_table("checkpoints")
