"""Role entry of the timeline module: `msg` (TimelineService and notice writing over gRPC; while it runs,
the messaging rules' caches listen to relation changes and the push routes' cache to session changes made
in other processes)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from tinyim.infra.roles import Registration, RoleEntry, resolved
from tinyim.infra.rpc import Registrar
from tinyim.modules.timeline.adapters.rpc import msg_registrar


async def _registrar(timeline: Any) -> Registrar:
    return msg_registrar(await resolved(timeline.service), await resolved(timeline.writer))


@contextlib.asynccontextmanager
async def _background(timeline: Any) -> AsyncIterator[None]:
    async with await resolved(timeline.rules_feed), await resolved(timeline.routes_feed):
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
