"""`tinyim cluster up|down`: the multi-process topology as local processes on loopback (no Docker).

dispatch on IM_HTTP_PORT (default 8080), then two gateways, auth, user, two msg nodes, two file gateways
and file meta on the next ports, each with its gRPC port at HTTP + 1000 (file gateways' TCP listeners
on base + 10 and + 11). Every process is `tinyim run` with its own IM_ROLES, the same database and
Redis (default: the local MariaDB's `tinyim_cluster` database and Redis db 0 under the key prefix
`tinyim-cluster:`, so it never mixes with another instance on the host). The schema is
migrated once before the roles start. `up` returns once every /healthz answers and writes
`{IM_DATA_DIR}/cluster/cluster.json` (each process: name, roles, pid, ports, log); `down` stops them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from tinyim.infra import children

# Its own database and Redis key prefix by default, so a cluster never mixes with another TinyIM on the host.
DEFAULT_DATABASE_URL = "mysql+asyncmy://root@127.0.0.1:3306/tinyim_cluster"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_REDIS_PREFIX = "tinyim-cluster:"

# (name, IM_ROLES, offset from the base HTTP port, Snowflake worker id)
TOPOLOGY = [
    ("dispatch", "dispatch", 0, 0),
    ("gateway-1", "gateway", 1, 0),
    ("gateway-2", "gateway", 2, 0),
    ("auth", "auth", 3, 0),
    ("user", "user", 4, 0),
    ("msg-1", "msg", 5, 1),  # every msg node needs its own worker id: message ids stay unique
    ("msg-2", "msg", 6, 2),
    # file transfer: two file gateways (TCP on base + 10, + 11: 8090 and 8091 by default) and file meta
    ("filegw-1", "filegw", 7, 0),
    ("filegw-2", "filegw", 8, 0),
    ("filemeta", "filemeta", 9, 0),
]
FILE_PORT_OFFSETS = {"filegw-1": 10, "filegw-2": 11}
HEALTHY_WITHIN = 30.0  # seconds a process may take to answer /healthz after it starts
STARTUP_WAVES = [
    ("auth", "user", "filemeta", "msg-1", "msg-2", "filegw-1", "filegw-2"),
    ("gateway-1", "gateway-2"),
    ("dispatch",),
]


@dataclass
class Member:
    name: str
    roles: str
    http_port: int
    grpc_port: int
    worker_id: int
    pid: int = 0
    log: str = ""
    file_port: int = 0  # a file gateway's TCP listener (IM_FILE_PORT)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


class Cluster:
    def __init__(
        self, data_dir: Path, env: dict[str, str], base_port: int, *, die_with_parent: bool = False
    ) -> None:
        """die_with_parent: the processes are killed when this process dies (tests); `tinyim cluster up`
        leaves them running on purpose."""
        self.die_with_parent = die_with_parent
        self.data_dir = data_dir
        self.dir = data_dir / "cluster"
        self.env = env
        self.members = {
            name: Member(name, roles, base_port + offset, base_port + offset + 1000, worker)
            for name, roles, offset, worker in TOPOLOGY
        }
        for name, offset in FILE_PORT_OFFSETS.items():
            self.members[name].file_port = base_port + offset
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def dispatch_url(self) -> str:
        return self.members["dispatch"].base_url

    def migrate(self) -> None:
        _ensure_mysql_database(self.env["IM_DATABASE_URL"])
        subprocess.run([_tinyim(), "migrate"], env={**os.environ, **self.env}, check=True)
        # one JWT secret file for every process (only auth uses it; created before anyone races for it)
        from tinyim.bootstrap.resources import jwt_secret
        from tinyim.settings import Settings

        jwt_secret(Settings(data_dir=self.data_dir, jwt_secret=self.env.get("IM_JWT_SECRET", "")))

    def start(self, name: str, timeout: float = HEALTHY_WITHIN) -> Member:
        """Start one process and wait until it answers /healthz."""
        m = self.spawn(name)
        _wait_healthy(m, self.procs[name], timeout)
        return m

    def spawn(self, name: str) -> Member:
        """Start one process without waiting for it."""
        m = self.members[name]
        self.dir.mkdir(parents=True, exist_ok=True)
        m.log = str(self.dir / f"{name}.log")
        env = {
            **os.environ,
            **self.env,
            "IM_ROLES": m.roles,
            "IM_HTTP_PORT": str(m.http_port),
            "IM_GRPC_PORT": str(m.grpc_port),
            "IM_WORKER_ID": str(m.worker_id),
            **({"IM_FILE_PORT": str(m.file_port)} if m.file_port else {}),
            "IM_DATA_DIR": str(self.data_dir),
            "IM_AUTO_MIGRATE": "false",
        }
        # Web client: the app comes from dispatch's origin, file uploads go to the file gateways' own ports.
        port = self.members["dispatch"].http_port
        env.setdefault("IM_CORS_ORIGINS", f"http://127.0.0.1:{port},http://localhost:{port}")
        with open(m.log, "ab") as log:
            proc = subprocess.Popen(
                [_tinyim(), "run"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # tests: the processes die with the test run, however it ends
                preexec_fn=children.die_with_parent if self.die_with_parent else None,
            )
        self.procs[name] = proc
        m.pid = proc.pid
        return m

    def up(self) -> Cluster:
        self.migrate()
        try:
            # serving roles first, so that gateways find them in the registry, and dispatch the gateways;
            # the processes of one wave start side by side (each spends a second or so importing)
            for wave in STARTUP_WAVES:
                for name in wave:
                    self.spawn(name)
                for name in wave:
                    _wait_healthy(self.members[name], self.procs[name], HEALTHY_WITHIN)
        except Exception:
            self.down()
            raise
        self.write()
        return self

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig`; a process still running 15 s later is killed with its process group."""
        proc = self.procs.get(name)
        if proc is not None:
            children.stop(proc, grace=15, sig=sig)

    def down(self) -> None:
        for name in reversed(list(self.procs)):
            self.kill(name, signal.SIGTERM)  # never raises: every process is reached
        (self.dir / "cluster.json").unlink(missing_ok=True)

    def write(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        state = {"dispatch": self.dispatch_url, "processes": [asdict(m) for m in self.members.values()]}
        (self.dir / "cluster.json").write_text(json.dumps(state, indent=2))


def _tinyim() -> str:
    return str(Path(sys.executable).with_name("tinyim"))


def _wait_healthy(m: Member, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{m.name} exited with {proc.returncode}; see {m.log}")
        try:
            if httpx.get(f"{m.base_url}/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{m.name} did not answer /healthz in {timeout:.0f}s; see {m.log}")


def _ensure_mysql_database(url: str) -> None:
    """Create the database named in a MySQL/MariaDB URL if it does not exist yet."""
    if not url.startswith("mysql"):
        return
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    parsed = make_url(url)

    async def create() -> None:
        engine = create_async_engine(parsed.set(database=""), isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(
                    text(f"CREATE DATABASE IF NOT EXISTS `{parsed.database}` CHARACTER SET utf8mb4")
                )
        finally:
            await engine.dispose()

    asyncio.run(create())


def cluster_env() -> dict[str, str]:
    """The IM_ settings every process shares, with local MariaDB and Redis as defaults."""
    env = {k: v for k, v in os.environ.items() if k.startswith("IM_")}
    env.setdefault("IM_DATABASE_URL", DEFAULT_DATABASE_URL)
    env.setdefault("IM_REDIS_URL", DEFAULT_REDIS_URL)
    env.setdefault("IM_REDIS_PREFIX", DEFAULT_REDIS_PREFIX)
    for per_process in ("IM_ROLES", "IM_HTTP_PORT", "IM_GRPC_PORT", "IM_WORKER_ID", "IM_FILE_PORT"):
        env.pop(per_process, None)
    return env


def main(command: str) -> int:
    data_dir = Path(os.environ.get("IM_DATA_DIR", "var"))
    base_port = int(os.environ.get("IM_HTTP_PORT", "8080"))
    state_file = data_dir / "cluster" / "cluster.json"
    if command == "up":
        if state_file.exists() and any(
            _alive(p["pid"]) for p in json.loads(state_file.read_text())["processes"]
        ):
            print(f"a cluster is running already ({state_file}); stop it with `make cluster-down`")
            return 1
        cluster = Cluster(data_dir, cluster_env(), base_port).up()
        for m in cluster.members.values():
            print(f"{m.name:10} pid {m.pid:<7} http :{m.http_port}  grpc :{m.grpc_port}  log {m.log}")
        print(f"dispatch: {cluster.dispatch_url}  (state in {cluster.dir / 'cluster.json'})")
        return 0
    if not state_file.exists():
        print("no cluster is running (no cluster.json)")
        return 0
    for proc in json.loads(state_file.read_text())["processes"]:
        try:
            os.kill(proc["pid"], signal.SIGTERM)
        except ProcessLookupError:
            continue
    for proc in json.loads(state_file.read_text())["processes"]:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(proc["pid"]):
            time.sleep(0.1)
        if _alive(proc["pid"]):
            os.kill(proc["pid"], signal.SIGKILL)
    state_file.unlink()
    print("cluster stopped")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
