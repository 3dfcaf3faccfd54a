"""Online status, user search, group owner actions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

- im_user.nickname_searchable: 1 (default) = found by nickname-prefix search; 0 = opted out (an exact
  username search still finds the user).
- idx_nickname on im_user(nickname): nickname-prefix search (LIKE 'prefix%') is a range scan.
Online status lives in Redis / memory (no table); group owner actions use im_group.status (0 = dissolved),
im_group.announcement and im_group_member.role, which exist since 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TINY = sa.SmallInteger().with_variant(mysql.TINYINT(), "mysql", "mariadb")


def upgrade() -> None:
    op.add_column("im_user", sa.Column("nickname_searchable", TINY, nullable=False, server_default="1"))
    op.create_index("idx_nickname", "im_user", ["nickname"])


def downgrade() -> None:
    op.drop_index("idx_nickname", table_name="im_user")
    with op.batch_alter_table("im_user") as batch:
        batch.drop_column("nickname_searchable")
