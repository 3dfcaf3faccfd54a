"""Role entry of the auth module: `auth` (AuthService over gRPC, the admin API's account calls too)."""

from __future__ import annotations

from typing import Any

from tinyim.infra.roles import RoleEntry, resolved
from tinyim.infra.rpc import Registrar
from tinyim.modules.auth.adapters.rpc import auth_registrar


async def _registrar(auth: Any) -> Registrar:
    service = await resolved(auth.service)
    return auth_registrar(service, service)  # the local service serves the admin API too


ROLES = (RoleEntry("auth", needs_database=True, registrar=_registrar),)
