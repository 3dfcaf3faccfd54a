"""uvicorn protocol classes with the limits a client-facing listener needs.

- Header timeout: a request line and headers must arrive within `header_timeout` of the connection
  opening (or of the previous response, on keep-alive), or the connection is dropped: slow-header
  clients cannot hold sockets. Idle keep-alive connections close after uvicorn's `timeout_keep_alive`.
- Connections per client address (HTTP and WebSocket together) are capped; one over the cap is dropped
  at once.
- WebSocket: the app can abort the TCP connection (`scope["extensions"]["tinyim.transport"]["abort"]`),
  so a client that stopped reading is dropped at once instead of waiting for its socket to drain.
- Zero-copy responses: HTTP requests are offered the ASGI "http.response.zerocopysend" extension
  (`zerocopy.py`), so file downloads go by `os.sendfile`.
- Lean WebSockets: a path mounted with `mount_websocket` (the chat gateway's `/ws`) is not served
  through ASGI: its upgrade request and the socket are handed to the mounted function, which puts its
  own asyncio protocol on the transport (same port, same limits: the header timeout covers the
  request, the connection keeps counting for its address until it calls `release`).

`configure_limits` sets the limits once per process, before uvicorn starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from . import zerocopy


@dataclass
class ListenerLimits:
    header_timeout: float = 10.0
    max_per_address: int = 0  # 0 = no cap


_limits = ListenerLimits()
# transport -> client address, for every open connection (one entry across the HTTP -> WS upgrade).
_open: dict[asyncio.BaseTransport, str] = {}
_per_address: dict[str, int] = {}
# path -> what takes over an upgrade of that path: (transport, the request head, uvicorn's set of open
# connections, which it shuts down on exit). It calls transport.set_protocol itself.
WebSocketUpgrade = Callable[[asyncio.Transport, bytes, set[Any]], None]
_websockets: dict[bytes, WebSocketUpgrade] = {}


def configure_limits(header_timeout: float, max_per_address: int) -> None:
    _limits.header_timeout = header_timeout
    _limits.max_per_address = max_per_address


def mount_websocket(path: str, upgrade: WebSocketUpgrade) -> None:
    _websockets[path.encode()] = upgrade


def unmount_websocket(path: str) -> None:
    _websockets.pop(path.encode(), None)


def release(transport: asyncio.BaseTransport) -> None:
    """A connection handed over by `mount_websocket` is gone: it no longer counts for its address."""
    _untrack(transport)


def connections_from(address: str) -> int:
    return _per_address.get(address, 0)


def _track(transport: asyncio.BaseTransport) -> bool:
    """Count a new connection; False when its address is over the cap (the caller drops it)."""
    if transport in _open:
        return True
    peer = transport.get_extra_info("peername")
    address = str(peer[0]) if peer else ""
    if _limits.max_per_address and _per_address.get(address, 0) >= _limits.max_per_address:
        return False
    _open[transport] = address
    _per_address[address] = _per_address.get(address, 0) + 1
    return True


def _untrack(transport: asyncio.BaseTransport) -> None:
    address = _open.pop(transport, None)
    if address is not None:
        left = _per_address[address] - 1
        if left:
            _per_address[address] = left
        else:
            del _per_address[address]


class GuardedHttpProtocol(HttpToolsProtocol):
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if not _track(transport):
            transport.abort()
            return
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        if self.transport is not None and self.transport in _open:
            _untrack(self.transport)
        if getattr(self, "transport", None) is not None:
            super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # a new request (not an upgrade)
            zerocopy.offer(cycle, self.transport)

    def handle_websocket_upgrade(self) -> None:
        self._disarm_header_timer()
        upgrade = _websockets.get(self.url.split(b"?", 1)[0])
        if upgrade is None:
            super().handle_websocket_upgrade()
            return
        self.connections.discard(self)
        head = [self.scope["method"].encode(), b" ", self.url, b" HTTP/1.1\r\n"]
        for name, value in self.scope["headers"]:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        upgrade(self.transport, b"".join(head), self.connections)
        self.parser = None  # type: ignore[assignment]  # it points back at this protocol: let both go now

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(_limits.header_timeout, self._header_timeout)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.abort()


class AbortableWebSocketProtocol(WebSocketsSansIOProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _track(transport)  # already counted when it came through the HTTP protocol
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        _untrack(self.transport)
        super().connection_lost(exc)

    async def run_asgi(self) -> None:
        self.scope["extensions"]["tinyim.transport"] = {"abort": self.transport.abort}
        await super().run_asgi()
