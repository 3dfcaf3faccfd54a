"""A request id that follows one client request through every internal call and into every log line.

The edge that receives a request (a WebSocket frame, an HTTP request) starts one with `new_request()`;
gRPC client interceptors send it as `im-request-id` metadata and server interceptors adopt it, so a
message's path through gateway -> msg -> gateway can be read from the logs of every process.
"""

from __future__ import annotations

import contextvars
import logging
import os
import random

METADATA_KEY = "im-request-id"

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("im_request_id", default="")

# Request ids only tell requests apart in the logs: a generator seeded from the OS once per process, not
# a getrandom() call per frame (secrets.token_hex cost ~1 % of a gateway's CPU under a message load).
_ids = random.Random(os.urandom(16))
_bits = _ids.getrandbits
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(16)))  # a forked child: its own ids


def current() -> str:
    return _request_id.get()


def new_request() -> str:
    """Start a request here: a fresh 16-hex-digit id for this task and what it awaits."""
    rid = f"{_bits(64):016x}"
    _request_id.set(rid)
    return rid


def adopt(rid: str) -> None:
    """Continue a request started elsewhere (an id that came with an internal call)."""
    if rid and len(rid) <= 64 and rid.isascii() and rid.isprintable():
        _request_id.set(rid)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record logged while a request is being served."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = _request_id.get()
        if rid and not hasattr(record, "request_id"):
            record.request_id = rid
        return True
