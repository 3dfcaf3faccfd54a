"""Initial schema: the spec's tables plus what the guarantees need.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

Spec tables: im_user, im_relation, im_message_body, im_message_index, im_group, im_group_member,
im_file_task. Added: im_user_seq (per-owner seq row, locked in the send transaction: gapless seqs),
im_device_session (live token per user and device type: revocation on re-login and logout),
im_message_body.client_msg_id with a unique key per sender (idempotent retries).
Types are chosen to be valid on MySQL 8.0, MariaDB and SQLite alike.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# BIGINT UNSIGNED on MySQL; INTEGER on SQLite, whose auto-increment needs exactly "INTEGER PRIMARY KEY".
ID = sa.BigInteger().with_variant(mysql.BIGINT(unsigned=True), "mysql", "mariadb").with_variant(sa.Integer(), "sqlite")
UBIGINT = sa.BigInteger().with_variant(mysql.BIGINT(unsigned=True), "mysql", "mariadb")
TINY = sa.SmallInteger().with_variant(mysql.TINYINT(), "mysql", "mariadb")
NOW = sa.text("CURRENT_TIMESTAMP")
MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mariadb_engine": "InnoDB", "mariadb_charset": "utf8mb4"}


def _created() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("created_at", sa.TIMESTAMP(), nullable=True, server_default=NOW)


def _updated() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("updated_at", sa.TIMESTAMP(), nullable=True, server_default=NOW)


def upgrade() -> None:
    op.create_table(
        "im_user",
        sa.Column("user_id", ID, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(32), nullable=False, server_default=""),
        sa.Column("password", sa.String(128), nullable=False, server_default=""),
        sa.Column("nickname", sa.String(64), nullable=False, server_default=""),
        _created(),
        _updated(),
        sa.UniqueConstraint("username", name="uk_username"),
        **MYSQL,
    )
    op.create_table(
        "im_relation",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", UBIGINT, nullable=False),
        sa.Column("friend_id", UBIGINT, nullable=False),
        sa.Column("status", TINY, nullable=False, server_default="1"),
        sa.Column("remark", sa.String(64), server_default=""),
        _created(),
        _updated(),
        sa.UniqueConstraint("user_id", "friend_id", name="uk_user_friend"),
        **MYSQL,
    )
    op.create_index("idx_friend_id", "im_relation", ["friend_id"])
    op.create_table(
        "im_message_body",
        sa.Column("msg_id", UBIGINT, primary_key=True, autoincrement=False),
        sa.Column("sender_id", UBIGINT, nullable=False),
        sa.Column("group_id", UBIGINT, nullable=False, server_default="0"),
        sa.Column("msg_type", TINY, nullable=False, server_default="1"),
        sa.Column("msg_content", sa.Text()),
        sa.Column("msg_extra", sa.String(512), server_default=""),
        sa.Column("client_msg_id", sa.String(64), nullable=True),
        _created(),
        sa.UniqueConstraint("sender_id", "client_msg_id", name="uk_sender_client_msg"),
        **MYSQL,
    )
    op.create_index("idx_sender", "im_message_body", ["sender_id"])
    op.create_index("idx_create_time", "im_message_body", ["created_at"])
    op.create_table(
        "im_message_index",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("owner_id", UBIGINT, nullable=False),
        sa.Column("other_id", UBIGINT, nullable=False),
        sa.Column("msg_id", UBIGINT, nullable=False),
        sa.Column("seq_id", UBIGINT, nullable=False),
        sa.Column("is_sender", TINY, nullable=False, server_default="0"),
        _created(),
        sa.UniqueConstraint("owner_id", "seq_id", name="uk_owner_seq"),
        **MYSQL,
    )
    op.create_index("idx_owner_other", "im_message_index", ["owner_id", "other_id", "created_at"])
    op.create_table(
        "im_user_seq",
        sa.Column("user_id", UBIGINT, primary_key=True, autoincrement=False),
        sa.Column("max_seq", UBIGINT, nullable=False, server_default="0"),
        **MYSQL,
    )
    op.create_table(
        "im_device_session",
        sa.Column("user_id", UBIGINT, primary_key=True, autoincrement=False),
        sa.Column("device_id", sa.String(16), primary_key=True),
        sa.Column("token_id", sa.String(64), nullable=False),
        _updated(),
        **MYSQL,
    )
    op.create_table(
        "im_group",
        sa.Column("group_id", ID, primary_key=True, autoincrement=True),
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("owner_id", UBIGINT, nullable=False),
        sa.Column("announcement", sa.String(255), server_default=""),
        sa.Column("status", TINY, server_default="1"),
        _created(),
        _updated(),
        **MYSQL,
    )
    op.create_table(
        "im_group_member",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("group_id", UBIGINT, nullable=False),
        sa.Column("user_id", UBIGINT, nullable=False),
        sa.Column("role", TINY, server_default="1"),
        _created(),
        sa.UniqueConstraint("group_id", "user_id", name="uk_group_user"),
        **MYSQL,
    )
    op.create_index("idx_user", "im_group_member", ["user_id"])
    op.create_table(
        "im_file_task",
        sa.Column("task_id", sa.CHAR(36), primary_key=True),
        sa.Column("user_id", UBIGINT, nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("file_size", UBIGINT, nullable=False),
        sa.Column("file_md5", sa.CHAR(32), nullable=False, server_default=""),
        sa.Column("status", TINY, nullable=False, server_default="0"),
        sa.Column("current_size", UBIGINT, server_default="0"),
        sa.Column("storage_path", sa.String(512), nullable=False, server_default=""),
        _created(),
        _updated(),
        **MYSQL,
    )
    op.create_index("idx_md5", "im_file_task", ["file_md5"])


def downgrade() -> None:
    for table in (
        "im_file_task",
        "im_group_member",
        "im_group",
        "im_device_session",
        "im_user_seq",
        "im_message_index",
        "im_message_body",
        "im_relation",
        "im_user",
    ):
        op.drop_table(table)
