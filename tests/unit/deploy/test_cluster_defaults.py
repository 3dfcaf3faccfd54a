"""`make cluster` keeps to its own database and Redis key prefix unless told otherwise."""

from __future__ import annotations

import pytest

from tinyim.bootstrap.roles import ROLE_TABLE
from tinyim.cluster import TOPOLOGY, cluster_env


def test_defaults_never_share_the_one_process_database_or_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IM_DATABASE_URL", "IM_REDIS_URL", "IM_REDIS_PREFIX", "IM_ROLES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IM_ROLES", "all")  # per-process settings never leak into the shared env
    env = cluster_env()
    assert env["IM_DATABASE_URL"].endswith("/tinyim_cluster")
    assert env["IM_REDIS_PREFIX"] == "tinyim-cluster:" and "IM_ROLES" not in env


def test_explicit_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IM_DATABASE_URL", "mysql+asyncmy://u@db:3306/mine")
    monkeypatch.setenv("IM_REDIS_PREFIX", "mine:")
    env = cluster_env()
    assert env["IM_DATABASE_URL"].endswith("/mine") and env["IM_REDIS_PREFIX"] == "mine:"


def test_the_cluster_runs_every_role_of_the_role_table() -> None:
    assert {roles for _name, roles, _offset, _worker in TOPOLOGY} == {r.name for r in ROLE_TABLE}
