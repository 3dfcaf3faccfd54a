"""Role entry of the relation module: `user` (RelationService over gRPC)."""

from __future__ import annotations

from typing import Any

from tinyim.infra.roles import RoleEntry, resolved
from tinyim.infra.rpc import Registrar
from tinyim.modules.relation.adapters.grpc_server import user_registrar


async def _registrar(relation: Any) -> Registrar:
    return user_registrar(await resolved(relation.service))


ROLES = (RoleEntry("user", needs_database=True, registrar=_registrar),)
