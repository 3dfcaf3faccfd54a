"""The audit log: who did what to which account, one JSON object per line, never a secret.

Events: register, login (ok or failed, with the reason and the client's address), logout, kick, and every
admin action. Lines go to the `tinyim.audit` logger, written as JSON with an ISO-8601 UTC timestamp to
stderr, or to the file IM_AUDIT_LOG when set (append-only, for shipping to a log store).

Field names that could carry credentials are refused at the source: a call that passes one raises, in
tests and in production, so a secret can never reach a line by accident.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

LOGGER = "tinyim.audit"
FORBIDDEN = ("token", "password", "secret", "authorization", "cookie")

log = logging.getLogger(LOGGER)


class AuditFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "event": record.getMessage(),
        }
        line.update(getattr(record, "audit", {}))
        rid = getattr(record, "request_id", "")
        if rid:
            line["request_id"] = rid
        return json.dumps(line, default=str, ensure_ascii=False)


def event(name: str, **fields: Any) -> None:
    """Record one audit event (`login`, `admin.disable_user`, …) with plain fields (ids, outcome, ip)."""
    bad = [k for k in fields if any(word in k.lower() for word in FORBIDDEN)]
    if bad:
        raise ValueError(f"audit fields {bad} look like credentials; they are never logged")
    log.info(name, extra={"audit": fields})


def configure(path: str = "") -> None:
    """Audit lines as JSON to `path` (appended) or stderr; they do not also go to the ordinary log."""
    handler: logging.Handler = (
        logging.FileHandler(Path(path), encoding="utf-8") if path else logging.StreamHandler()
    )
    from tinyim.infra.tracing import RequestIdFilter

    handler.addFilter(RequestIdFilter())
    handler.setFormatter(AuditFormatter())
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
