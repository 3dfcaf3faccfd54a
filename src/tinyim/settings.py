"""Process configuration from `IM_*` environment variables (DESIGN.md §4), with embedded defaults.

With nothing set, one process runs every role on SQLite under ./var and in-memory presence.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The values IM_ROLES accepts (DESIGN.md's contract). What each role runs is its row of the role table
# (bootstrap/roles.py), which must list exactly these: checked when the table is imported.
ALL_ROLES = frozenset({"dispatch", "gateway", "filegw", "auth", "user", "msg", "filemeta"})
ADMIN_TOKEN_MIN = 16


def env_file() -> str | None:
    """The env file settings are read from: IM_ENV_FILE, else ./.env when it exists (the environment
    itself always wins over the file)."""
    named = os.environ.get("IM_ENV_FILE")
    if named:
        if not Path(named).is_file():
            raise ValueError(f"IM_ENV_FILE={named} is not a readable file")
        return named
    return ".env" if Path(".env").is_file() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IM_", extra="ignore")

    roles: str = "all"
    host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    file_port: int = Field(default=8090, ge=1, le=65535)
    grpc_port: int = Field(default=0, ge=0, le=65535)  # 0 = http_port + 1000
    public_host: str = "127.0.0.1"  # how other processes (and, by default, clients) reach this one
    public_ws_url: str = ""  # a gateway's WebSocket URL for clients when it differs (NAT, published ports)
    data_dir: Path = Path("var")
    database_url: str = ""  # empty = SQLite file under data_dir
    database_replica_urls: str = ""
    redis_url: str = ""  # set: presence, profile cache (and optionally seqs) live in Redis
    redis_prefix: str = ""  # put every key under this prefix (several deployments on one Redis)
    seq_allocator: Literal["sql", "redis"] = "sql"  # redis: INCR im:seq:{uid}, needs IM_REDIS_URL
    # Timeline batches in the database at once (MariaDB/MySQL; SQLite writes one at a time). A batch of
    # many index rows (group messages) lets the next one start: seqs and commits stay in queue order.
    timeline_batch_writers: int = Field(default=2, ge=1, le=8)
    etcd_endpoints: str = ""  # set: the registry lives in etcd (leases) instead of Redis
    # Registry entries live this long unless renewed (a node that dies drops out after it), renewed this
    # often; tests shorten both so nothing waits real seconds for an expiry. etcd leases round to >= 1 s.
    registry_ttl_seconds: float = Field(default=5.0, gt=0)
    registry_renew_seconds: float = Field(default=1.5, gt=0)
    grpc_deadline_seconds: float = Field(default=5.0, gt=0)  # every internal call has a deadline
    # A gateway's sends to the msg role: at most this many batches in flight; sends arriving meanwhile
    # ride the next batch, at most msg_send_batch_max per batch (1 and 1: one batch per send). 1 measured
    # best on the cluster benchmark (2 msg nodes, streams): an internal message costs far more CPU than
    # an item in it, so fewer, bigger batches (5 sends on average there against 2 at 6 in flight) left
    # the 2-core box more CPU than the extra wait cost (ratio to one process 0.60-0.61 against 0.45-0.52).
    msg_send_calls_in_flight: int = Field(default=1, ge=1, le=64)
    msg_send_batch_max: int = Field(default=64, ge=1, le=1024)
    # Under load a batch that leaves right after the previous one (sends already waiting) first waits
    # this long for the senders just answered, so the two alternating halves ride one batch. 1 ms measured
    # best on the cluster benchmark (batches 5 -> 6.7 sends, 30 % less CPU per message, ~35 % more
    # messages/s; 0.5 and 1.5-2 ms gained less). Never applies to an idle gateway. 0: off.
    msg_send_linger_ms: float = Field(default=1.0, ge=0, le=50)
    # A message with push_fanout_min owners or more (a big group's) has its pushes paced: after a notify
    # call for N such owners the next waits N / push_fanout_owners_per_s seconds (at most 0.25) and
    # carries all that came meanwhile, so a busy group's members get one frame for several messages
    # instead of one each (a frame costs a socket write on both sides, a message in it far less). An
    # isolated message waits for nothing; 1:1 and small groups never do. 4,000: a 500-member group's
    # calls 125 ms apart at most (G2, everyone online: 0.46-0.68x the raw insert at 4,000, 7 runs of 8
    # over 0.5; 0.48-0.54x at 6,000; unpaced 0.32-0.34x; all notified p99 ~165, ~120 and ~65 ms). 0: off.
    push_fanout_min: int = Field(default=100, ge=0)
    push_fanout_owners_per_s: float = Field(default=4000.0, ge=0)
    # The hot internal paths on long-lived gRPC streams (no per-call set-up): a gateway's send batches
    # on one SendMsgStream per msg node, message signals on one PushStream per gateway. False: one
    # SendMsgBatch / PushNotify call each, as before.
    internal_streams: bool = True
    jwt_secret: str = ""  # empty = a random secret kept in data_dir
    token_ttl_seconds: int = Field(default=3600, ge=60)
    worker_id: int = Field(default=0, ge=0, le=1023)  # Snowflake worker id, unique per msg process
    auto_migrate: bool = True
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    # Debugging: > 0 starts the event-loop stall watchdog (infra/stall.py): turns of the loop longer than
    # this (ms) are sampled and summarised on shutdown in debug_stall_report (default: a JSON file
    # stall-report-<pid>.json in data_dir). Use 5 or more: the 1 ms tick itself jitters by up to ~2 ms.
    debug_stall_ms: float = Field(default=0.0, ge=0)
    debug_stall_report: str = ""
    # Origins (comma list, or *) whose browser pages may call the HTTP API and the file gateway.
    # Empty: same origin only (the Web app served by dispatch needs nothing here).
    cors_origins: str = ""
    # Behind a TLS proxy: the proxy's addresses (comma list of IPs/CIDRs, or *), whose X-Forwarded-For/
    # -Proto headers are trusted (client addresses in logs and limits, wss:// in URLs). Empty: trust none.
    forwarded_allow_ips: str = ""
    public_file_http_url: str = ""  # a file gateway's HTTP base URL for browsers when it differs
    audit_log: str = ""  # audit lines (JSON) appended to this file; empty = stderr
    # Web client: the built app dispatch serves at / (empty: web/dist of this checkout).
    web_dir: str = ""

    # Reliability and security limits (issue 15: hostile clients).
    http_max_body: int = Field(default=64 * 1024, ge=1024)  # every HTTP route except streamed uploads
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)  # request line + headers must arrive
    http_idle_timeout_seconds: float = Field(default=30.0, gt=0)  # a keep-alive connection with no request
    max_connections_per_address: int = Field(default=512, ge=0)  # HTTP + WebSocket per client IP; 0 = off
    ws_send_timeout_seconds: float = Field(default=10.0, gt=0)  # a send to a client that stopped reading
    ws_max_queued_sends: int = Field(default=64, ge=1)  # fire-and-forget frames waiting for one client
    login_free_failures: int = Field(default=5, ge=1)  # wrong passwords before the backoff starts
    login_backoff_max_seconds: float = Field(default=300.0, gt=0)
    login_forget_after_seconds: float = Field(default=3600.0, gt=0)  # a key's failures, after its last one
    login_max_concurrent_hashes: int = Field(default=2, ge=1)  # argon2 hashes at once; a burst queues
    # argon2id cost of new password hashes; 0 = the library's RFC 9106 low-memory profile (3 passes,
    # 64 MiB). Lower only for tests: a hash then costs ~1 ms instead of ~0.4 s of CPU (every stored hash
    # keeps its own cost until a login rehashes it with the one set).
    password_hash_time_cost: int = Field(default=0, ge=0)
    password_hash_memory_kib: int = Field(default=0, ge=0)
    metrics_token: str = ""  # /metrics needs "Authorization: Bearer <token>"; empty = kept in data_dir
    # Admin API (dispatch, /admin/...): off unless a token is given, inline or in a file (a mounted
    # secret); at least 16 characters.
    admin_token: str = ""
    admin_token_file: str = ""
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)

    # Gateway limits (DESIGN.md §9).
    heartbeat_timeout_seconds: float = Field(default=60.0, gt=0)
    login_timeout_seconds: float = Field(default=5.0, gt=0)
    max_frame_body: int = Field(default=64 * 1024, ge=1024)
    max_content_bytes: int = Field(default=16 * 1024, ge=16)
    rate_per_second: float = Field(default=50.0, gt=0)
    rate_burst: int = Field(default=200, ge=1)
    max_bad_frames: int = Field(default=20, ge=1)
    sync_page_max: int = Field(default=200, ge=1)
    sync_page_default: int = Field(default=100, ge=1)
    # Conversation list and recall.
    recall_window_seconds: float = Field(default=120.0, gt=0)  # a sender recalls within this
    # false: messages no longer maintain the conversation list (only to measure its cost: `make bench`)
    conversation_list: bool = True
    # the messaging rules (friendship, blocks, group members) a send checks, kept in the msg role's memory
    # and forgotten on every change (Redis pub/sub across processes); this long at most (0 = no cache)
    rules_cache_seconds: float = Field(default=60.0, ge=0)
    # with Redis: which gateways hold a user's devices, kept by the processes that push message signals
    # and forgotten on every bind/unbind (Redis pub/sub); this long at most (0 = ask Redis every time)
    route_cache_seconds: float = Field(default=2.0, ge=0)
    # user search: searches (pages) per user per minute
    search_per_minute: int = Field(default=30, ge=1)
    # online status: away after this long without a request on every device; a device of a gateway that
    # died counts until presence_ttl_seconds after its last heartbeat (0 = twice the heartbeat timeout)
    away_after_seconds: float = Field(default=300.0, gt=0)
    presence_ttl_seconds: float = Field(default=0.0, ge=0)
    # typing: notices per connection per second, and the burst allowed
    typing_per_second: float = Field(default=1.0, gt=0)
    typing_burst: int = Field(default=5, ge=1)

    # File transfer (files module, file gateway).
    file_rate_bytes_per_second: int = Field(default=0, ge=0)  # per connection; 0 = no limit
    file_max_bytes: int = Field(default=64 * 1024**3, ge=1)  # largest file accepted
    file_upload_ttl_seconds: float = Field(default=24 * 3600.0, gt=0)  # abandoned uploads expire
    file_max_transfers_per_user: int = Field(default=4, ge=1)  # per user; across gateways with Redis
    # largest data frame / PUT body; 4 MiB: a socket buffer of a quarter of it moves a GiB in fewer wake-ups
    # (G5), and a cut still resends at most about one chunk
    file_chunk_bytes: int = Field(default=4 * 1024 * 1024, ge=4096, le=64 * 1024 * 1024)

    @field_validator("admin_token")
    @classmethod
    def _check_admin_token(cls, value: str) -> str:
        if value and len(value.strip()) < ADMIN_TOKEN_MIN:
            raise ValueError(f"IM_ADMIN_TOKEN must be at least {ADMIN_TOKEN_MIN} characters")
        return value.strip()

    @property
    def effective_admin_token(self) -> str:
        """IM_ADMIN_TOKEN, else the content of IM_ADMIN_TOKEN_FILE, else "" (the admin API is off)."""
        if self.admin_token or not self.admin_token_file:
            return self.admin_token
        path = Path(self.admin_token_file)
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise ValueError(f"IM_ADMIN_TOKEN_FILE={path}: {exc.strerror or exc}") from None
        if len(token) < ADMIN_TOKEN_MIN:
            raise ValueError(f"IM_ADMIN_TOKEN_FILE={path} must hold at least {ADMIN_TOKEN_MIN} characters")
        return token

    @field_validator("roles")
    @classmethod
    def _check_roles(cls, value: str) -> str:
        roles = {r.strip() for r in value.split(",") if r.strip()}
        if not roles:
            raise ValueError("IM_ROLES is empty")
        if roles != {"all"} and not roles <= ALL_ROLES:
            raise ValueError(f"unknown role(s) {sorted(roles - ALL_ROLES)}; known: all, {sorted(ALL_ROLES)}")
        return ",".join(sorted(roles))

    @property
    def role_set(self) -> frozenset[str]:
        if self.roles == "all":
            return ALL_ROLES
        return frozenset(self.roles.split(","))

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tinyim.sqlite3').resolve()}"

    @property
    def gateway_id(self) -> str:
        """This process's gateway in the session table and the registry: unique per listening address."""
        return f"gw-{self.public_host}:{self.http_port}"

    @property
    def shared_state(self) -> str:
        """Where presence and caches live: 'redis' when IM_REDIS_URL is set, else 'memory'."""
        return "redis" if self.redis_url else "memory"

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.seq_allocator == "redis" and not self.redis_url:
            raise ValueError("IM_SEQ_ALLOCATOR=redis needs IM_REDIS_URL")
        if self.registry_renew_seconds * 2 > self.registry_ttl_seconds:
            # one late renewal must not let a live node's entry expire
            raise ValueError("IM_REGISTRY_RENEW_SECONDS must be at most half of IM_REGISTRY_TTL_SECONDS")
        if self.roles != "all" and not (self.redis_url and self.database_url):
            raise ValueError(
                "one role per process (IM_ROLES) needs a shared database and Redis: "
                "set IM_DATABASE_URL and IM_REDIS_URL"
            )
        return self

    def placement(self, role: str) -> Literal["local", "remote"]:
        """Whether this process serves `role` itself or calls it over gRPC (the composition root asks)."""
        return "local" if role in self.role_set else "remote"

    @property
    def registry_kind(self) -> Literal["none", "redis", "etcd"]:
        """Where processes find each other: etcd if configured, else Redis, else nowhere (one process)."""
        if self.etcd_endpoints:
            return "etcd"
        return "redis" if self.redis_url else "none"

    def node_id(self, role: str) -> str:
        """This process's id in the registry for `role` (a gateway's is also its id in the session table)."""
        if role == "gateway":
            return self.gateway_id
        if role == "filegw":  # file gateways: keyed by their file listener (the hash ring's nodes)
            return f"filegw-{self.public_host}:{self.file_port}"
        return f"{role}-{self.public_host}:{self.effective_grpc_port}"

    @property
    def effective_presence_ttl(self) -> float:
        """Online status: how long a device counts after its last heartbeat."""
        return self.presence_ttl_seconds or 2 * self.heartbeat_timeout_seconds

    @property
    def effective_grpc_port(self) -> int:
        return self.grpc_port or self.http_port + 1000
