"""A role entry: what a module contributes to a process that runs its role (the bootstrap loops over them).

Routes (HTTP), a gRPC registrar, whether it needs the database, what it announces in the registry (its
load), and background work (listeners, sweepers) that runs while the process serves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute

from tinyim.infra.rpc import Registrar


@dataclass(frozen=True, slots=True)
class RoleEntry:
    name: str
    needs_database: bool
    routes: Callable[[Any], Awaitable[list[BaseRoute]]] | None = None
    registrar: Callable[[Any], Awaitable[Registrar]] | None = None
    # registry announcement: the load this node reports (a callable read at every renewal)
    load: Callable[[Any], Awaitable[Callable[[], int]]] | None = None
    background: Callable[[Any], AbstractAsyncContextManager[None]] | None = None
