"""HTTP metrics by route template and status, and the request id in log lines, on the in-process app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from tinyim.bootstrap.app import build_app
from tinyim.cli import migrate
from tinyim.settings import Settings


def requests(route: str, status: str) -> float:
    return REGISTRY.get_sample_value("tinyim_http_requests_total", {"route": route, "status": status}) or 0.0


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, jwt_secret="s" * 32)
    migrate(settings)
    with TestClient(build_app(settings)) as client:
        yield client


def test_requests_are_counted_by_route_template_and_status(client: TestClient) -> None:
    before = {
        ("/api/register", "201"): requests("/api/register", "201"),
        ("/api/login", "401"): requests("/api/login", "401"),
        ("/api/login", "200"): requests("/api/login", "200"),
        ("unmatched", "404"): requests("unmatched", "404"),
    }
    assert (
        client.post(
            "/api/register", json={"username": "ann", "password": "pw-123456", "nickname": "Ann"}
        ).status_code
        == 201
    )
    assert (
        client.post(
            "/api/login", json={"username": "ann", "password": "wrong-pass", "device_id": "PC"}
        ).status_code
        == 401
    )
    assert (
        client.post(
            "/api/login", json={"username": "ann", "password": "pw-123456", "device_id": "PC"}
        ).status_code
        == 200
    )
    assert client.get("/no/such/path/12345").status_code == 404  # fmt: skip
    for (route, status), count in before.items():
        assert requests(route, status) == count + 1, (route, status)
    text = client.get("/metrics").text
    assert 'tinyim_http_requests_total{route="/api/login",status="401"}' in text
    assert "/no/such/path" not in text  # raw paths never become labels


def test_every_answer_names_its_own_request_id(client: TestClient) -> None:
    ids = [client.get("/healthz").headers["x-request-id"] for _ in range(3)]
    assert len(set(ids)) == 3 and all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
