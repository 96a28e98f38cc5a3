"""the escalation board's index: when a hop's ladder first fired

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 12:00:00
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import models.ledger

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fired_at", models.ledger.UTCDateTime(), nullable=True))
        batch_op.create_index("ix_steps_open_fired", ["closed_at", "fired_at"], unique=False)
    mark_fired_hops(op.get_bind())


def mark_fired_hops(bind: sa.Connection) -> None:
    """The open hops whose ladder already fired: the earliest instant a fired rung fell due."""
    steps = sa.table(
        "steps",
        sa.column("id", sa.Integer()),
        sa.column("rungs", sa.JSON()),
        sa.column("closed_at", models.ledger.UTCDateTime()),
        sa.column("fired_at", models.ledger.UTCDateTime()),
    )
    fired = []
    for row in bind.execute(
        sa.select(steps.c.id, steps.c.rungs).where(steps.c.closed_at.is_(None))
    ):
        rungs = json.loads(row.rungs) if isinstance(row.rungs, str) else row.rungs
        instants = [int(r["at"]) for r in rungs or () if r.get("fired", 0) > 0]
        if instants:
            fired.append({"step": row.id, "at": datetime.fromtimestamp(min(instants), UTC)})
    if fired:
        bind.execute(
            steps.update()
            .where(steps.c.id == sa.bindparam("step"))
            .values(fired_at=sa.bindparam("at")),
            fired,
        )


def downgrade() -> None:
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.drop_index("ix_steps_open_fired")
        batch_op.drop_column("fired_at")
