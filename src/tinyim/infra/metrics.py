"""Prometheus metrics shared by the edges (exposed on GET /metrics of every HTTP process)."""

from __future__ import annotations

import functools
from typing import TypeVar

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)


@functools.cache
def labelled(metric: M, *values: str) -> M:
    """`metric.labels(*values)`, looked up once per label set: labels() validates and takes a lock on
    every call (~4 µs; on the hot path that is every frame and every batch). For bounded label sets only
    (command names, status codes, methods): each set is kept for the life of the process."""
    return metric.labels(*values)


WS_CONNECTIONS = Gauge("tinyim_ws_connections", "Open authenticated WebSocket connections")
WS_FRAMES = Counter("tinyim_ws_frames_total", "Frames received, by command", ["cmd"])
WS_BAD_FRAMES = Counter("tinyim_ws_bad_frames_total", "Frames refused, by error code", ["code"])
WS_KICKS = Counter("tinyim_ws_kicks_total", "Connections closed because the same device logged in again")
MESSAGES_SENT = Counter("tinyim_messages_sent_total", "Messages committed (retries not counted)")
PUSHES_DROPPED = Counter(
    "tinyim_push_targets_dropped_total", "Push targets dropped because the after-commit queue was full"
)
AFTER_COMMIT_DROPPED = Counter(
    "tinyim_after_commit_dropped_total",
    "Read notices, receipts and kicks dropped because the after-commit queue was full",
    ["what"],
)
AFTER_COMMIT_FAILED = Counter(
    "tinyim_after_commit_failed_total",
    "Pushes, read notices, receipts and kicks whose gateway call failed",
    ["what"],
)
PUSHES = Counter("tinyim_push_notifies_total", "MsgPushNotify frames queued to connections")
DB_STATEMENTS = Counter("tinyim_db_statements_total", "SQL statements sent (an executemany counts once)")
DB_COMMITS = Counter("tinyim_db_commits_total", "Transactions committed")
REDIS_ROUND_TRIPS = Counter(
    "tinyim_redis_round_trips_total", "Requests sent to Redis (a pipeline or a script call counts once)"
)
TIMELINE_BATCH_MESSAGES = Histogram(
    "tinyim_timeline_batch_messages",
    "Messages written per group-commit transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
TIMELINE_BATCH_SECONDS = Histogram(
    "tinyim_timeline_batch_seconds",
    "Time to write one group-commit transaction (connection, statements, commit)",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
MSG_SEND_BATCH = Histogram(
    "tinyim_msg_send_batch_items",
    "Sends per SendMsgBatch call a gateway makes to a msg node",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
REQUEST_SECONDS = Histogram(
    "tinyim_request_seconds",
    "Time to answer a WebSocket request",
    ["cmd"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)
# file transfer
FILE_BYTES = Counter("tinyim_file_bytes_total", "File bytes moved by the file gateway", ["direction"])

# Internal calls (gRPC interceptors): by full method name and status code.
GRPC_CLIENT_SECONDS = Histogram(
    "tinyim_grpc_client_seconds",
    "Internal calls made, by method and status",
    ["method", "code"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
GRPC_SERVER_SECONDS = Histogram(
    "tinyim_grpc_server_seconds",
    "Internal calls served, by method and status",
    ["method", "code"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
# HTTP API: by route template (never the raw path, whose ids would explode the label set) and status.
HTTP_REQUESTS = Counter("tinyim_http_requests_total", "HTTP requests answered", ["route", "status"])
HTTP_SECONDS = Histogram(
    "tinyim_http_request_seconds",
    "Time to answer an HTTP request",
    ["route"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
REGISTRY_NODES = Gauge("tinyim_registry_nodes", "Live nodes this process sees in the registry", ["role"])
REPLICA_HEALTHY = Gauge("tinyim_db_replica_healthy", "1 while a read replica is used", ["replica"])
REPLICA_LAG = Gauge("tinyim_db_replica_lag_seconds", "Replication lag last measured", ["replica"])
DB_POOL_CHECKED_OUT = Gauge("tinyim_db_pool_checked_out", "Database connections in use", ["engine"])
# ok, bad_credentials (wrong password and unknown user alike: they must look the same), throttled,
# disabled, invalid (malformed request), error (auth unreachable)
LOGINS = Counter("tinyim_logins_total", "Password logins answered, by outcome", ["outcome"])
# ok, taken, invalid, closed, invite (refused for want of a valid invite code), error
REGISTRATIONS = Counter("tinyim_registrations_total", "Registrations answered, by outcome", ["outcome"])
# The gateway's fire-and-forget frames (read notices, status, typing, events) not yet written out, and
# frames given up on: a client whose queue is full or whose send timed out is dropped with them.
PUSH_QUEUED = Gauge("tinyim_push_queued_frames", "Frames queued to connections, not yet sent")
PUSH_DROPS = Counter(
    "tinyim_push_dropped_total", "Connections dropped with frames undelivered, by reason", ["reason"]
)
ADMIN_ACTIONS = Counter("tinyim_admin_actions_total", "Admin API requests served, by action", ["action"])
