"""Admin API: disabled accounts, the registration mode, invite codes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

- im_user.disabled: 1 = an administrator disabled the account (no login, no token refresh).
- im_setting: server-wide switches by name; `registration_mode` = open | closed | invite (absent: open).
- im_invite: one row per invite code, by its SHA-256 (the code is shown once, at creation). `claimed` is
  set by the registration that takes it (one UPDATE decides between two racing registrations), `used_by`
  once the account exists.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UBIGINT = sa.BigInteger().with_variant(mysql.BIGINT(unsigned=True), "mysql", "mariadb")
ID = UBIGINT.with_variant(sa.Integer(), "sqlite")  # SQLite assigns ids only to INTEGER PRIMARY KEY
TINY = sa.SmallInteger().with_variant(mysql.TINYINT(), "mysql", "mariadb")
MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mariadb_engine": "InnoDB", "mariadb_charset": "utf8mb4"}


def upgrade() -> None:
    with op.batch_alter_table("im_user") as batch:
        batch.add_column(sa.Column("disabled", TINY, nullable=False, server_default="0"))
    op.create_table(
        "im_setting",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
        **MYSQL,
    )
    op.create_table(
        "im_invite",
        sa.Column("invite_id", ID, primary_key=True, autoincrement=True),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("note", sa.String(128), nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("claimed", TINY, nullable=False, server_default="0"),
        sa.Column("used_by", UBIGINT, nullable=False, server_default="0"),
        sa.Column("revoked", TINY, nullable=False, server_default="0"),
        sa.UniqueConstraint("code_hash", name="uk_invite_code"),
        **MYSQL,
    )


def downgrade() -> None:
    op.drop_table("im_invite")
    op.drop_table("im_setting")
    with op.batch_alter_table("im_user") as batch:
        batch.drop_column("disabled")
