"""The relation module's notice outbox.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29

- im_relation_outbox: notices (SYSTEM / FRIEND_REQ messages) of a social change, written in the same
  transaction as the change and deleted once the timeline took them. dedup_key is the message's
  client_msg_id in the timeline, so a notice delivered twice (a crash after the post, before the delete)
  is written once. receiver_ids is a JSON list of user ids (the receiver, or the group's members).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ID = (
    sa.BigInteger()
    .with_variant(mysql.BIGINT(unsigned=True), "mysql", "mariadb")
    .with_variant(sa.Integer, "sqlite")
)
UBIGINT = sa.BigInteger().with_variant(mysql.BIGINT(unsigned=True), "mysql", "mariadb")
MYSQL = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mariadb_engine": "InnoDB",
    "mariadb_charset": "utf8mb4",
}


def upgrade() -> None:
    op.create_table(
        "im_relation_outbox",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.String(64), nullable=False),
        sa.Column("sender_id", UBIGINT, nullable=False),
        sa.Column("group_id", UBIGINT, nullable=False),
        sa.Column("receiver_ids", sa.Text(), nullable=False),
        sa.Column("friend_request", sa.SmallInteger(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.TIMESTAMP(), nullable=True),
        sa.UniqueConstraint("dedup_key", name="uk_dedup_key"),
        **MYSQL,
    )


def downgrade() -> None:
    op.drop_table("im_relation_outbox")
