"""The load generator: worker processes, each holding many raw WebSocket pairs, closed or open loop.

A pair is a sender and a receiver (friends; the receiver on another gateway when there are several). The
parent starts the workers (spawned: no event loop is forked), each connects its pairs, makes them friends
and syncs the receivers once; then the parent runs phases, all workers at once from a shared start time:
- closed loop: each pair sends its next message when the previous one is acked (`per_pair` messages);
- open loop: each worker sends at its share of the total rate on a fixed schedule, whatever the answers;
  every latency is measured from the SCHEDULED send time (no coordinated omission), and how late the
  worker itself was is reported, so a client that cannot keep up shows as such.
Receivers behave like the SDK: MsgPushNotify → MsgSyncReq from local_max_seq (all pages), one sync at
a time; a push that carries a message (a MessageData field, once the server sends one) whose seq is
local_max_seq + 1 is applied without a sync. A message is delivered when its receiver applied it.
Each message's content is "<phase>:<index>", so a receiver knows which send it is.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import multiprocessing
import multiprocessing.connection
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench.rawclient import RawConnection
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd

SYNC_LIMIT = 200
ANSWER_TIMEOUT = 120.0  # closed loop: a pair whose send gets no answer in this time stops


@dataclass(frozen=True)
class PairSpec:
    sender_id: int
    sender_url: str  # ws://…/ws?token=…&device_id=PC
    receiver_id: int
    receiver_url: str


@dataclass(frozen=True)
class PhaseSpec:
    mode: str  # "closed" | "open"
    start_at: float  # time.monotonic() of the first send (CLOCK_MONOTONIC: the same in every process)
    per_pair: int = 0  # closed loop: messages each pair sends
    rate: float = 0.0  # open loop: this worker's messages/s
    duration: float = 0.0  # open loop: seconds of sending
    drain_seconds: float = 30.0  # after the last send: wait this long at most for acks and deliveries


@dataclass
class PhaseStats:
    """One worker's figures for one phase (latencies in seconds)."""

    sent: int = 0
    acked: int = 0
    failed: int = 0  # answered with ErrorResp
    delivered: int = 0
    duplicates: int = 0
    syncs: int = 0  # MsgSyncReq sent by the receivers
    inline_applied: int = 0  # messages applied from a push, without a sync
    ack: list[float] = field(default_factory=list)
    notify: list[float] = field(default_factory=list)
    delivered_latency: list[float] = field(default_factory=list)
    send_lateness: list[float] = field(default_factory=list)  # open loop: actual minus scheduled send
    cpu_seconds: float = 0.0  # this worker process, from the first send until drained
    cpu_system_seconds: float = 0.0  # of which in the kernel (socket calls: loopback TCP costs both ends)
    first_send: float = 0.0
    last_delivery: float = 0.0
    drained: bool = True
    errors: dict[str, int] = field(default_factory=dict)


def _cpu() -> tuple[float, float]:
    """(user + system, system) CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_stime


class Phase:
    """Per-phase bookkeeping, indexed by message number within the worker."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.prefix = f"{number}:"
        self.scheduled: list[float] = []
        self.acked_at: list[float] = []
        self.notified_at: list[float] = []
        self.delivered_at: list[float] = []
        self.failed: list[bool] = []
        self.stats = PhaseStats()
        self.done = asyncio.Event()

    def new_message(self, scheduled: float) -> int:
        self.scheduled.append(scheduled)
        self.acked_at.append(0.0)
        self.notified_at.append(0.0)
        self.delivered_at.append(0.0)
        self.failed.append(False)
        self.stats.sent += 1
        return len(self.scheduled) - 1

    def finished(self) -> bool:
        s = self.stats
        return s.acked + s.failed >= s.sent and s.delivered >= s.acked


async def begin_phase(phase: Phase, start_at: float) -> tuple[float, float]:
    """Wait for the phase's start (the same clock in every worker); this process's CPU at that moment."""
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    cpu0 = _cpu()
    phase.stats.first_send = time.monotonic()
    return cpu0


async def end_phase(phase: Phase, drain_seconds: float, cpu0: tuple[float, float]) -> None:
    """Wait until the phase is done (or its drain time ran out), then record the CPU it cost."""
    try:
        await asyncio.wait_for(phase.done.wait(), drain_seconds)
    except TimeoutError:
        phase.stats.drained = False
    cpu1 = _cpu()
    phase.stats.cpu_seconds = cpu1[0] - cpu0[0]
    phase.stats.cpu_system_seconds = cpu1[1] - cpu0[1]


class Host(Protocol):
    """What a Receiver needs of the worker that holds it (G1's Worker, G2's group worker)."""

    phase: Phase | None

    def count_error(self, what: str) -> None: ...

    def check_done(self) -> None: ...


class Receiver:
    def __init__(self, worker: Host, user_id: int) -> None:
        self.worker = worker
        self.user_id = user_id
        self.conn: RawConnection | None = None
        self.local_max_seq = 0
        self.notified_max_seq = 0
        self.push_seqs: list[int] = []  # increasing max_seq_id of the pushes, with their arrival times
        self.push_times: list[float] = []
        self.syncing = False
        self.again = False

    def on_push(self, cmd: int, body: bytes) -> None:
        if cmd != Cmd.CMD_MSG_PUSH_NOTIFY:
            return
        now = time.monotonic()
        push = pb.MsgPushNotify.FromString(body)
        if push.max_seq_id > self.notified_max_seq:
            self.notified_max_seq = push.max_seq_id
            self.push_seqs.append(push.max_seq_id)
            self.push_times.append(now)
        if not self.syncing:
            for m in push.msgs:  # a push may carry the message; applied when it is the next seq
                if m.seq_id == self.local_max_seq + 1:
                    self.apply(m, now)
                    if self.worker.phase is not None:
                        self.worker.phase.stats.inline_applied += 1
        if self.notified_max_seq > self.local_max_seq:
            self.sync()

    def sync(self) -> None:
        if self.syncing:
            self.again = True
            return
        assert self.conn is not None
        self.syncing = True
        self.again = False
        if self.worker.phase is not None:
            self.worker.phase.stats.syncs += 1
        req = pb.MsgSyncReq(
            local_max_seq=self.local_max_seq, limit=SYNC_LIMIT, min_seq=self.notified_max_seq
        ).SerializeToString()
        self.conn.send(Cmd.CMD_MSG_SYNC_REQ, req, self.on_synced)

    def on_synced(self, cmd: int, body: bytes) -> None:
        self.syncing = False
        if cmd != Cmd.CMD_MSG_SYNC_RESP:
            self.worker.count_error(f"sync answered 0x{cmd:04X}")
            asyncio.get_running_loop().call_later(0.05, self.sync)
            return
        now = time.monotonic()
        resp = pb.MsgSyncResp.FromString(body)
        for m in resp.msgs:
            if m.seq_id > self.local_max_seq:
                self.apply(m, now)
        if resp.has_more or self.again or self.notified_max_seq > self.local_max_seq:
            if resp.msgs or self.again:
                self.sync()
            else:  # the server stopped before a seq still being written: ask again shortly
                asyncio.get_running_loop().call_later(0.02, self.sync)

    def notified_time(self, seq: int, now: float) -> float:
        """When the first push that announced `seq` arrived (`now` when none did: a sync found it)."""
        k = bisect.bisect_left(self.push_seqs, seq)
        return min(now, self.push_times[k]) if k < len(self.push_seqs) else now

    def apply(self, m: Any, now: float) -> None:
        self.local_max_seq = m.seq_id
        phase = self.worker.phase
        if phase is None or not m.content.startswith(phase.prefix):
            return  # setup traffic, or a message of an earlier phase
        i = int(m.content[len(phase.prefix) :])
        if phase.delivered_at[i]:
            phase.stats.duplicates += 1
            return
        phase.delivered_at[i] = now
        phase.notified_at[i] = self.notified_time(m.seq_id, now)
        phase.stats.delivered += 1
        phase.stats.last_delivery = now
        self.worker.check_done()


async def synced(receivers: Sequence[Receiver]) -> None:
    """Sync every receiver once (all pages), so each starts a phase at its timeline's end."""
    for r in receivers:
        r.sync()
    while any(r.syncing for r in receivers):  # noqa: ASYNC110 (setup: flags set by callbacks)
        await asyncio.sleep(0.05)


class Sender:
    def __init__(self, worker: Worker, user_id: int, receiver_id: int) -> None:
        self.worker = worker
        self.user_id = user_id
        self.receiver_id = receiver_id
        self.conn: RawConnection | None = None

    def send(self, phase: Phase, i: int) -> asyncio.Future[None]:
        """Send message i of the phase; the future completes with its answer."""
        assert self.conn is not None
        answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        body = pb.MsgSendReq(
            receiver_id=self.receiver_id, type=pb.TEXT, content=f"{phase.prefix}{i}"
        ).SerializeToString()

        def on_answer(cmd: int, _body: bytes) -> None:
            now = time.monotonic()
            if cmd == Cmd.CMD_MSG_SEND_RESP:
                phase.acked_at[i] = now
                phase.stats.acked += 1
            else:
                phase.failed[i] = True
                phase.stats.failed += 1
                self.worker.count_error(f"send answered 0x{cmd:04X}")
            if not answered.done():
                answered.set_result(None)
            self.worker.check_done()

        self.conn.send(Cmd.CMD_MSG_SEND_REQ, body, on_answer)
        return answered


class Worker:
    def __init__(self, pairs: list[PairSpec]) -> None:
        self.specs = pairs
        self.senders = [Sender(self, p.sender_id, p.receiver_id) for p in pairs]
        self.receivers = [Receiver(self, p.receiver_id) for p in pairs]
        self.phase: Phase | None = None
        self.phases = 0
        self.sending = False

    def count_error(self, what: str) -> None:
        if self.phase is not None:
            self.phase.stats.errors[what] = self.phase.stats.errors.get(what, 0) + 1

    def check_done(self) -> None:
        phase = self.phase
        if phase is not None and not self.sending and phase.finished():
            phase.done.set()

    async def connect(self) -> None:
        gate = asyncio.Semaphore(50)

        async def pair(spec: PairSpec, sender: Sender, receiver: Receiver) -> None:
            async with gate:
                sender.conn = await RawConnection.connect(spec.sender_url)
                receiver.conn = await RawConnection.connect(spec.receiver_url, receiver.on_push)
                # 1:1 chat needs friends (already friends: the apply answers with an error, fine)
                await sender.conn.call(
                    Cmd.CMD_FRIEND_APPLY_REQ,
                    pb.FriendApplyReq(target_user_id=spec.receiver_id, reason="bench").SerializeToString(),
                )
                await receiver.conn.call(
                    Cmd.CMD_FRIEND_HANDLE_REQ,
                    pb.FriendHandleReq(request_user_id=spec.sender_id, agree=True).SerializeToString(),
                )

        await asyncio.gather(*(pair(*t) for t in zip(self.specs, self.senders, self.receivers, strict=True)))
        await asyncio.sleep(0.5)
        await synced(self.receivers)

    async def close(self) -> None:
        for c in [s.conn for s in self.senders] + [r.conn for r in self.receivers]:
            if c is not None:
                with contextlib.suppress(Exception):
                    await c.close()

    async def run_phase(self, spec: PhaseSpec) -> PhaseStats:
        self.phases += 1
        phase = self.phase = Phase(self.phases)
        cpu0 = await begin_phase(phase, spec.start_at)
        self.sending = True
        if spec.mode == "closed":
            await self._closed(phase, spec.per_pair)
        elif spec.mode == "open":
            await self._open(phase, spec)
        else:
            raise ValueError(f"unknown mode {spec.mode!r}")
        self.sending = False
        self.check_done()
        await end_phase(phase, spec.drain_seconds, cpu0)
        return self._summarise(phase)

    async def _closed(self, phase: Phase, per_pair: int) -> None:
        async def one(sender: Sender) -> None:
            for _ in range(per_pair):
                i = phase.new_message(time.monotonic())
                try:
                    await asyncio.wait_for(sender.send(phase, i), ANSWER_TIMEOUT)
                except TimeoutError:  # a lost connection or a stuck server: this pair stops here
                    self.count_error("no answer to a send")
                    phase.stats.sent -= 1
                    return

        await asyncio.gather(*(one(s) for s in self.senders))

    async def _open(self, phase: Phase, spec: PhaseSpec) -> None:
        start, interval = spec.start_at, 1.0 / spec.rate
        count = int(spec.duration * spec.rate)
        pairs = len(self.senders)
        for n in range(count):
            due = start + n * interval
            now = time.monotonic()
            if due > now + 0.0005:
                await asyncio.sleep(due - now)
                now = time.monotonic()
            elif n % 16 == 0:  # behind schedule: still let the answers in
                await asyncio.sleep(0)
            phase.stats.send_lateness.append(max(0.0, now - due))
            i = phase.new_message(due)
            self.senders[n % pairs].send(phase, i)

    @staticmethod
    def _summarise(phase: Phase) -> PhaseStats:
        s = phase.stats
        for i, t0 in enumerate(phase.scheduled):
            if phase.acked_at[i]:
                s.ack.append(phase.acked_at[i] - t0)
            if phase.delivered_at[i]:
                s.delivered_latency.append(phase.delivered_at[i] - t0)
                s.notify.append(phase.notified_at[i] - t0)
        return s


class PhaseRunner(Protocol):
    """A worker process's body: connect once, then run the phases the parent sends, then close."""

    async def connect(self) -> None: ...

    async def run_phase(self, spec: Any) -> Any: ...

    async def close(self) -> None: ...


WorkerMain = Callable[[multiprocessing.connection.Connection, list[Any]], None]


def _worker_main(pipe: multiprocessing.connection.Connection, pairs: list[PairSpec]) -> None:
    serve(pipe, Worker(pairs))


def serve(pipe: multiprocessing.connection.Connection, worker: PhaseRunner) -> None:
    """Run `worker` in this (spawned) process, on uvloop when installed, until the parent says stop."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_serve(pipe, worker))


async def _serve(pipe: multiprocessing.connection.Connection, worker: PhaseRunner) -> None:
    try:
        await worker.connect()
        pipe.send(("ready", None))
        while True:
            command, arg = await asyncio.to_thread(pipe.recv)
            if command == "stop":
                break
            pipe.send(("result", await worker.run_phase(arg)))
    except Exception as exc:  # the parent reports it; a worker never hangs the run
        pipe.send(("error", repr(exc)))
    finally:
        await worker.close()


class LoadGenerator:
    """The parent side: `with LoadGenerator(pairs, workers) as gen: gen.run(…)`; `main`: what each worker
    process runs on its share of `pairs` (G1's pairs by default; G2 passes its group members)."""

    def __init__(self, pairs: Sequence[Any], workers: int, main: WorkerMain = _worker_main) -> None:
        workers = max(1, min(workers, len(pairs)))
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[multiprocessing.connection.Connection] = []
        self.procs: list[Any] = []
        for w in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=main, args=(child, list(pairs[w::workers])), daemon=True)
            self.pipes.append(parent)
            self.procs.append(proc)

    def __enter__(self) -> LoadGenerator:
        for p in self.procs:
            p.start()
        for pipe in self.pipes:
            self._expect(pipe, "ready", 300)
        return self

    def __exit__(self, *_exc: object) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop", None))
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()

    @property
    def pids(self) -> list[int]:
        return [int(p.pid) for p in self.procs]

    def run(self, make: Any, lead: float = 0.3) -> list[PhaseStats]:
        """Start a phase on every worker at one shared time; `make(start_at, workers)` builds its spec."""
        start_at = time.monotonic() + lead
        for pipe in self.pipes:
            pipe.send(("phase", make(start_at, len(self.pipes))))
        return [self._expect(pipe, "result", 3600) for pipe in self.pipes]

    @staticmethod
    def _expect(pipe: multiprocessing.connection.Connection, what: str, timeout: float) -> Any:
        if not pipe.poll(timeout):
            raise TimeoutError(f"a load-generator worker did not answer {what!r} in {timeout}s")
        kind, value = pipe.recv()
        if kind != what:
            raise RuntimeError(f"load-generator worker: {kind} {value}")
        return value
