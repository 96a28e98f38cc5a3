"""identities: accounts, role grants, API tokens, web sessions, the security log; confidential cases

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.ledger

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

instant = models.ledger.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("oidc_subject", sa.String(length=255), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", instant(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("oidc_subject"),
    )
    op.create_table(
        "role_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("authority", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "role", "country", "authority"),
    )
    op.create_index("ix_role_grants_account_id", "role_grants", ["account_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", instant(), nullable=False),
        sa.Column("expires_at", instant(), nullable=False),
        sa.Column("revoked_at", instant(), nullable=True),
        sa.Column("last_used_at", instant(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("secret_hash"),
    )
    op.create_index("ix_api_tokens_account_id", "api_tokens", ["account_id"])
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", instant(), nullable=False),
        sa.Column("expires_at", instant(), nullable=False),
        sa.Column("revoked_at", instant(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("secret_hash"),
    )
    op.create_index("ix_web_sessions_account_id", "web_sessions", ["account_id"])
    op.create_table(
        "security_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", instant(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_security_log_at", "security_log", ["at"])
    op.create_index("ix_security_log_account", "security_log", ["account"])
    op.create_index("ix_security_log_address", "security_log", ["address"])
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("confidential", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # Cases registered before: their intake says whether they are confidential.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE requests SET confidential = true WHERE (intake->>'confidential')::boolean"
        )
    else:
        op.execute(
            "UPDATE requests SET confidential = 1 WHERE json_extract(intake, '$.confidential') = 1"
        )
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.alter_column("confidential", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_column("confidential")
    for index, table in (
        ("ix_security_log_address", "security_log"),
        ("ix_security_log_account", "security_log"),
        ("ix_security_log_at", "security_log"),
        ("ix_web_sessions_account_id", "web_sessions"),
        ("ix_api_tokens_account_id", "api_tokens"),
        ("ix_role_grants_account_id", "role_grants"),
    ):
        op.drop_index(index, table_name=table)
    for table in ("security_log", "web_sessions", "api_tokens", "role_grants", "accounts"):
        op.drop_table(table)
