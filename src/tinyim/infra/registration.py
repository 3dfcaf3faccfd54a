"""A process's own registration: announce its nodes before it reports itself up, renew them well inside
the TTL, withdraw them on stop; and the start-up check that msg nodes do not share a Snowflake worker id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence

from tinyim.infra.registry import RENEW_EVERY_SECONDS, Node, Registry

log = logging.getLogger(__name__)


class DuplicateWorkerId(RuntimeError):
    pass


async def check_worker_id(registry: Registry, me: Node) -> None:
    """Refuse to start a msg node whose Snowflake worker id a live one already uses (ids would collide)."""
    for other in await registry.nodes(me.role):
        if other.node_id != me.node_id and other.worker_id == me.worker_id:
            raise DuplicateWorkerId(
                f"msg node {other.node_id} already uses IM_WORKER_ID={me.worker_id}; "
                "give every msg process its own worker id (0-1023)"
            )


async def keep_registered(
    registry: Registry, describe: Callable[[], Sequence[Node]], renew_seconds: float = RENEW_EVERY_SECONDS
) -> AsyncIterator[asyncio.Task[None]]:
    """Announce this process's nodes before it reports itself up, renew them every `renew_seconds`
    (well inside the registry's TTL), withdraw them on stop."""

    async def announce() -> None:
        for node in describe():
            await registry.announce(node)

    async def renew() -> None:
        while True:
            await asyncio.sleep(renew_seconds)
            try:
                await announce()
            except Exception:
                log.warning("registry renewal failed; retrying", exc_info=True)

    await announce()
    task = asyncio.create_task(renew())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for node in describe():
            with contextlib.suppress(Exception):
                await registry.withdraw(node)  # a clean stop leaves at once, not after the TTL
