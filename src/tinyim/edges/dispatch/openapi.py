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


def openapi_document(admin: bool = False) -> dict[str, Any]:
    """The document; with `admin`, the admin API's paths too (only when it is mounted)."""
    document = _document()
    if admin:
        document["components"]["securitySchemes"]["admin"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "IM_ADMIN_TOKEN (or the content of IM_ADMIN_TOKEN_FILE)",
        }
        document["paths"].update(_admin_paths())
    return document


def _document() -> dict[str, Any]:
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
                            "invite_code": {
                                "type": "string",
                                "description": "needed when registration is by invitation (admin API)",
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
                        "403": _err("registration is closed, or needs a valid unused invite code"),
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
                        "403": _err("the account is disabled by an administrator"),
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
                        "403": _err("the account is disabled by an administrator"),
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


_ADMIN_USER = {
    "type": "object",
    "required": ["user_id", "username", "nickname", "disabled"],
    "properties": {
        "user_id": {"type": "integer"},
        "username": {"type": "string"},
        "nickname": {"type": "string"},
        "disabled": {"type": "boolean"},
    },
}
_INVITE: dict[str, Any] = {
    "type": "object",
    "required": ["invite_id", "note", "created_at", "expires_at", "used_by", "revoked"],
    "properties": {
        "invite_id": {"type": "integer"},
        "note": {"type": "string"},
        "created_at": {"type": "integer", "description": "Unix seconds"},
        "expires_at": {"type": "integer", "description": "Unix seconds; 0 = never"},
        "used_by": {"type": "integer", "description": "who registered with it; 0 = unused"},
        "revoked": {"type": "boolean"},
    },
}
_MODE = {
    "type": "object",
    "required": ["mode"],
    "properties": {"mode": {"type": "string", "enum": ["open", "closed", "invite"]}},
}
_ADMIN_ERRORS = {
    "401": {
        "description": "missing or wrong admin token",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
        "content": _json(_ERROR),
    }
}
_ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}


def _id_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _ID_SCHEMA}


def _admin(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "security": [{"admin": []}],
        "responses": {**responses, **_ADMIN_ERRORS},
        **extra,
    }


def _admin_paths() -> dict[str, Any]:
    user = {"description": "the account", "content": _json(_ADMIN_USER)}
    no_user = _err("no such user")
    return {
        "/admin/users": {
            "get": _admin(
                "Accounts whose username or nickname starts with q (everyone without q), by user id",
                {
                    "200": {
                        "description": "a page; next_after is the cursor of the next page (null: last)",
                        "content": _json(
                            {
                                "type": "object",
                                "required": ["users", "next_after"],
                                "properties": {
                                    "users": {"type": "array", "items": _ADMIN_USER},
                                    "next_after": {"type": ["integer", "null"]},
                                },
                            }
                        ),
                    },
                    "400": _err("bad q, after or limit"),
                },
                parameters=[
                    {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 64}},
                    {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                    },
                ],
            )
        },
        "/admin/users/{user_id}/disable": {
            "post": _admin(
                "Disable an account: its sessions end (devices kicked), logins and refreshes are refused",
                {"200": user, "400": _err("bad user id"), "404": no_user},
                parameters=[_id_param("user_id")],
            )
        },
        "/admin/users/{user_id}/enable": {
            "post": _admin(
                "Enable an account again",
                {"200": user, "400": _err("bad user id"), "404": no_user},
                parameters=[_id_param("user_id")],
            )
        },
        "/admin/users/{user_id}/password": {
            "post": _admin(
                "Set a new password; every session and refresh token of the user is revoked",
                {"204": {"description": "done"}, "404": no_user, **_BODY_ERRORS},
                parameters=[_id_param("user_id")],
                requestBody=_body(
                    {"password": {"type": "string", "minLength": 8, "maxLength": 128}}, ["password"]
                ),
            )
        },
        "/admin/registration": {
            "get": _admin("Who may register", {"200": {"description": "the mode", "content": _json(_MODE)}}),
            "put": _admin(
                "Open or close registration, or require an invite code",
                {"200": {"description": "the mode now", "content": _json(_MODE)}, **_BODY_ERRORS},
                requestBody={"required": True, "content": _json(_MODE)},
            ),
        },
        "/admin/invites": {
            "post": _admin(
                "A new invite code (shown once: only its hash is kept)",
                {
                    "201": {
                        "description": "the invite and its code",
                        "content": _json(
                            {
                                **_INVITE,
                                "required": [*_INVITE["required"], "code"],
                                "properties": {**_INVITE["properties"], "code": {"type": "string"}},
                            }
                        ),
                    },
                    **_BODY_ERRORS,
                },
                requestBody={
                    "required": True,
                    "content": _json(
                        {
                            "type": "object",
                            "properties": {
                                "note": {"type": "string", "maxLength": 128},
                                "valid_seconds": {
                                    "type": "integer",
                                    "minimum": 0,
                                    "maximum": 366 * 24 * 3600,
                                },
                            },
                        }
                    ),
                },
            ),
            "get": _admin(
                "Every invite (without codes)",
                {
                    "200": {
                        "description": "invites by id",
                        "content": _json(
                            {
                                "type": "object",
                                "required": ["invites"],
                                "properties": {"invites": {"type": "array", "items": _INVITE}},
                            }
                        ),
                    }
                },
            ),
        },
        "/admin/invites/{invite_id}": {
            "delete": _admin(
                "Revoke an invite code",
                {
                    "204": {"description": "revoked"},
                    "400": _err("bad invite id"),
                    "404": _err("no such invite"),
                },
                parameters=[_id_param("invite_id")],
            )
        },
        "/admin/groups/{group_id}/dissolve": {
            "post": _admin(
                "Dissolve a group: its members get the group_dissolved notice and are removed",
                {
                    "200": {
                        "description": "the group as it was",
                        "content": _json(
                            {
                                "type": "object",
                                "required": ["group_id", "name", "owner_id", "member_count"],
                                "properties": {
                                    "group_id": {"type": "integer"},
                                    "name": {"type": "string"},
                                    "owner_id": {"type": "integer"},
                                    "member_count": {"type": "integer"},
                                },
                            }
                        ),
                    },
                    "400": _err("bad group id"),
                    "404": _err("no such live group"),
                },
                parameters=[_id_param("group_id")],
            )
        },
        "/admin/stats": {
            "get": _admin(
                "Server figures: accounts, live groups, open connections, stored messages",
                {
                    "200": {
                        "description": "figures",
                        "content": _json(
                            {
                                "type": "object",
                                "required": ["users", "groups", "online_connections", "messages"],
                                "properties": {
                                    k: {"type": "integer"}
                                    for k in ("users", "groups", "online_connections", "messages")
                                },
                            }
                        ),
                    }
                },
            )
        },
    }
