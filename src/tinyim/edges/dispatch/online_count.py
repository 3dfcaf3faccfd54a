"""The admin API's online count in a multi-process deployment."""

from __future__ import annotations

from .ports import LiveNodes


class RegistryOnlineCount:
    """admin API: open connections over every live gateway, as each last reported (every few seconds)."""

    def __init__(self, registry: LiveNodes) -> None:
        self._registry = registry

    async def connections(self) -> int:
        return sum(n.load for n in await self._registry.nodes("gateway"))
