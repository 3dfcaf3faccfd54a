"""Auth hardening: refresh tokens with rotation and revocation.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

- im_refresh_token: one row per refresh token ever issued (only its SHA-256 is stored). A login starts a
  family; each refresh marks the token used and issues the next one in the same family. Presenting a
  used token again (a stolen copy) revokes the whole family. A newer login of the same device type and
  a logout revoke the device's tokens. Login throttling keeps its state in memory (no table).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UBIGINT = sa.BigInteger().with_variant(mysql.BIGINT(unsigned=True), "mysql", "mariadb")
TINY = sa.SmallInteger().with_variant(mysql.TINYINT(), "mysql", "mariadb")
MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mariadb_engine": "InnoDB", "mariadb_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table(
        "im_refresh_token",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", UBIGINT, nullable=False),
        sa.Column("device_id", sa.String(16), nullable=False),
        sa.Column("family_id", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used", TINY, nullable=False, server_default="0"),
        sa.Column("revoked", TINY, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(), nullable=False, server_default=sa.text("CURRENT_TIMESTAMP")),
        **MYSQL,
    )
    op.create_index("ix_refresh_token_device", "im_refresh_token", ["user_id", "device_id"])
    op.create_index("ix_refresh_token_family", "im_refresh_token", ["family_id"])


def downgrade() -> None:
    op.drop_table("im_refresh_token")
