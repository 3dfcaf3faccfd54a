"""An internal error counts as a bad frame, and tracebacks reach the log at a bounded rate."""

from __future__ import annotations

import logging

import pytest

from tests.unit.edges.gateway.test_router_and_settings import FakeTimeline, router
from tests.unit.presence.test_presence_and_hub import connection
from tinyim.edges.gateway.connection import CLOSE_POLICY
from tinyim.infra.logging import RateLimitedLog
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd
from tinyim.wire.codec import Frame


async def test_a_client_that_keeps_causing_internal_errors_is_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn, sock = connection(1, "PC")
    r = router(FakeTimeline(RuntimeError("db down")))
    body = pb.MsgSendReq(receiver_id=9, content="x").SerializeToString()
    with caplog.at_level(logging.ERROR):
        for _ in range(25):
            await r.handle(conn, Frame(Cmd.CMD_MSG_SEND_REQ, body))
    assert conn.closed and sock.closed_with == CLOSE_POLICY
    assert sum("request failed" in rec.getMessage() for rec in caplog.records) <= 1


def test_rate_limited_log_counts_what_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    limited = RateLimitedLog(logging.getLogger("t"), interval=3600)
    with caplog.at_level(logging.ERROR):
        for _ in range(100):
            try:
                raise ValueError("boom")
            except ValueError:
                limited.exception("failed")
    assert len(caplog.records) == 1 and limited.suppressed == 99
