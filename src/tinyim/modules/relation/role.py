"""Role entry of the relation module: `user` (RelationService over gRPC)."""

from __future__ import annotations

import inspect
from typing import Any

from tinyim.infra.roles import RoleEntry
from tinyim.infra.rpc import Registrar
from tinyim.modules.relation.adapters.grpc_server import user_registrar


async def _registrar(relation: Any) -> Registrar:
    service = relation.service()
    return user_registrar(await service if inspect.isawaitable(service) else service)


ROLES = (RoleEntry("user", needs_database=True, registrar=_registrar),)
