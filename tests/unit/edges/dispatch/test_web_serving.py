"""Dispatch's side of the Web client: the static app at /, /api/client_config, CORS on /api/* only."""

from __future__ import annotations

from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tinyim.edges.dispatch.web import DEFAULT_WEB_DIR, ApiCors, web_dir, web_routes


async def _login(_request: object) -> JSONResponse:
    return JSONResponse({"ok": True})


def _app(tmp: Path | None, cors: str = "") -> httpx.AsyncClient:
    routes = [Route("/api/login", _login, methods=["POST"]), Route("/healthz", _login)]
    app = Starlette(routes=[*routes, *web_routes(str(tmp) if tmp else "/nonexistent", 30.0)])
    if cors:
        app.add_middleware(ApiCors, origins=cors)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def _built(tmp: Path) -> Path:
    (tmp / "assets").mkdir()
    (tmp / "index.html").write_text('<div id="app"></div><script src="/assets/index-abc.js"></script>')
    (tmp / "assets" / "index-abc.js").write_text("console.log(1)")
    return tmp


async def test_the_built_app_is_served_at_the_root_and_the_api_still_answers(tmp_path: Path) -> None:
    client = _app(_built(tmp_path))
    index = await client.get("/")
    assert index.status_code == 200 and 'id="app"' in index.text
    assert index.headers["cache-control"] == "no-cache"  # names the current build's hashed assets
    asset = await client.get("/assets/index-abc.js")
    assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]
    assert (await client.post("/api/login")).json() == {"ok": True}
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/api/client_config")).json() == {"heartbeat_interval_seconds": 10.0}
    assert (await client.get("/no/such/file")).status_code == 404


async def test_without_a_build_the_root_says_how_to_make_one() -> None:
    client = _app(None)
    answer = await client.get("/")
    assert answer.status_code == 503 and "make web" in answer.text
    assert (await client.post("/api/login")).status_code == 200


def test_the_default_directory_is_web_dist_of_the_checkout(tmp_path: Path) -> None:
    assert Path(__file__).resolve().parents[4] / "web" / "dist" == DEFAULT_WEB_DIR
    assert web_dir(str(tmp_path)) is None  # no index.html there
    assert web_dir(str(_built(tmp_path))) == tmp_path


async def test_cors_answers_listed_origins_on_the_api_only(tmp_path: Path) -> None:
    client = _app(_built(tmp_path), cors="https://chat.example.com, https://other.example")
    preflight = await client.options(
        "/api/login",
        headers={
            "origin": "https://chat.example.com",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://chat.example.com"
    simple = await client.post("/api/login", headers={"origin": "https://other.example"})
    assert simple.headers["access-control-allow-origin"] == "https://other.example"
    stranger = await client.post("/api/login", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in stranger.headers
    page = await client.get("/", headers={"origin": "https://chat.example.com"})
    assert "access-control-allow-origin" not in page.headers  # only /api/* is shared


async def test_no_cors_headers_without_the_setting(tmp_path: Path) -> None:
    client = _app(_built(tmp_path))
    answer = await client.post("/api/login", headers={"origin": "https://chat.example.com"})
    assert "access-control-allow-origin" not in answer.headers
