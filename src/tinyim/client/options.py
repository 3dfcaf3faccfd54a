"""The SDK's tuning: how a client keeps its connection and pulls its timeline."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ClientOptions:
    reconnect: bool = True  # after a drop, re-dispatch, reconnect and resync by itself
    heartbeat_interval: float = 20.0  # seconds between heartbeats (the server drops a silent connection)
    request_timeout: float = 10.0  # seconds a request waits for its answer
    backoff_initial: float = 0.1  # first reconnect / retry delay (seconds, jittered, doubled up to max)
    backoff_max: float = 5.0
    sync_limit: int = 100  # messages per sync page
    # Messages this very client sent come back through sync (they are in the user's timeline); the sender
    # already holds their ack, so by default they only advance local_max_seq.
    echo_own_sends: bool = False
    # Messages that arrived without a sync but after a gap (seq 7 in a push while seq 6 is missing) wait
    # this long for the missing ones to come by push before a sync fetches them: a busy group's pushes are
    # paced (up to 0.25 s) and another conversation's push or this device's own ack may overtake one.
    # A push that was really lost then costs this much delay; 0 syncs at once.
    gap_wait: float = 0.5

    def __post_init__(self) -> None:
        for name in ("heartbeat_interval", "request_timeout", "backoff_initial", "backoff_max"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ClientOptions.{name} must be a positive number of seconds")
        if self.backoff_initial > self.backoff_max:
            raise ValueError("ClientOptions.backoff_initial must not exceed backoff_max")
        if not self.gap_wait >= 0:
            raise ValueError("ClientOptions.gap_wait must be zero or a positive number of seconds")
        if self.sync_limit < 1:
            raise ValueError("ClientOptions.sync_limit must be at least 1")
