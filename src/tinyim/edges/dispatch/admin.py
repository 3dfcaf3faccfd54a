"""The admin API (dispatch, under /admin/): accounts, registration policy, invite codes, groups, stats.

Off unless an admin token is configured (IM_ADMIN_TOKEN or IM_ADMIN_TOKEN_FILE): without one the routes
are not mounted at all. Every request needs `Authorization: Bearer <admin token>` (compared in constant
time); `X-Admin-Operator` may name the person acting, for the audit log. Every action, and every refused
attempt, is an audit line; no token, password or invite code ever is.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tinyim.infra import audit, metrics
from tinyim.kernel import INVALID_ARGUMENT, ImError
from tinyim.modules.auth import AccountSummary, AuthAdminApi, Invite
from tinyim.modules.relation import Group

from .http import Endpoint, _body, _field, _json_endpoint

OPERATOR_MAX = 64
ID_MAX = 2**63 - 1


class GroupAdmin(Protocol):
    """What the admin API needs of the relation module."""

    async def admin_dissolve_group(self, group_id: int) -> Group: ...
    async def group_count(self) -> int: ...


class MessageCount(Protocol):
    async def message_count(self) -> int: ...


class OnlineCount(Protocol):
    async def connections(self) -> int: ...


def _user(u: AccountSummary) -> dict[str, Any]:
    return {"user_id": u.user_id, "username": u.username, "nickname": u.nickname, "disabled": u.disabled}


def _invite(i: Invite) -> dict[str, Any]:
    return {
        "invite_id": i.invite_id,
        "note": i.note,
        "created_at": i.created_at,
        "expires_at": i.expires_at,
        "used_by": i.used_by,
        "revoked": i.revoked,
    }


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ImError(INVALID_ARGUMENT, f"{name} must be an integer from {low} to {high}")
    return int(raw)


def _path_id(request: Request, name: str) -> int:
    value = int(request.path_params[name])
    if not 1 <= value <= ID_MAX:
        raise ImError(INVALID_ARGUMENT, f"{name} must be from 1 to {ID_MAX}")
    return value


def _operator(request: Request) -> str:
    """Who acts, as the caller says (the token proves only that they may): for the audit trail."""
    name = request.headers.get("x-admin-operator", "").strip()
    if not name or len(name) > OPERATOR_MAX or not name.isprintable():
        return "admin"
    return name


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


@dataclass(frozen=True, slots=True)
class AdminServices:
    """What the admin routes use: read per request, so the routes exist before the process starts."""

    auth: AuthAdminApi
    groups: GroupAdmin
    messages: MessageCount
    online: OnlineCount


def admin_routes(token: str, services: Callable[[], AdminServices]) -> list[Route]:
    """Routes under /admin/, all behind `token` (must be non-empty: an empty token would open them)."""
    if not token:
        raise ValueError("the admin API needs a token")
    expected = token.encode()

    def guarded(action: str, fn: Callable[[Request], Awaitable[Response]]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
                audit.event("admin.denied", action=action, ip=_address(request))
                return JSONResponse(
                    {"error": "unauthenticated", "message": "the admin API needs its bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            response = await fn(request)
            if response.status_code < 400:
                metrics.ADMIN_ACTIONS.labels(action=action).inc()
            return response

        return _json_endpoint(endpoint)

    def record(request: Request, action: str, **fields: Any) -> None:
        audit.event(f"admin.{action}", actor=_operator(request), ip=_address(request), **fields)

    async def list_users(request: Request) -> Response:
        query = request.query_params.get("q", "")
        after = _int_param(request, "after", 0, 0, ID_MAX)
        limit = _int_param(request, "limit", 50, 1, 200)
        found = await services().auth.admin_users(query, after, limit)
        record(request, "list_users", query=query, after=after, found=len(found))
        next_after = found[-1].user_id if len(found) == limit else None
        return JSONResponse({"users": [_user(u) for u in found], "next_after": next_after})

    def set_disabled(disabled: bool) -> Callable[[Request], Awaitable[Response]]:
        async def change(request: Request) -> Response:
            user_id = _path_id(request, "user_id")
            user = await services().auth.admin_set_disabled(user_id, disabled)
            record(request, "disable_user" if disabled else "enable_user", target_user_id=user_id)
            return JSONResponse(_user(user))

        return change

    async def reset_password(request: Request) -> Response:
        user_id = _path_id(request, "user_id")
        new_password = _field(await _body(request), "password")
        await services().auth.admin_reset_password(user_id, new_password)
        record(request, "reset_password", target_user_id=user_id)
        return Response(status_code=204)

    async def get_registration(request: Request) -> Response:
        mode = await services().auth.registration_mode()
        record(request, "get_registration")
        return JSONResponse({"mode": mode})

    async def set_registration(request: Request) -> Response:
        mode = await services().auth.set_registration_mode(_field(await _body(request), "mode"))
        record(request, "set_registration", mode=mode)
        return JSONResponse({"mode": mode})

    async def create_invite(request: Request) -> Response:
        data = await _body(request)
        valid_seconds = data.get("valid_seconds", 0)
        if not isinstance(valid_seconds, int) or isinstance(valid_seconds, bool):
            raise ImError(INVALID_ARGUMENT, "valid_seconds must be an integer")
        invite, code = await services().auth.create_invite(data.get("note", ""), valid_seconds)
        record(request, "create_invite", invite_id=invite.invite_id, expires_at=invite.expires_at)
        return JSONResponse({**_invite(invite), "code": code}, status_code=201)

    async def list_invites(request: Request) -> Response:
        invites = await services().auth.invites()
        record(request, "list_invites", found=len(invites))
        return JSONResponse({"invites": [_invite(i) for i in invites]})

    async def revoke_invite(request: Request) -> Response:
        invite_id = _path_id(request, "invite_id")
        await services().auth.revoke_invite(invite_id)
        record(request, "revoke_invite", invite_id=invite_id)
        return Response(status_code=204)

    async def dissolve_group(request: Request) -> Response:
        group_id = _path_id(request, "group_id")
        group = await services().groups.admin_dissolve_group(group_id)
        record(request, "dissolve_group", group_id=group_id, members=group.member_count)
        return JSONResponse(
            {
                "group_id": group.group_id,
                "name": group.name,
                "owner_id": group.owner_id,
                "member_count": group.member_count,
            }
        )

    async def stats(request: Request) -> Response:
        figures = {
            "users": await services().auth.user_count(),
            "groups": await services().groups.group_count(),
            "online_connections": await services().online.connections(),
            "messages": await services().messages.message_count(),
        }
        record(request, "stats")
        return JSONResponse(figures)

    return [
        Route("/admin/users", guarded("list_users", list_users), methods=["GET"]),
        Route(
            "/admin/users/{user_id:int}/disable",
            guarded("disable_user", set_disabled(True)),
            methods=["POST"],
        ),
        Route(
            "/admin/users/{user_id:int}/enable", guarded("enable_user", set_disabled(False)), methods=["POST"]
        ),
        Route(
            "/admin/users/{user_id:int}/password", guarded("reset_password", reset_password), methods=["POST"]
        ),
        Route("/admin/registration", guarded("get_registration", get_registration), methods=["GET"]),
        Route("/admin/registration", guarded("set_registration", set_registration), methods=["PUT"]),
        Route("/admin/invites", guarded("create_invite", create_invite), methods=["POST"]),
        Route("/admin/invites", guarded("list_invites", list_invites), methods=["GET"]),
        Route("/admin/invites/{invite_id:int}", guarded("revoke_invite", revoke_invite), methods=["DELETE"]),
        Route(
            "/admin/groups/{group_id:int}/dissolve",
            guarded("dissolve_group", dissolve_group),
            methods=["POST"],
        ),
        Route("/admin/stats", guarded("stats", stats), methods=["GET"]),
    ]
