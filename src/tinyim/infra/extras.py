"""Optional drivers (pyproject extras) and the error that names the extra a setting needs.

One process (`IM_ROLES=all`, SQLite, no Redis, no registry) needs none of them, so nothing imports them
until a setting asks for them; then a missing package is a clear message, not a traceback from deep inside
SQLAlchemy or the container.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tinyim.settings import Settings


@dataclass(frozen=True, slots=True)
class Extra:
    module: str  # what is imported
    package: str  # what pip installs
    extra: str  # tinyim[extra]


ASYNCMY = Extra("asyncmy", "asyncmy", "mysql")
REDIS = Extra("redis", "redis", "redis")
AETCD = Extra("aetcd", "aetcd", "etcd")
GRPC_HEALTH = Extra("grpc_health", "grpcio-health-checking", "cluster")


class MissingExtra(RuntimeError):
    """A setting needs a package that is not installed."""


def message(extra: Extra, needed_for: str) -> str:
    also = "" if extra.extra == "cluster" else " (or 'tinyim[cluster]' for every server driver)"
    return (
        f"{needed_for} needs the Python package '{extra.package}', which is not installed: "
        f"pip install 'tinyim[{extra.extra}]'{also}"
    )


def require(extra: Extra, needed_for: str) -> ModuleType:
    """Import an optional driver, or raise MissingExtra naming the extra that provides it."""
    try:
        return importlib.import_module(extra.module)
    except ImportError as exc:
        raise MissingExtra(message(extra, needed_for)) from exc


def needed(settings: Settings) -> list[tuple[Extra, str]]:
    """The optional drivers these settings use, each with the setting that asks for it."""
    wanted: list[tuple[Extra, str]] = []
    urls = [settings.effective_database_url, *settings.database_replica_urls.split(",")]
    if any(u.strip().startswith("mysql+asyncmy") for u in urls):
        wanted.append((ASYNCMY, "IM_DATABASE_URL=mysql+asyncmy://…"))
    if settings.redis_url:
        wanted.append((REDIS, "IM_REDIS_URL"))
    if settings.etcd_endpoints:
        wanted.append((AETCD, "IM_ETCD_ENDPOINTS"))
    if settings.registry_kind != "none":  # with a registry this node serves gRPC (health service included)
        wanted.append((GRPC_HEALTH, "a node with a registry (IM_REDIS_URL or IM_ETCD_ENDPOINTS)"))
    return wanted


def check(settings: Settings) -> None:
    """Raise MissingExtra for the first driver these settings need that is not installed."""
    for extra, needed_for in needed(settings):
        require(extra, needed_for)


def lazy(path: str) -> Callable[..., Any]:
    """The class at 'module:Name', imported when a provider first builds one. The Redis adapters import
    the redis package (the [redis] extra), which one process without IM_REDIS_URL never needs."""
    module, _, name = path.partition(":")

    def build(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    build.__qualname__ = build.__name__ = name
    return build
