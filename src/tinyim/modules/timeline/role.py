"""Role entry of the timeline module: `msg` (TimelineService and notice writing over gRPC; the messaging
rules' caches listen to relation changes made in other processes while it runs)."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator
from typing import Any

from tinyim.infra.roles import Registration, RoleEntry
from tinyim.infra.rpc import Registrar
from tinyim.modules.timeline.adapters.rpc import msg_registrar


async def _get(provider: Any) -> Any:
    value = provider()
    return await value if inspect.isawaitable(value) else value


async def _registrar(timeline: Any) -> Registrar:
    return msg_registrar(await _get(timeline.service), await _get(timeline.writer))


@contextlib.asynccontextmanager
async def _background(timeline: Any) -> AsyncIterator[None]:
    async with await _get(timeline.rules_feed):
        yield


ROLES = (
    RoleEntry(
        "msg",
        needs_database=True,
        registration=Registration(worker_id=True),  # two live msg nodes must not share a worker id
        registrar=_registrar,
        background=_background,
    ),
)
