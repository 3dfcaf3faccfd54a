"""Module error codes -> wire ErrorCode and HTTP status."""

from __future__ import annotations

from tinyim import kernel
from tinyim.modules import files
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
    # file transfer
    files.FILE_NOT_READY: ErrorCode.ERR_FILE_NOT_READY,
    files.FILE_CORRUPT: ErrorCode.ERR_FILE_CORRUPT,
    files.FILE_TOO_LARGE: ErrorCode.ERR_FILE_TOO_LARGE,
    files.FILE_OFFSET: ErrorCode.ERR_FILE_OFFSET,
    files.FILE_BUSY: ErrorCode.ERR_FILE_BUSY,
    files.FILE_TOO_MANY: ErrorCode.ERR_FILE_TOO_MANY,
    files.FILE_DISK_FULL: ErrorCode.ERR_FILE_DISK_FULL,
    files.FILE_EXPIRED: ErrorCode.ERR_FILE_EXPIRED,
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
    # file transfer
    files.FILE_NOT_READY: 409,
    files.FILE_CORRUPT: 422,
    files.FILE_TOO_LARGE: 413,
    files.FILE_OFFSET: 409,
    files.FILE_BUSY: 409,
    files.FILE_TOO_MANY: 429,
    files.FILE_DISK_FULL: 507,
    files.FILE_EXPIRED: 410,
    kernel.RATE_LIMITED: 429,  # user search, typing
}


def wire_code(code: str) -> ErrorCode:
    return WIRE_CODES.get(code, ErrorCode.ERR_INTERNAL)


def http_status(code: str) -> int:
    return HTTP_STATUS.get(code, 500)
