"""Files: file tasks and content-addressed blobs.

`im_file_task` exists since 0001 (the spec's columns); this adds what resumable and instant uploads
need: the content address of the finished bytes (`blob_key`), when an unfinished upload is abandoned
(`expires_at`), the instant-upload challenge (`proof_offset`, `proof_length`), why a task failed
(`error`), and `im_file_grant`: who may download a file (everyone a message naming it was sent to).
Status values: 0 uploading, 1 finished, 2 cancelled (expired), 3 failed (size/MD5 mismatch).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UBIGINT = sa.BigInteger().with_variant(mysql.BIGINT(unsigned=True), "mysql", "mariadb")
MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mariadb_engine": "InnoDB", "mariadb_charset": "utf8mb4"}


def upgrade() -> None:
    with op.batch_alter_table("im_file_task") as batch:
        batch.add_column(sa.Column("blob_key", sa.String(80), nullable=False, server_default=""))
        batch.add_column(sa.Column("expires_at", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("proof_offset", UBIGINT, nullable=False, server_default="0"))
        batch.add_column(sa.Column("proof_length", UBIGINT, nullable=False, server_default="0"))
        batch.add_column(sa.Column("error", sa.String(255), nullable=False, server_default=""))
    # instant uploads look up finished files by size + MD5; the sweeper finds expired uploads by status
    op.create_index("idx_md5_size", "im_file_task", ["file_md5", "file_size", "status"])
    op.create_index("idx_status_expires", "im_file_task", ["status", "expires_at"])
    op.create_table(
        "im_file_grant",
        sa.Column("task_id", sa.CHAR(32), primary_key=True),
        sa.Column("user_id", UBIGINT, primary_key=True),
        **MYSQL,
    )


def downgrade() -> None:
    op.drop_table("im_file_grant")
    op.drop_index("idx_status_expires", "im_file_task")
    op.drop_index("idx_md5_size", "im_file_task")
    with op.batch_alter_table("im_file_task") as batch:
        for column in ("error", "proof_length", "proof_offset", "expires_at", "blob_key"):
            batch.drop_column(column)
