"""The role table: every role a process can run, the module that serves it and the container its hooks
take. Adding a role is one row here (plus its name in IM_ROLES' contract, `settings.ALL_ROLES`, which this
table must match exactly: checked on import)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tinyim.edges.dispatch.role import ROLES as DISPATCH_ROLES
from tinyim.edges.gateway.role import ROLES as GATEWAY_ROLES
from tinyim.infra.roles import RoleEntry
from tinyim.modules.auth.role import ROLES as AUTH_ROLES
from tinyim.modules.files.role import ROLES as FILE_ROLES
from tinyim.modules.relation.role import ROLES as RELATION_ROLES
from tinyim.modules.timeline.role import ROLES as TIMELINE_ROLES
from tinyim.settings import ALL_ROLES, Settings


@dataclass(frozen=True, slots=True)
class Role:
    entry: RoleEntry
    container: Callable[[Any], Any]  # the root container -> the module container the hooks take

    @property
    def name(self) -> str:
        return self.entry.name


def _rows(entries: tuple[RoleEntry, ...], container: Callable[[Any], Any]) -> tuple[Role, ...]:
    return tuple(Role(entry, container) for entry in entries)


# Order is route order: dispatch's routes, then the file gateway's; fallback routes (the Web app) come last.
ROLE_TABLE: tuple[Role, ...] = (
    *_rows(DISPATCH_ROLES, lambda c: c.dispatch),
    *_rows(GATEWAY_ROLES, lambda c: c.gateway),
    *_rows(AUTH_ROLES, lambda c: c.auth),
    *_rows(RELATION_ROLES, lambda c: c.relation),
    *_rows(TIMELINE_ROLES, lambda c: c.timeline),
    *_rows(FILE_ROLES, lambda c: c.files),
)

if {r.name for r in ROLE_TABLE} != ALL_ROLES or len(ROLE_TABLE) != len(ALL_ROLES):
    raise RuntimeError(
        f"the role table {[r.name for r in ROLE_TABLE]} must list each of {sorted(ALL_ROLES)} once"
    )


def local_roles(settings: Settings) -> tuple[Role, ...]:
    """The rows this process runs (IM_ROLES), in table order."""
    return tuple(r for r in ROLE_TABLE if r.name in settings.role_set)


def needs_database(settings: Settings) -> bool:
    """Whether a local service of this process uses the database (dispatch and gateways reach it only
    through them)."""
    return any(r.entry.needs_database for r in local_roles(settings))
