"""Module error codes -> wire ErrorCode and HTTP status."""

from __future__ import annotations

from tinyim import kernel
from tinyim.wire import ErrorCode

WIRE_CODES: dict[str, ErrorCode] = {
    kernel.INVALID_ARGUMENT: ErrorCode.ERR_INVALID_ARGUMENT,
    kernel.NOT_FOUND: ErrorCode.ERR_NOT_FOUND,
    kernel.CONFLICT: ErrorCode.ERR_INVALID_ARGUMENT,
    kernel.UNAUTHENTICATED: ErrorCode.ERR_UNAUTHENTICATED,
    kernel.PERMISSION_DENIED: ErrorCode.ERR_PERMISSION_DENIED,
    kernel.NOT_FRIENDS: ErrorCode.ERR_NOT_FRIENDS,
    kernel.BLOCKED: ErrorCode.ERR_BLOCKED,
    kernel.UNAVAILABLE: ErrorCode.ERR_UNAVAILABLE,
    kernel.UNIMPLEMENTED: ErrorCode.ERR_UNIMPLEMENTED,
    kernel.ALREADY_EXISTS: ErrorCode.ERR_ALREADY_EXISTS,
    kernel.NOT_MEMBER: ErrorCode.ERR_NOT_MEMBER,
    kernel.GROUP_FULL: ErrorCode.ERR_GROUP_FULL,
    kernel.RATE_LIMITED: ErrorCode.ERR_RATE_LIMITED,  # user search, typing
}

HTTP_STATUS: dict[str, int] = {
    kernel.INVALID_ARGUMENT: 400,
    kernel.NOT_FOUND: 404,
    kernel.CONFLICT: 409,
    kernel.UNAUTHENTICATED: 401,
    kernel.PERMISSION_DENIED: 403,
    kernel.UNAVAILABLE: 503,
    kernel.UNIMPLEMENTED: 501,
    kernel.ALREADY_EXISTS: 409,
    kernel.NOT_MEMBER: 403,
    kernel.GROUP_FULL: 409,
    kernel.RATE_LIMITED: 429,  # user search, typing
}


def wire_code(code: str) -> ErrorCode:
    return WIRE_CODES.get(code, ErrorCode.ERR_INTERNAL)


def http_status(code: str) -> int:
    return HTTP_STATUS.get(code, 500)
