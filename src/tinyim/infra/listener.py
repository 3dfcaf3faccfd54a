"""uvicorn protocol classes with the limits a client-facing listener needs.

- WebSocket: the app can abort the TCP connection (`scope["extensions"]["tinyim.transport"]["abort"]`),
  so a client that stopped reading is dropped at once instead of waiting for its socket to drain.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class AbortableWebSocketProtocol(WebSocketsSansIOProtocol):
    async def run_asgi(self) -> None:
        self.scope["extensions"]["tinyim.transport"] = {"abort": self.transport.abort}  # type: ignore[index]
        await super().run_asgi()
