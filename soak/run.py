"""Traffic, faults and the final check of the soak.

Topology: dispatch, 2 gateways, auth, user, 2 msg nodes (`tinyim.cluster`), on a private MariaDB
primary + GTID replica (reads go to the replica) and a private Redis. Six users, one SDK client each:
three friend pairs talk 1:1 and all six talk in a group, every send with a client_msg_id. Faults, one
every few seconds at random: kill -9 + restart of a gateway or a msg node, a Redis restart (its data
gone), the replica's SQL thread stopped for a while, a client's connection dropped.

The check compares, per user, the client's delivered messages with the database timeline:
- lost: an acked send missing from the sender's timeline, or a timeline entry the client never got;
- duplicated: one seq delivered twice, one message twice in a timeline, one client_msg_id stored twice;
- reordered: deliveries not in strictly increasing seq order;
- gaps: seqs in a timeline that are not exactly 1..max.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import signal
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.redis_server import RedisServer
from tests.support.replication import ReplicatedPair, replicated_mariadb, sql
from tests.support.server import free_port
from tinyim.client import Client, ClientOptions, Kicked, Message, ServerError, register
from tinyim.cluster import Cluster
from tinyim.wire import ErrorCode

PASSWORD = "soak-password-1"
USERS = 6
SEND_INTERVAL = 0.4  # per client, jittered


@dataclass
class View:
    """What one client saw and sent."""

    name: str
    user_id: int = 0
    delivered: list[tuple[int, int, str]] = field(default_factory=list)  # (seq, msg_id, cmid)
    acked: dict[str, int] = field(default_factory=dict)  # cmid -> msg_id
    unacked: set[str] = field(default_factory=set)
    sent: int = 0


class FaultLog:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.entries: list[str] = []
        self.counts: dict[str, int] = {}

    def add(self, kind: str, detail: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        line = f"{time.monotonic() - self.started:8.1f}s {kind}: {detail}"
        self.entries.append(line)
        print(line, flush=True)


def _free_block() -> int:
    from tests.e2e.conftest import free_port_block

    return free_port_block()


def soak(duration: float, seed: int | None, fault_every: float) -> dict[str, Any]:
    """Set up the servers (synchronously: the MariaDB helpers run their own event loops), then run."""
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="tinyim-soak-"))
    faults = FaultLog()
    redis = RedisServer(workdir / "redis", port=free_port())
    (workdir / "redis").mkdir()
    redis.start()
    try:
        with replicated_mariadb(workdir / "mariadb") as pair:
            db_url = pair.primary.url(pair.database)
            env = {
                "IM_DATABASE_URL": db_url,
                "IM_DATABASE_REPLICA_URLS": pair.replica.url(pair.database),
                "IM_REDIS_URL": redis.url,
                "IM_REDIS_PREFIX": f"soak-{uuid.uuid4().hex[:6]}:",
                "IM_HEARTBEAT_TIMEOUT_SECONDS": "20",
                "IM_LOG_LEVEL": "WARNING",
            }
            cluster = Cluster(workdir, env, _free_block(), die_with_parent=True)
            cluster.up()
            try:
                return asyncio.run(_run(cluster, pair, redis, db_url, duration, rng, faults, fault_every))
            finally:
                cluster.down()
    finally:
        redis.stop()


async def _run(
    cluster: Cluster,
    pair: ReplicatedPair,
    redis: RedisServer,
    db_url: str,
    duration: float,
    rng: random.Random,
    faults: FaultLog,
    fault_every: float,
) -> dict[str, Any]:
    base = cluster.dispatch_url
    views = [View(f"soak{i}_{uuid.uuid4().hex[:6]}") for i in range(USERS)]
    for v in views:
        v.user_id = await register(base, v.name, PASSWORD, v.name[:8])
    group_id = await _social_setup(base, views)
    clients = [_client(base, v) for v in views]
    for c in clients:
        await c.start()
    stop = asyncio.Event()
    senders = [
        asyncio.create_task(_send_loop(c, v, views, group_id, rng, stop))
        for c, v in zip(clients, views, strict=True)
    ]
    injector = asyncio.create_task(_inject(cluster, pair, redis, clients, rng, faults, fault_every, stop))
    started = time.monotonic()
    await asyncio.sleep(duration)
    stop.set()
    await injector
    await asyncio.gather(*senders)
    traffic_seconds = time.monotonic() - started
    # Quiesce: every process up, the replica caught up, every client synced to its database maximum.
    await asyncio.to_thread(pair.wait_replica_caught_up, 120)
    timelines = await _timelines(db_url, [v.user_id for v in views])
    for c, v in zip(clients, views, strict=True):
        target = timelines[v.user_id][-1][0] if timelines[v.user_id] else 0
        with contextlib.suppress(TimeoutError):
            await _final_sync(c)
            await c.wait_for_seq(target, timeout=60)
    for c in clients:
        await c.close()
    anomalies, figures = _check(views, timelines)
    return {
        "duration_seconds": round(traffic_seconds),
        "faults": {k: v for k, v in faults.counts.items() if k != "restart"},
        "faults_total": sum(v for k, v in faults.counts.items() if k != "restart"),
        "restarts": faults.counts.get("restart", 0),
        "messages_sent": sum(v.sent for v in views),
        "messages_acked": sum(len(v.acked) for v in views),
        "sends_never_acked": sum(len(v.unacked) for v in views),
        "timeline_rows_checked": figures["rows"],
        "reconnects": sum(c.connects - 1 for c in clients),
        "anomalies": anomalies,
        "fault_log": faults.entries,
    }


def _client(base: str, view: View) -> Client:
    def on_message(m: Message) -> None:
        view.delivered.append((m.seq_id, m.msg_id, m.client_msg_id))

    return Client(
        base,
        view.name,
        PASSWORD,
        "PC",
        on_message=on_message,
        options=ClientOptions(
            echo_own_sends=True, heartbeat_interval=5, backoff_initial=0.2, backoff_max=2.0
        ),
    )


async def _social_setup(base: str, views: list[View]) -> int:
    helpers = [Client(base, v.name, PASSWORD, "Pad") for v in views]
    for h in helpers:
        await h.start()
    try:
        owner = helpers[0]
        pairs = [(i, i + 1) for i in range(0, USERS, 2)] + [(0, j) for j in range(2, USERS)]
        for a, b in pairs:
            await helpers[a].apply_friend(views[b].user_id, "soak")
            await helpers[b].handle_friend(views[a].user_id, agree=True)
        return await owner.create_group("soak", [v.user_id for v in views[1:]])
    finally:
        for h in helpers:
            await h.close()


async def _send_loop(
    client: Client, me: View, views: list[View], group_id: int, rng: random.Random, stop: asyncio.Event
) -> None:
    index = views.index(me)
    peer = views[index ^ 1]
    n = 0
    while not stop.is_set():
        n += 1
        cmid = f"{me.name}-{n}"
        to_group = rng.random() < 0.3
        me.sent += 1
        me.unacked.add(cmid)
        for _attempt in range(3):  # the SDK retries for 30 s; a few more rounds with the same id
            try:
                if to_group:
                    sent = await client.send_group(group_id, f"{me.name} {n} group", client_msg_id=cmid)
                else:
                    sent = await client.send_text(peer.user_id, f"{me.name} {n}", client_msg_id=cmid)
                me.acked[cmid] = sent.msg_id
                me.unacked.discard(cmid)
                break
            except Kicked:
                return
            except Exception as exc:
                print(f"send {cmid} failed, retrying: {exc!r}", flush=True)
                await asyncio.sleep(1)
        await asyncio.sleep(SEND_INTERVAL * (0.5 + rng.random()))


async def _inject(
    cluster: Cluster,
    pair: ReplicatedPair,
    redis: RedisServer,
    clients: list[Client],
    rng: random.Random,
    faults: FaultLog,
    every: float,
    stop: asyncio.Event,
) -> None:
    kinds = ["kill_gateway", "kill_msg", "restart_redis", "replica_sql_thread", "drop_client"]
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every * (0.5 + rng.random()))
        if stop.is_set():
            return
        kind = rng.choice(kinds)
        if kind in ("kill_gateway", "kill_msg"):
            name = rng.choice(["gateway-1", "gateway-2"] if kind == "kill_gateway" else ["msg-1", "msg-2"])
            cluster.kill(name, signal.SIGKILL)
            faults.add(kind, f"kill -9 {name}")
            await asyncio.sleep(rng.uniform(0.5, 3))
            await asyncio.to_thread(cluster.start, name, 60)
            faults.add("restart", name)
        elif kind == "restart_redis":
            redis.stop()
            faults.add(kind, "redis-server killed (its data is gone)")
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            await asyncio.to_thread(redis.start)
        elif kind == "replica_sql_thread":
            await asyncio.to_thread(sql, pair.replica.url(), "STOP SLAVE SQL_THREAD")
            faults.add(kind, "replica SQL thread stopped")
            await asyncio.sleep(rng.uniform(1, 5))
            await asyncio.to_thread(sql, pair.replica.url(), "START SLAVE SQL_THREAD")
        else:
            c = rng.choice(clients)
            await c.drop_connection()
            faults.add(kind, f"{c.username}'s connection dropped")


async def _final_sync(client: Client, seconds: float = 60.0) -> None:
    """Sync once more before the check. Right after the last fault (a Redis restart, say) a role may be
    briefly unlisted: UNAVAILABLE ("try again shortly") is retried, as a client would."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            await client.sync()
            return
        except ServerError as exc:
            if exc.code != ErrorCode.ERR_UNAVAILABLE or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _timelines(db_url: str, user_ids: list[int]) -> dict[int, list[tuple[int, int, str]]]:
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            out = {}
            for uid in user_ids:
                rows = await conn.execute(
                    text(
                        "SELECT i.seq_id, i.msg_id, COALESCE(b.client_msg_id, '') AS cmid "
                        "FROM im_message_index i JOIN im_message_body b ON b.msg_id = i.msg_id "
                        "WHERE i.owner_id = :u ORDER BY i.seq_id"
                    ),
                    {"u": uid},
                )
                out[uid] = [(r.seq_id, r.msg_id, r.cmid) for r in rows]
            return out
    finally:
        await engine.dispose()


def _check(
    views: list[View], timelines: dict[int, list[tuple[int, int, str]]]
) -> tuple[dict[str, int], dict[str, int]]:
    lost = duplicated = reordered = gaps = rows = 0
    for v in views:
        db = timelines[v.user_id]
        rows += len(db)
        seqs = [s for s, _, _ in db]
        gaps += (max(seqs) - len(set(seqs))) if seqs else 0
        duplicated += len(seqs) - len(set(seqs))
        msg_ids = [m for _, m, _ in db]
        duplicated += len(msg_ids) - len(set(msg_ids))
        own_cmids = [c for _, _, c in db if c.startswith(v.name + "-")]
        duplicated += len(own_cmids) - len(set(own_cmids))
        stored = set(msg_ids)
        lost += sum(1 for msg_id in v.acked.values() if msg_id not in stored)
        seen = [s for s, _, _ in v.delivered]
        duplicated += len(seen) - len(set(seen))
        reordered += sum(1 for a, b in itertools.pairwise(seen) if b <= a)
        lost += len(set(seqs) - set(seen))
    return (
        {"lost": lost, "duplicated": duplicated, "reordered": reordered, "gaps": gaps},
        {"rows": rows},
    )
