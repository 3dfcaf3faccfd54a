"""Where dispatch sends a client: a chat gateway's WebSocket address, a file gateway's addresses."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from tinyim.infra.registry import Node


@dataclass(frozen=True, slots=True)
class GatewayAddress:
    host: str
    port: int
    url: str = ""  # the gateway's announced public URL, handed out as is (wss://, a path behind a proxy)

    @property
    def ws_url(self) -> str:
        return self.url or f"ws://{self.host}:{self.port}/ws"

    @classmethod
    def of(cls, node: Node) -> GatewayAddress:
        """Where clients reach a gateway: its public WebSocket URL if it announced one, else host:port."""
        if node.ws_url:
            parsed = urlparse(node.ws_url)
            default_port = 443 if parsed.scheme == "wss" else 80
            return cls(parsed.hostname or node.host, parsed.port or default_port, node.ws_url)
        return cls(node.host, node.http_port)

    def as_json(self) -> dict[str, object]:
        return {"host": self.host, "port": self.port, "ws_url": self.ws_url}


@dataclass(frozen=True, slots=True)
class FileGatewayAddress:
    host: str
    port: int
    http_url: str = ""  # the same gateway over HTTP (browser uploads and downloads)

    def as_json(self) -> dict[str, object]:
        return {"host": self.host, "port": self.port, "http_url": self.http_url}
