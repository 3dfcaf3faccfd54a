"""Migration 0006 fills the conversation list from the timelines and read marks that exist already."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command

from tinyim.cli import _alembic_config
from tinyim.settings import Settings


def test_upgrade_backfills_conversations_from_timelines_and_read_marks(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    config = _alembic_config(settings)
    command.upgrade(config, "0005")  # type: ignore[arg-type]
    db = sqlite3.connect(tmp_path / "tinyim.sqlite3")
    # users 1 and 2 chat (1:1, conv_type 0); group 1 (conv_type 1: the same number, another conversation)
    bodies = [(10, 2, 0, "hi"), (11, 1, 0, "hello back"), (12, 2, 0, "and?"), (13, 2, 1, "group " + "x" * 80)]
    db.executemany(
        "INSERT INTO im_message_body (msg_id, sender_id, group_id, msg_type, msg_content) "
        "VALUES (?, ?, ?, 0, ?)",
        bodies,
    )
    index = [  # owner, other, msg, seq, is_sender, conv_type
        (1, 2, 10, 1, 0, 0), (2, 1, 10, 1, 1, 0),
        (1, 2, 11, 2, 1, 0), (2, 1, 11, 2, 0, 0),
        (1, 2, 12, 3, 0, 0), (2, 1, 12, 3, 1, 0),
        (1, 1, 13, 4, 0, 1), (2, 1, 13, 4, 1, 1),
    ]  # fmt: skip
    db.executemany(
        "INSERT INTO im_message_index (owner_id, other_id, msg_id, seq_id, is_sender, conv_type) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        index,
    )
    db.execute("INSERT INTO im_read_state (owner_id, conv_type, other_id, read_seq) VALUES (1, 0, 2, 1)")
    db.commit()
    db.close()

    command.upgrade(config, "0006")  # type: ignore[arg-type]
    db = sqlite3.connect(tmp_path / "tinyim.sqlite3")
    rows = db.execute(
        "SELECT owner_id, conv_type, other_id, last_seq, last_msg_id, last_sender_id, preview, unread, "
        "read_seq FROM im_conversation ORDER BY owner_id, conv_type"
    ).fetchall()
    assert (
        rows
        == [
            (1, 0, 2, 3, 12, 2, "and?", 1, 1),  # read up to 1: "and?" from 2 is unread, 1's own reply is not
            (1, 1, 1, 4, 13, 2, ("group " + "x" * 80)[:60], 1, 0),
            (2, 0, 1, 3, 12, 2, "and?", 1, 0),
            (2, 1, 1, 4, 13, 2, ("group " + "x" * 80)[:60], 0, 0),
        ]
    )
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "im_read_state" not in tables
    db.close()

    command.downgrade(config, "0005")  # type: ignore[arg-type]
    db = sqlite3.connect(tmp_path / "tinyim.sqlite3")
    assert db.execute("SELECT owner_id, conv_type, other_id, read_seq FROM im_read_state").fetchall() == [
        (1, 0, 2, 1)
    ]
    db.close()
