"""The fuzz targets. Each raises (a crash for libFuzzer) only when an invariant breaks:

- frames: `decode` raises nothing but FrameError, whatever the bytes; a decoded frame's body parses to
  its message or raises FrameError; range checks raise FrameError only; encode(decode(x)) == x.
- handlers: any body for any request command, through the real CommandRouter over in-memory services,
  answers exactly one well-formed frame, never ERR_INTERNAL, and never raises.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tinyim.edges.gateway.connection import Connection, TokenBucket
from tinyim.edges.gateway.hub import GatewayHub
from tinyim.edges.gateway.router import CommandRouter
from tinyim.infra.snowflake import Snowflake
from tinyim.modules.presence.adapters.memory import InMemorySessionDirectory
from tinyim.modules.relation import RelationService
from tinyim.modules.relation.adapters.memory import InMemoryRelationStore
from tinyim.modules.relation.adapters.memory_unit_of_work import InMemoryRelationUnits
from tinyim.modules.timeline import TimelineService, TimelineWriter
from tinyim.modules.timeline.adapters.memory import InMemoryTimelineStore
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import REQUEST_COMMANDS, Cmd, ErrorCode, FrameError, decode, encode, parse_body
from tinyim.wire.codec import Frame
from tinyim.wire.validate import check_ranges

from .fakes import FuzzNotices, FuzzNotifier, FuzzUsers

USERS = (1, 2, 3, 4, 5)


def frames(data: bytes) -> None:
    try:
        frame = decode(data)
    except FrameError:
        return
    assert encode(frame.cmd, frame.body) == data
    try:
        check_ranges(parse_body(frame.cmd, frame.body), frame.cmd)
    except FrameError:
        return


class _Socket:
    async def send(self, data: bytes) -> None:
        return None

    async def close(self, code: int, reason: str) -> None:
        return None


class HandlerHarness:
    """The gateway's router over the real services and in-memory stores (rebuilt now and then, so the
    stores' memory stays bounded over a long run)."""

    REBUILD_EVERY = 5000

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.commands = sorted(c for c in REQUEST_COMMANDS if c != Cmd.CMD_LOGIN_REQ)
        self.runs = 0
        self._build()

    def _build(self) -> None:
        users = FuzzUsers(*USERS)
        relations = InMemoryRelationStore()
        relation = RelationService(relations, users, FuzzNotices(), units=InMemoryRelationUnits(relations))
        store = InMemoryTimelineStore()
        notifier = FuzzNotifier()
        writer = TimelineWriter(store, Snowflake(1), notifier)
        timeline = TimelineService(
            store,
            writer,
            relation,
            notifier,
            max_content_bytes=16384,
            sync_page_default=50,
            sync_page_max=200,
        )
        self.hub = GatewayHub("gw-fuzz", InMemorySessionDirectory())
        self.router = CommandRouter(timeline, relation, self.hub)

    def _connection(self, user_id: int) -> Connection:
        sock = _Socket()
        return Connection(
            sock.send,
            sock.close,
            user_id,
            "PC",
            "t",
            f"c{user_id}",
            TokenBucket(1e9, 10**9),
            TokenBucket(1e9, 10**9),
        )

    def __call__(self, data: bytes) -> None:
        if len(data) < 2:
            return
        self.runs += 1
        if self.runs % self.REBUILD_EVERY == 0:
            self._build()
        cmd = self.commands[data[0] % len(self.commands)]
        user_id = USERS[data[1] % len(USERS)]
        out: Any = self.loop.run_until_complete(
            self.router.handle(self._connection(user_id), Frame(cmd, data[2:]))
        )
        answer = decode(out, 1 << 26)
        if answer.cmd == Cmd.CMD_ERROR_RESP:
            err = pb.ErrorResp.FromString(answer.body)
            assert err.code != int(ErrorCode.ERR_INTERNAL), f"ERR_INTERNAL for {Cmd(cmd).name}: {err.message}"
            assert err.cmd == cmd
