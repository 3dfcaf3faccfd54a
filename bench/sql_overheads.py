"""What the SQL data path costs, measured two ways (`python -m bench --only sql`):

1. A statement log of a few 1:1 messages: the one-process server talks to MariaDB through a small proxy
   that reads the MySQL client protocol and records every command the server sends (COM_QUERY text,
   COM_PING, …) — the real round trips per message, pings and pool rollbacks included, which the server's
   own statement counter does not see. Nothing in the server or in MariaDB's settings changes.
   → bench/results/sql-statement-log.json
2. A micro-benchmark, in this process, of the client-side CPU per operation: a cached single-row SELECT
   through SQLAlchemy's async Core (the server's engine settings) against the same query through asyncmy
   directly, and a pool checkout + return (pre-ping, reset-on-return rollback) against asyncmy's pool.
   → bench/results/sql-overheads.json
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.engine import make_url

from bench.common import write_result
from bench.g1_one_to_one import METRICS_TOKEN, load_env, pair_specs
from bench.loadgen import LoadGenerator
from bench.measure import Target, closed, measured_phase, pids_named
from bench.seed import seed_accounts
from tests.support.server import ServerProcess, free_port
from tests.support.services import MARIADB_HOST, MARIADB_PORT, throwaway_mariadb
from tinyim.infra.db import Database
from tinyim.modules.auth.adapters.sql import im_user

# MySQL client commands (the first payload byte of a packet with sequence id 0)
COMMANDS = {
    0x01: "QUIT",
    0x02: "INIT_DB",
    0x03: "QUERY",
    0x0E: "PING",
    0x11: "CHANGE_USER",
    0x16: "STMT_PREPARE",
    0x17: "STMT_EXECUTE",
    0x19: "STMT_CLOSE",
    0x1F: "RESET_CONNECTION",
}


@dataclass
class StatementLog:
    entries: list[tuple[float, int, str, str]] = field(default_factory=list)  # (t, conn, kind, sql)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, conn: int, payload: bytes) -> None:
        kind = COMMANDS.get(payload[0], f"0x{payload[0]:02X}") if payload else "EMPTY"
        sql = payload[1:].decode(errors="replace") if kind == "QUERY" else ""
        with self.lock:
            self.entries.append((time.monotonic(), conn, kind, sql))

    def since(self, index: int) -> list[tuple[float, int, str, str]]:
        with self.lock:
            return self.entries[index:]


class MySqlProxy:
    """A TCP proxy in its own thread that records the commands clients send (the server's answers pass
    through untouched)."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self.log = StatementLog()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._connections = 0

    def __enter__(self) -> MySqlProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        conn_id = self._connections
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)

        async def upstream_to_client() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        pump = asyncio.create_task(upstream_to_client())
        try:
            while True:
                header = await reader.readexactly(4)
                length = int.from_bytes(header[:3], "little")
                payload = await reader.readexactly(length)
                if header[3] == 0:  # a new command (the login handshake answer has sequence id 1)
                    self.log.add(conn_id, payload)
                up_writer.write(header + payload)
                await up_writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            up_writer.close()
            pump.cancel()


def classify(kind: str, sql: str) -> str:
    """QUERY → its verb and first table (SELECT im_relation, INSERT im_message_index, COMMIT …)."""
    if kind != "QUERY":
        return kind
    words = sql.split()
    verb = words[0].upper() if words else "?"
    table = re.search(r"\b(?:FROM|INTO|UPDATE)\s+`?(\w+)", sql, re.IGNORECASE)
    return f"{verb} {table.group(1)}" if table and verb != "COMMIT" else verb


def normalise(sql: str) -> str:
    sql = re.sub(r"'[^']*'", "?", sql)
    sql = re.sub(r"\b\d+\b", "?", sql)
    sql = re.sub(r"\(\?(?:, \?)*\)", "(…)", sql)
    return " ".join(sql.split())[:300]


def statement_log(messages: int = 5) -> dict[str, Any]:
    """Every command the server sends MariaDB for `messages` 1:1 messages, receiver online and syncing."""
    workdir = Path(tempfile.mkdtemp(prefix="tinyim-bench-sqllog-"))
    secret = secrets.token_urlsafe(32)
    try:
        with throwaway_mariadb() as url, MySqlProxy(MARIADB_HOST, MARIADB_PORT) as proxy:
            proxied = (
                make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
            )
            accounts = asyncio.run(seed_accounts(url, secret, 2))
            server = ServerProcess(workdir, env={"IM_DATABASE_URL": proxied} | load_env(secret)).start()
            try:
                assert server.proc is not None
                target = Target([server.proc.pid], [server.base_url], METRICS_TOKEN)
                with LoadGenerator(pair_specs(accounts, [server.base_url]), 1) as gen:
                    measured_phase(target, gen, closed(5))  # warm: pool filled, caches primed
                    time.sleep(0.5)
                    mark = len(proxy.log.entries)
                    figures = measured_phase(target, gen, closed(messages))
                    time.sleep(0.5)  # the last sync's rollback
                    entries = proxy.log.since(mark)
            finally:
                server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    kinds = Counter(classify(kind, sql) for _, _, kind, sql in entries)
    statements = Counter(normalise(sql) if kind == "QUERY" else kind for _, _, kind, sql in entries)
    return {
        "messages": messages,
        "round_trips_per_msg": round(len(entries) / messages, 2),
        "by_kind_per_msg": {k: round(v / messages, 2) for k, v in kinds.most_common()},
        "statements_per_msg": {k: round(v / messages, 2) for k, v in statements.most_common()},
        "server_counter_statements_per_msg": figures["sql_statements_per_msg"],
        "server_counter_commits_per_msg": figures["sql_commits_per_msg"],
        "log_of_one_message": [
            f"conn {c}: {classify(k, s)}: {normalise(s)}" if k == "QUERY" else f"conn {c}: {k}"
            for _, c, k, s in entries[: max(1, len(entries) // messages)]
        ],
    }


async def _per_op(n: int, op: Callable[[], Awaitable[object]]) -> dict[str, float]:
    """Client CPU (this process) and wall time per operation, one at a time; MariaDB's CPU alongside."""
    for _ in range(min(100, n)):  # warm: compiled caches, pool, connections
        await op()
    db_pids = pids_named("mariadbd", "mysqld")
    from bench.common import process_cpu_seconds

    db0 = sum(process_cpu_seconds(p) for p in db_pids)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        await op()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    db = sum(process_cpu_seconds(p) for p in db_pids) - db0
    return {
        "client_cpu_us": round(cpu * 1e6 / n, 1),
        "wall_us": round(wall * 1e6 / n, 1),
        "mariadb_cpu_us_shared_box": round(db * 1e6 / n, 1),
    }


async def overheads(url: str, n: int) -> dict[str, Any]:
    import asyncmy

    db = Database(url)  # the server's engine: pool_pre_ping, reset-on-return rollback
    u = make_url(url)
    host, port, user, password = u.host or "127.0.0.1", u.port or 3306, u.username or "", u.password or ""
    pool = await asyncmy.create_pool(
        host=host,
        port=port,
        user=user,
        password=password,
        db=u.database,
        minsize=1,
        maxsize=2,
        autocommit=False,
    )
    bare = await asyncmy.connect(
        host=host, port=port, user=user, password=password, db=u.database, autocommit=False
    )
    try:
        async with db.write() as conn:
            await conn.execute(
                im_user.insert(), {"user_id": 1, "username": "o", "password": "x", "nickname": "n"}
            )
        query = select(im_user.c.nickname).where(im_user.c.user_id == bindparam("uid"))
        raw_sql = "SELECT im_user.nickname FROM im_user WHERE im_user.user_id = %s"
        out: dict[str, Any] = {}

        async with db.writer.connect() as held:

            async def sa_select() -> None:
                (await held.execute(query, {"uid": 1})).scalar_one()

            out["sqlalchemy_select_one_row"] = await _per_op(n, sa_select)
            await held.rollback()

        async def raw_select() -> None:
            async with bare.cursor() as cur:
                await cur.execute(raw_sql, (1,))
                await cur.fetchone()

        out["asyncmy_select_one_row"] = await _per_op(n, raw_select)
        await bare.rollback()

        async def sa_checkout() -> None:
            async with db.writer.connect():
                pass

        out["sqlalchemy_pool_checkout_return"] = await _per_op(n, sa_checkout)

        async def sa_txn() -> None:  # what Database.write() costs around one SELECT
            async with db.write() as conn:
                (await conn.execute(query, {"uid": 1})).scalar_one()

        out["sqlalchemy_write_txn_one_select"] = await _per_op(n, sa_txn)

        async def raw_checkout() -> None:
            async with pool.acquire():
                pass

        out["asyncmy_pool_acquire_release"] = await _per_op(n, raw_checkout)

        async def raw_ping() -> None:
            await bare.ping(reconnect=False)

        out["asyncmy_ping"] = await _per_op(n, raw_ping)

        async def raw_rollback() -> None:
            await bare.rollback()

        out["asyncmy_rollback"] = await _per_op(n, raw_rollback)

        async def raw_txn() -> None:
            async with bare.cursor() as cur:
                await cur.execute(raw_sql, (1,))
                await cur.fetchone()
            await bare.commit()

        out["asyncmy_txn_one_select_commit"] = await _per_op(n, raw_txn)
    finally:
        bare.close()
        pool.close()
        await pool.wait_closed()
        await db.dispose()
    sa, raw = out["sqlalchemy_select_one_row"], out["asyncmy_select_one_row"]
    out["select_ratio_sqlalchemy_to_asyncmy"] = round(sa["client_cpu_us"] / max(0.1, raw["client_cpu_us"]), 2)
    return out


def run_sql_overheads(n: int = 2000, messages: int = 5) -> None:
    log = statement_log(messages)
    write_result(
        "sql-statement-log",
        {"scenario": "every MySQL command the one-process server sends per 1:1 message (proxy)", **log},
    )
    with throwaway_mariadb() as url:
        figures = asyncio.run(overheads(url, n))
    write_result(
        "sql-overheads",
        {
            "scenario": "client CPU per operation, one at a time, this process: SQLAlchemy async Core "
            "(the server's engine settings) vs asyncmy directly",
            "operations": n,
            "unit": "µs per operation",
            **figures,
            "statement_log": {k: log[k] for k in ("round_trips_per_msg", "by_kind_per_msg")},
        },
    )
