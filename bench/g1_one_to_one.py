"""G1: 1:1 chat end to end (N pairs over real WebSockets against `tinyim run`) next to the raw baseline.

End to end: each pair's sender sends M messages one after another (waiting for each ack) while all pairs
run at once; the receiver is online and notified. Measured: msgs/s, send→ack and send→notify p50/p99.
Raw baseline, in the same run: the same rows (one body + two index rows per message, one durable
transaction each) inserted with the same driver and the same concurrency, no server in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import ms, percentile, write_result
from tests.support.server import ServerProcess
from tests.support.services import throwaway_mariadb
from tinyim.client import Client, register

PASSWORD = "benchmark-password"


@contextlib.contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield ""  # the server's embedded default under its data dir
    elif backend == "mariadb":
        with throwaway_mariadb() as url:
            yield url
    else:
        raise SystemExit(f"unknown backend {backend!r}")


async def end_to_end(base_url: str, pairs: int, messages: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    senders: list[Client] = []
    receivers: list[Client] = []
    notified: list[dict[int, float]] = []
    for i in range(pairs):
        s_name, r_name = f"s{i}_{tag}", f"r{i}_{tag}"
        await register(base_url, s_name, PASSWORD, "S")
        await register(base_url, r_name, PASSWORD, "R")
        first_push: dict[int, float] = {}

        def on_push(seq: int, first_push: dict[int, float] = first_push) -> None:
            first_push.setdefault(seq, time.perf_counter())

        senders.append(Client(base_url, s_name, PASSWORD, "PC"))
        receivers.append(Client(base_url, r_name, PASSWORD, "PC", on_push=on_push))
        notified.append(first_push)
    for c in senders + receivers:
        await c.start()

    acks: list[float] = []
    starts: list[list[float]] = [[] for _ in range(pairs)]

    async def pair(i: int) -> None:
        target = receivers[i].user_id
        for k in range(messages):
            t0 = time.perf_counter()
            starts[i].append(t0)
            await senders[i].send_text(target, f"message {k}")
            acks.append(time.perf_counter() - t0)

    began = time.perf_counter()
    await asyncio.gather(*(pair(i) for i in range(pairs)))
    elapsed = time.perf_counter() - began
    await asyncio.gather(*(r.wait_for_seq(messages, timeout=60) for r in receivers))

    notify: list[float] = []
    for i in range(pairs):
        pushes = sorted(notified[i].items())
        for k, t0 in enumerate(starts[i], start=1):  # receiver seq k <-> the pair's k-th message
            first = next((t for seq, t in pushes if seq >= k), None)
            if first is not None:
                notify.append(first - t0)
    for c in senders + receivers:
        await c.close()
    total = pairs * messages
    return {
        "messages": total,
        "msgs_per_s": round(total / elapsed, 1),
        "send_ack_p50_ms": ms(percentile(acks, 50)),
        "send_ack_p99_ms": ms(percentile(acks, 99)),
        "send_notify_p50_ms": ms(percentile(notify, 50)),
        "send_notify_p99_ms": ms(percentile(notify, 99)),
        "notified_fraction": round(len(notify) / total, 3),
    }


async def raw_sqlite(path: Path, concurrency: int, messages: int) -> float:
    import aiosqlite

    async with aiosqlite.connect(path) as conn:
        for pragma in ("journal_mode=WAL", "synchronous=FULL"):
            await conn.execute(f"PRAGMA {pragma}")
        lock = asyncio.Lock()  # one writer at a time, as the server's SQLite adapter does
        next_id = iter(range(10**15, 10**16))

        async def writer(w: int) -> None:
            for _ in range(messages):
                async with lock:
                    msg_id = next(next_id)
                    await conn.execute("BEGIN")
                    await conn.execute(
                        "INSERT INTO im_message_body (msg_id, sender_id, group_id, msg_type, msg_content) "
                        "VALUES (?, ?, 0, 0, ?)",
                        (msg_id, w, "message"),
                    )
                    await conn.executemany(
                        "INSERT INTO im_message_index (owner_id, other_id, msg_id, seq_id, is_sender) "
                        "VALUES (?, ?, ?, ?, ?)",
                        [(w, w + 1, msg_id, msg_id, 1), (w + 1, w, msg_id, msg_id, 0)],
                    )
                    await conn.commit()

        began = time.perf_counter()
        await asyncio.gather(*(writer(w * 2) for w in range(concurrency)))
        return concurrency * messages / (time.perf_counter() - began)


async def raw_mariadb(url: str, concurrency: int, messages: int) -> float:
    import asyncmy
    from sqlalchemy.engine import make_url

    u = make_url(url)
    pool = await asyncmy.create_pool(
        host=u.host,
        port=u.port or 3306,
        user=u.username,
        password=u.password or "",
        db=u.database,
        minsize=concurrency,
        maxsize=concurrency,
        autocommit=False,
    )
    next_id = iter(range(10**15, 10**16))

    async def writer(w: int) -> None:
        async with pool.acquire() as conn:
            for _ in range(messages):
                msg_id = next(next_id)
                async with conn.cursor() as cur:
                    await cur.execute(
                        "INSERT INTO im_message_body (msg_id, sender_id, group_id, msg_type, msg_content) "
                        "VALUES (%s, %s, 0, 0, %s)",
                        (msg_id, w, "message"),
                    )
                    await cur.executemany(
                        "INSERT INTO im_message_index (owner_id, other_id, msg_id, seq_id, is_sender) "
                        "VALUES (%s, %s, %s, %s, %s)",
                        [(w, w + 1, msg_id, msg_id, 1), (w + 1, w, msg_id, msg_id, 0)],
                    )
                await conn.commit()

    began = time.perf_counter()
    await asyncio.gather(*(writer(w * 2 + 10**9) for w in range(concurrency)))
    rate = concurrency * messages / (time.perf_counter() - began)
    pool.close()
    await pool.wait_closed()
    return rate


async def measure(
    backend: str, url: str, workdir: Path, pairs: int, messages: int
) -> tuple[dict[str, Any], float]:
    env = {"IM_DATABASE_URL": url} if url else {}
    server = ServerProcess(workdir / "server", env=env).start()
    try:
        e2e = await end_to_end(server.base_url, pairs, messages)
    finally:
        server.stop()
    if backend == "sqlite":
        return e2e, await raw_sqlite(workdir / "server" / "tinyim.sqlite3", pairs, messages)
    return e2e, await raw_mariadb(url, pairs, messages)


def run_g1(backend: str, pairs: int, messages: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="tinyim-bench-"))
    try:
        with database(backend, workdir) as url:  # created and migrated outside the event loop
            e2e, raw = asyncio.run(measure(backend, url, workdir, pairs, messages))
        write_result(
            f"g1-one-to-one-{backend}",
            {
                "scenario": "G1 1:1 end to end over WebSocket, one process (IM_ROLES=all)",
                "backend": backend,
                "pairs": pairs,
                "messages_per_pair": messages,
                **e2e,
                "raw_txn_per_s": round(raw, 1),
                "raw_rows_per_txn": 3,
                "ratio_to_raw": round(e2e["msgs_per_s"] / raw, 3),
                "target_ratio": 0.5,
            },
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
