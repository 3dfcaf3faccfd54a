"""Social graph: friend requests, blacklist, group join requests, read state, conversation type.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

- im_friend_request: one row per (from, to), reused when someone applies again.
- im_blacklist: blocking is kept apart from friendship (the spec's im_relation.status=2 is not used), so a
  stranger can be blocked and unblocking restores whatever friendship there was.
- im_group_join_request: one row per (group, applicant).
- im_read_state: how far each owner has read each conversation (unread counts, multi-device badges).
- im_message_index.conv_type: 0 = 1:1 (other_id is a user), 1 = group (other_id is a group). User and group
  ids overlap, so the history index must tell them apart; it pages by seq instead of created_at.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(mysql.BIGINT(unsigned=True), "mysql", "mariadb").with_variant(sa.Integer(), "sqlite")
UBIGINT = sa.BigInteger().with_variant(mysql.BIGINT(unsigned=True), "mysql", "mariadb")
TINY = sa.SmallInteger().with_variant(mysql.TINYINT(), "mysql", "mariadb")
NOW = sa.text("CURRENT_TIMESTAMP")
MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mariadb_engine": "InnoDB", "mariadb_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table(
        "im_friend_request",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("from_user_id", UBIGINT, nullable=False),
        sa.Column("to_user_id", UBIGINT, nullable=False),
        sa.Column("reason", sa.String(255), nullable=False, server_default=""),
        sa.Column("status", TINY, nullable=False, server_default="0"),  # 0 pending, 1 accepted, 2 rejected
        sa.Column("created_at", sa.TIMESTAMP(), nullable=True, server_default=NOW),
        sa.Column("updated_at", sa.TIMESTAMP(), nullable=True, server_default=NOW),
        sa.UniqueConstraint("from_user_id", "to_user_id", name="uk_from_to"),
        **MYSQL,
    )
    op.create_index("idx_to_status", "im_friend_request", ["to_user_id", "status"])
    op.create_table(
        "im_blacklist",
        sa.Column("user_id", UBIGINT, primary_key=True, autoincrement=False),
        sa.Column("blocked_id", UBIGINT, primary_key=True, autoincrement=False),
        sa.Column("created_at", sa.TIMESTAMP(), nullable=True, server_default=NOW),
        **MYSQL,
    )
    op.create_table(
        "im_group_join_request",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("group_id", UBIGINT, nullable=False),
        sa.Column("user_id", UBIGINT, nullable=False),
        sa.Column("status", TINY, nullable=False, server_default="0"),  # 0 pending, 1 approved, 2 rejected
        sa.Column("created_at", sa.TIMESTAMP(), nullable=True, server_default=NOW),
        sa.Column("updated_at", sa.TIMESTAMP(), nullable=True, server_default=NOW),
        sa.UniqueConstraint("group_id", "user_id", name="uk_group_applicant"),
        **MYSQL,
    )
    op.create_table(
        "im_read_state",
        sa.Column("owner_id", UBIGINT, primary_key=True, autoincrement=False),
        sa.Column("conv_type", TINY, primary_key=True, autoincrement=False),
        sa.Column("other_id", UBIGINT, primary_key=True, autoincrement=False),
        sa.Column("read_seq", UBIGINT, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.TIMESTAMP(), nullable=True, server_default=NOW),
        **MYSQL,
    )
    op.add_column("im_message_index", sa.Column("conv_type", TINY, nullable=False, server_default="0"))
    op.drop_index("idx_owner_other", table_name="im_message_index")
    op.create_index("idx_owner_conv", "im_message_index", ["owner_id", "conv_type", "other_id", "seq_id"])


def downgrade() -> None:
    op.drop_index("idx_owner_conv", table_name="im_message_index")
    op.create_index("idx_owner_other", "im_message_index", ["owner_id", "other_id", "created_at"])
    with op.batch_alter_table("im_message_index") as batch:
        batch.drop_column("conv_type")
    for table in ("im_read_state", "im_group_join_request", "im_blacklist", "im_friend_request"):
        op.drop_table(table)
