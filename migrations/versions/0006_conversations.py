"""Conversations, read receipts, recall.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

- im_conversation: one row per (owner, conversation), upserted in the transaction that writes a message
  (last message, its preview, unread count), with the owner's read mark, the 1:1 peer's read mark in the
  owner's seq space (read receipts), and the per-user pinned/muted flags. Filled here from the existing
  timelines and read marks; im_read_state is folded into it and dropped.
- im_message_body.recalled_by: 0, or who recalled the message (its content is cleared at recall).
- im_message_index.idx_msg: every copy of one message (recall, group read counts).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UBIGINT = sa.BigInteger().with_variant(mysql.BIGINT(unsigned=True), "mysql", "mariadb")
TINY = sa.SmallInteger().with_variant(mysql.TINYINT(), "mysql", "mariadb")
NOW = sa.text("CURRENT_TIMESTAMP")
MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mariadb_engine": "InnoDB", "mariadb_charset": "utf8mb4"}
PREVIEW_CHARS = 60  # tinyim.modules.timeline.domain.PREVIEW_CHARS

_BACKFILL = f"""
INSERT INTO im_conversation
    (owner_id, conv_type, other_id, last_seq, last_msg_id, last_sender_id, last_msg_type, preview, unread, read_seq)
SELECT i.owner_id, i.conv_type, i.other_id, i.seq_id, i.msg_id, b.sender_id, b.msg_type,
       SUBSTR(COALESCE(b.msg_content, ''), 1, {PREVIEW_CHARS}),
       (SELECT COUNT(*) FROM im_message_index u
         WHERE u.owner_id = i.owner_id AND u.conv_type = i.conv_type AND u.other_id = i.other_id
           AND u.is_sender = 0 AND u.seq_id > COALESCE(r.read_seq, 0)),
       COALESCE(r.read_seq, 0)
FROM im_message_index i
JOIN im_message_body b ON b.msg_id = i.msg_id
JOIN (SELECT owner_id, conv_type, other_id, MAX(seq_id) AS top FROM im_message_index
      GROUP BY owner_id, conv_type, other_id) m
  ON m.owner_id = i.owner_id AND m.conv_type = i.conv_type AND m.other_id = i.other_id AND m.top = i.seq_id
LEFT JOIN im_read_state r
  ON r.owner_id = i.owner_id AND r.conv_type = i.conv_type AND r.other_id = i.other_id
"""


def upgrade() -> None:
    op.add_column("im_message_body", sa.Column("recalled_by", UBIGINT, nullable=False, server_default="0"))
    op.create_index("idx_msg", "im_message_index", ["msg_id"])
    op.create_table(
        "im_conversation",
        sa.Column("owner_id", UBIGINT, primary_key=True, autoincrement=False),
        sa.Column("conv_type", TINY, primary_key=True, autoincrement=False),
        sa.Column("other_id", UBIGINT, primary_key=True, autoincrement=False),
        sa.Column("last_seq", UBIGINT, nullable=False, server_default="0"),
        sa.Column("last_msg_id", UBIGINT, nullable=False, server_default="0"),
        sa.Column("last_sender_id", UBIGINT, nullable=False, server_default="0"),
        sa.Column("last_msg_type", TINY, nullable=False, server_default="0"),
        sa.Column("preview", sa.String(PREVIEW_CHARS), nullable=False, server_default=""),
        sa.Column("unread", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("read_seq", UBIGINT, nullable=False, server_default="0"),
        sa.Column("peer_read_seq", UBIGINT, nullable=False, server_default="0"),
        sa.Column("pinned", TINY, nullable=False, server_default="0"),
        sa.Column("muted", TINY, nullable=False, server_default="0"),
        **MYSQL,
    )
    # the list: pinned first, then newest first, per owner
    op.create_index("idx_owner_order", "im_conversation", ["owner_id", "pinned", "last_seq"])
    op.execute(_BACKFILL)
    op.drop_table("im_read_state")


def downgrade() -> None:
    op.create_table(
        "im_read_state",
        sa.Column("owner_id", UBIGINT, primary_key=True, autoincrement=False),
        sa.Column("conv_type", TINY, primary_key=True, autoincrement=False),
        sa.Column("other_id", UBIGINT, primary_key=True, autoincrement=False),
        sa.Column("read_seq", UBIGINT, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.TIMESTAMP(), nullable=True, server_default=NOW),
        **MYSQL,
    )
    op.execute(
        "INSERT INTO im_read_state (owner_id, conv_type, other_id, read_seq) "
        "SELECT owner_id, conv_type, other_id, read_seq FROM im_conversation WHERE read_seq > 0"
    )
    op.drop_table("im_conversation")
    op.drop_index("idx_msg", table_name="im_message_index")
    with op.batch_alter_table("im_message_body") as batch:
        batch.drop_column("recalled_by")
