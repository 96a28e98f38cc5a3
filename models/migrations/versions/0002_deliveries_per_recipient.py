"""deliveries per recipient with a severity; case problems

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.ledger

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("severity", sa.String(length=16), nullable=False, server_default="info")
        )
        batch_op.add_column(sa.Column("recipients", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.alter_column("request_id", existing_type=sa.Integer(), nullable=True)
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.alter_column("severity", server_default=None)
        batch_op.alter_column("recipients", server_default=None)
    op.create_table(
        "case_problems",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("first_seen_at", models.ledger.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", models.ledger.UTCDateTime(), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("resolved_at", models.ledger.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reference", "digest"),
    )
    with op.batch_alter_table("case_problems", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_case_problems_request_id"), ["request_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("case_problems", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_problems_request_id"))
    op.drop_table("case_problems")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.alter_column("request_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("recipients")
        batch_op.drop_column("severity")
