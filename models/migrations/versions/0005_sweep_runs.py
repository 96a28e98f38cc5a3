"""the watcher's heartbeat: one row per clock sweep, successful or failed

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.ledger

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

instant = models.ledger.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "sweep_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", instant(), nullable=False),
        sa.Column("finished_at", instant(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("rungs_recorded", sa.Integer(), nullable=False),
        sa.Column("alerts_recorded", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("ran_by", sa.String(length=128), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sweep_runs", schema=None) as batch_op:
        batch_op.create_index("ix_sweep_runs_ok_finished", ["ok", "finished_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sweep_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_sweep_runs_ok_finished")
    op.drop_table("sweep_runs")
