"""Role entry of the relation module: `user` (RelationService over gRPC, and the relay of its outbox)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from tinyim.infra.roles import RoleEntry, resolved, running
from tinyim.infra.rpc import Registrar
from tinyim.modules.relation.adapters.rpc import user_registrar
from tinyim.modules.relation.service import RelationService


async def _registrar(relation: Any) -> Registrar:
    return user_registrar(await resolved(relation.service))


@contextlib.asynccontextmanager
async def _background(relation: Any) -> AsyncIterator[None]:
    # The outbox relay: delivers the notices of social changes that a crash (or a timeline out of reach)
    # kept from being delivered right after their commit.
    service: RelationService = await resolved(relation.service)
    async with running(service.relay_outbox()):
        yield


ROLES = (RoleEntry("user", needs_database=True, registrar=_registrar, background=_background),)
