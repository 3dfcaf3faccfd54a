"""Audit lines: one JSON object per line with an ISO timestamp, the request id, and never a credential."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tinyim.infra import audit, tracing


@pytest.fixture
def audit_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "audit.log"
    audit.configure(str(path))
    yield path
    audit.configure()


def lines(path: Path) -> list[dict[str, object]]:
    for handler in audit.log.handlers:
        handler.flush()
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_events_are_json_lines_with_iso_timestamps_and_request_ids(audit_file: Path) -> None:
    rid = tracing.new_request()
    audit.event("login", user_id=7, outcome="ok", device="PC", ip="10.0.0.9")
    audit.event("register", user_id=8, username="名字")
    first, second = lines(audit_file)
    assert first["event"] == "login" and first["outcome"] == "ok" and first["request_id"] == rid
    when = dt.datetime.fromisoformat(str(first["ts"]))
    assert when.tzinfo is not None and abs((dt.datetime.now(dt.UTC) - when).total_seconds()) < 60
    assert second["username"] == "名字"


def test_a_field_that_could_hold_a_credential_is_refused(audit_file: Path) -> None:
    for field in ("token", "refresh_token", "password", "new_password", "jwt_secret", "Authorization"):
        with pytest.raises(ValueError):
            audit.event("login", **{field: "x"})
    assert lines(audit_file) == []
