"""G2's lean group members: every member of one group as a raw connection in the load generator's workers.

500 SDK clients in the benchmark's own process cost more CPU per group message than the server does; these
cost a fraction of it. Each worker process (bench.loadgen: spawned, driven over a pipe) holds a share of
the members, one RawConnection each, that both sends and receives. A member learns of a message as G1's
receivers do (bench.loadgen.Receiver): from the push that carries it inline when it is the next seq, else
from the sync that a push prompts. A phase: some members (`senders`) each send `per_sender` group messages,
the next when the previous one is acked; it ends when every member has every message (a sender has its
own from its ack: the server pushes nothing to the sending device). Each worker reports, per message,
when it was sent and acked (by its senders) and when the last of its members got it; the parent takes
the latest over the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing.connection
import time
from dataclasses import dataclass, field
from typing import Any

from bench.loadgen import ANSWER_TIMEOUT, Phase, PhaseStats, Receiver, begin_phase, end_phase, serve, synced
from bench.rawclient import FastConnection
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd

HEARTBEAT_SECONDS = 20.0  # under the server's heartbeat timeout (60 s), as the SDK clients did

Key = tuple[int, int]  # (sender's member index, message number of that sender)


@dataclass(frozen=True)
class MemberSpec:
    index: int  # position in the group's account list: 0 is the owner
    user_id: int
    url: str  # ws://…/ws?token=…&device_id=PC


@dataclass(frozen=True)
class GroupPhaseSpec:
    start_at: float  # time.monotonic() of the first sends (the same clock in every process)
    group_id: int
    senders: tuple[int, ...]  # member indexes
    per_sender: int
    drain_seconds: float = 120.0  # after the last ack: wait this long at most for every delivery


@dataclass
class GroupPhaseStats:
    """One worker's figures for one phase: times are time.monotonic(); per message, its latest member."""

    common: PhaseStats  # counts, syncs, inline pushes applied, CPU, errors, drained
    sent_at: dict[Key, float] = field(default_factory=dict)  # this worker's senders only
    acked_at: dict[Key, float] = field(default_factory=dict)
    received: dict[Key, int] = field(default_factory=dict)  # members of this worker that got it
    last_received: dict[Key, float] = field(default_factory=dict)  # when the last of them got it
    last_notified: dict[Key, float] = field(default_factory=dict)  # ... the push announcing it came


class GroupRun:
    """A phase in a worker: what it expects and what it saw."""

    def __init__(self, number: int, spec: GroupPhaseSpec, local: list[int]) -> None:
        self.prefix = f"{number}:"
        self.spec = spec
        self.stats = GroupPhaseStats(PhaseStats())
        mine = [s for s in spec.senders if s in local]
        # every message reaches every member of this worker but its own sender
        self.expected = len(spec.senders) * spec.per_sender * len(local) - len(mine) * spec.per_sender
        self.to_send = len(mine) * spec.per_sender
        # content -> message: one look-up per delivery
        self.keys = {self.content(s, k): (s, k) for s in spec.senders for k in range(spec.per_sender)}

    def content(self, sender: int, k: int) -> str:
        return f"{self.prefix}{sender}:{k}"


class Member(Receiver):
    """A receiver that records, per group message, when it got it (and sends on the same connection)."""

    def __init__(self, worker: GroupWorker, spec: MemberSpec) -> None:
        super().__init__(worker, spec.user_id)
        self.group_worker = worker
        self.spec = spec

    def apply(self, m: Any, now: float) -> None:
        self.local_max_seq = m.seq_id
        self.group_worker.received(m, now, self.notified_time(m.seq_id, now))

    def acked_own(self, seq: int) -> None:
        """The server pushes nothing to the sending device: as the SDK and the Web client do, a sender
        takes its own message from the ack when it is the next seq (else the next push makes it sync)."""
        if seq == self.local_max_seq + 1 and not self.syncing:
            self.local_max_seq = seq


class GroupWorker:
    def __init__(self, members: list[MemberSpec]) -> None:
        self.members = [Member(self, m) for m in members]
        self.by_index = {m.spec.index: m for m in self.members}
        self.phase: Phase | None = None  # loadgen's: the counters a Receiver bumps, and the done event
        self.run: GroupRun | None = None
        self.phases = 0
        self._heartbeat: asyncio.Task[None] | None = None

    # Host (bench.loadgen.Receiver)
    def count_error(self, what: str) -> None:
        if self.phase is not None:
            self.phase.stats.errors[what] = self.phase.stats.errors.get(what, 0) + 1

    def check_done(self) -> None:
        run, phase = self.run, self.phase
        if run is None or phase is None:
            return
        s = phase.stats
        if s.acked + s.failed >= run.to_send and s.delivered >= run.expected:
            phase.done.set()

    def received(self, m: Any, now: float, notified: float) -> None:
        """A member got message `m` at `now` (the push that announced it came at `notified`)."""
        run, phase = self.run, self.phase
        if run is None or phase is None or m.is_sender:  # a sender had its own message from the ack
            return
        key = run.keys.get(m.content)
        if key is None:
            return  # setup traffic, or an earlier phase's message
        st = run.stats
        st.received[key] = st.received.get(key, 0) + 1
        if now > st.last_received.get(key, 0.0):
            st.last_received[key] = now
        if notified > st.last_notified.get(key, 0.0):
            st.last_notified[key] = notified
        phase.stats.delivered += 1
        phase.stats.last_delivery = now
        self.check_done()

    # PhaseRunner (bench.loadgen.serve)
    async def connect(self) -> None:
        gate = asyncio.Semaphore(50)

        async def one(m: Member) -> None:
            async with gate:
                m.conn = await FastConnection.connect(m.spec.url, m.on_push)

        await asyncio.gather(*(one(m) for m in self.members))
        await synced(self.members)
        self._heartbeat = asyncio.get_running_loop().create_task(self._heartbeats())

    async def _heartbeats(self) -> None:
        body = pb.HeartbeatReq().SerializeToString()
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            for m in self.members:
                if m.conn is not None:
                    m.conn.send(Cmd.CMD_HEARTBEAT_REQ, body, lambda _cmd, _body: None)

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        for m in self.members:
            if m.conn is not None:
                with contextlib.suppress(Exception):
                    await m.conn.close()

    async def run_phase(self, spec: GroupPhaseSpec) -> GroupPhaseStats:
        self.phases += 1
        run = self.run = GroupRun(self.phases, spec, list(self.by_index))
        phase = self.phase = Phase(self.phases)
        cpu0 = await begin_phase(phase, spec.start_at)
        senders = [self.by_index[s] for s in spec.senders if s in self.by_index]
        await asyncio.gather(*(self._send(run, m) for m in senders))
        self.check_done()
        await end_phase(phase, spec.drain_seconds, cpu0)
        run.stats.common = phase.stats
        self.run = self.phase = None
        return run.stats

    async def _send(self, run: GroupRun, member: Member) -> None:
        """This member's messages of the phase, each sent when the previous one is acked."""
        assert member.conn is not None
        stats, counts = run.stats, self.phase.stats if self.phase is not None else PhaseStats()
        for k in range(run.spec.per_sender):
            key = (member.spec.index, k)
            answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            body = pb.MsgSendReq(group_id=run.spec.group_id, type=pb.TEXT, content=run.content(*key))

            def on_answer(
                cmd: int, body: bytes, key: Key = key, done: asyncio.Future[None] = answered
            ) -> None:
                if cmd == Cmd.CMD_MSG_SEND_RESP:
                    stats.acked_at[key] = time.monotonic()
                    counts.acked += 1
                    member.acked_own(pb.MsgSendResp.FromString(body).seq_id)
                else:
                    counts.failed += 1
                    self.count_error(f"send answered 0x{cmd:04X}")
                if not done.done():
                    done.set_result(None)
                self.check_done()

            stats.sent_at[key] = time.monotonic()
            counts.sent += 1
            member.conn.send(Cmd.CMD_MSG_SEND_REQ, body.SerializeToString(), on_answer)
            try:
                await asyncio.wait_for(answered, ANSWER_TIMEOUT)
            except TimeoutError:
                self.count_error("no answer to a send")
                return


def group_worker_main(pipe: multiprocessing.connection.Connection, members: list[MemberSpec]) -> None:
    serve(pipe, GroupWorker(members))
