"""Group membership history: who was in a group, and when.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

- im_group_member_history: one row per ended membership (left, removed, or the group dissolved) with
  when it began (im_group_member.created_at) and ended. Profiles of people who left stay readable to
  those who were in the group with them (their names appear in old messages); nothing else reads it.
  Memberships that ended before this revision left no trace.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(mysql.BIGINT(unsigned=True), "mysql", "mariadb").with_variant(sa.Integer, "sqlite")
UBIGINT = sa.BigInteger().with_variant(mysql.BIGINT(unsigned=True), "mysql", "mariadb")
MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mariadb_engine": "InnoDB", "mariadb_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table(
        "im_group_member_history",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("group_id", UBIGINT, nullable=False),
        sa.Column("user_id", UBIGINT, nullable=False),
        sa.Column("joined_at", sa.TIMESTAMP(), nullable=True),
        sa.Column("left_at", sa.TIMESTAMP(), nullable=True),
        **MYSQL,
    )
    op.create_index("idx_user_group", "im_group_member_history", ["user_id", "group_id"])


def downgrade() -> None:
    op.drop_table("im_group_member_history")
