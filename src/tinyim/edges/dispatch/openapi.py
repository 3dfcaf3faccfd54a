"""The OpenAPI 3.1 document of the dispatch HTTP API, served at GET /openapi.json.

Kept next to the routes it describes (http.py) and checked against the running server by schemathesis
in the tests: every documented status, body and header must be what the server does.
"""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}
_GATEWAY = {
    "type": "object",
    "required": ["host", "port", "ws_url"],
    "properties": {"host": {"type": "string"}, "port": {"type": "integer"}, "ws_url": {"type": "string"}},
}
_SESSION = {
    "type": "object",
    "required": ["user_id", "token", "expires_at", "refresh_token", "refresh_expires_at", "gateway"],
    "properties": {
        "user_id": {"type": "integer"},
        "token": {"type": "string", "description": "JWT for the WebSocket and Bearer calls"},
        "expires_at": {"type": "integer", "description": "Unix seconds"},
        "refresh_token": {"type": "string", "description": "one use: POST /api/refresh returns the next"},
        "refresh_expires_at": {"type": "integer"},
        "gateway": _GATEWAY,
        "limits": {
            "type": "object",
            "description": "the gateway's per-connection rate limit, for clients to pace themselves",
            "properties": {"rate_per_second": {"type": "number"}, "rate_burst": {"type": "number"}},
        },
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _err(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json(_ERROR)}


_BODY_ERRORS = {
    "400": _err("invalid input (not a JSON object, a missing or malformed field)"),
    "413": _err("the body passed the size limit"),
    "415": _err("the body is not application/json"),
}
_BEARER_ERRORS = {"401": _err("missing, invalid, expired or revoked token")}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"required": True, "content": _json(schema)}


def openapi_document() -> dict[str, Any]:
    string = {"type": "string"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "TinyIM dispatch API",
            "version": "1",
            "description": "Accounts, sessions and gateway allocation. Chat itself runs over the WebSocket "
            "the login answer names (binary frames, see protos/im_protocol.proto).",
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "metrics": {"type": "http", "scheme": "bearer", "description": "IM_METRICS_TOKEN"},
            }
        },
        "paths": {
            "/api/register": {
                "post": {
                    "summary": "Create an account",
                    "requestBody": _body(
                        {
                            "username": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{3,32}$"},
                            "password": {"type": "string", "minLength": 8, "maxLength": 128},
                            "nickname": {
                                "type": "string",
                                "maxLength": 64,
                                "pattern": "^[A-Za-z0-9 _.-]*[A-Za-z0-9_.-][A-Za-z0-9 _.-]*$",
                                "description": "1-64 characters once trimmed, no control characters "
                                "(any script; the pattern shows a safe subset)",
                            },
                        },
                        ["username", "password", "nickname"],
                    ),
                    "responses": {
                        "201": {
                            "description": "created",
                            "content": _json(
                                {
                                    "type": "object",
                                    "required": ["user_id"],
                                    "properties": {"user_id": {"type": "integer"}},
                                }
                            ),
                        },
                        "409": _err("username taken"),
                        **_BODY_ERRORS,
                    },
                }
            },
            "/api/login": {
                "post": {
                    "summary": "Log in with the password; one session per (user, device type)",
                    "requestBody": _body(
                        {
                            "username": string,
                            "password": string,
                            "device_id": {"type": "string", "enum": ["PC", "Web", "Mobile", "Pad"]},
                        },
                        ["username", "password", "device_id"],
                    ),
                    "responses": {
                        "200": {"description": "a session", "content": _json(_SESSION)},
                        "401": _err("wrong username or password (the same answer for both)"),
                        "429": {
                            "description": "too many failed logins for this account or address",
                            "headers": {"Retry-After": {"schema": {"type": "integer"}, "required": True}},
                            "content": _json(_ERROR),
                        },
                        **_BODY_ERRORS,
                    },
                }
            },
            "/api/refresh": {
                "post": {
                    "summary": "A new token and the next refresh token, without the password",
                    "requestBody": _body({"refresh_token": string}, ["refresh_token"]),
                    "responses": {
                        "200": {"description": "a session", "content": _json(_SESSION)},
                        "401": _err("refresh token unknown, expired, revoked or replayed"),
                        **_BODY_ERRORS,
                    },
                }
            },
            "/api/logout": {
                "post": {
                    "summary": "Revoke this session (its token and refresh tokens)",
                    "security": [{"bearer": []}],
                    "responses": {"204": {"description": "logged out"}, **_BEARER_ERRORS},
                }
            },
            "/api/allocate_gateway": {
                "get": {
                    "summary": "The least loaded live gateway",
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": {"description": "a gateway", "content": _json(_GATEWAY)},
                        "503": _err("no live gateway"),
                        **_BEARER_ERRORS,
                    },
                }
            },
            "/api/allocate_file_gateway": {
                "get": {
                    "summary": "The file gateway of an upload task (consistent hash of task_id)",
                    "security": [{"bearer": []}],
                    "parameters": [
                        {
                            "name": "task_id",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "pattern": "^[\\x20-\\x7e]{1,64}$"},
                        }
                    ],
                    "responses": {
                        "200": {"description": "a file gateway", "content": _json({"type": "object"})},
                        "400": _err("bad task_id"),
                        "503": _err("no file gateway"),
                        **_BEARER_ERRORS,
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness and the roles this process serves",
                    "responses": {"200": {"description": "ok", "content": _json({"type": "object"})}},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "security": [{"metrics": []}],
                    "responses": {
                        "200": {"description": "text exposition format", "content": {"text/plain": {}}},
                        "401": _err("missing or wrong metrics token"),
                    },
                }
            },
        },
    }
