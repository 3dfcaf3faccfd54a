"""Prometheus metrics shared by the edges (exposed on GET /metrics of every HTTP process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WS_CONNECTIONS = Gauge("tinyim_ws_connections", "Open authenticated WebSocket connections")
WS_FRAMES = Counter("tinyim_ws_frames_total", "Frames received, by command", ["cmd"])
WS_BAD_FRAMES = Counter("tinyim_ws_bad_frames_total", "Frames refused, by error code", ["code"])
WS_KICKS = Counter("tinyim_ws_kicks_total", "Connections closed because the same device logged in again")
MESSAGES_SENT = Counter("tinyim_messages_sent_total", "Messages committed (retries not counted)")
PUSHES = Counter("tinyim_push_notifies_total", "MsgPushNotify frames queued to connections")
DB_STATEMENTS = Counter("tinyim_db_statements_total", "SQL statements sent (an executemany counts once)")
DB_COMMITS = Counter("tinyim_db_commits_total", "Transactions committed")
REQUEST_SECONDS = Histogram(
    "tinyim_request_seconds",
    "Time to answer a WebSocket request",
    ["cmd"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)
# file transfer
FILE_BYTES = Counter("tinyim_file_bytes_total", "File bytes moved by the file gateway", ["direction"])
