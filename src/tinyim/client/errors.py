"""What the SDK raises: the server's errors, a lost connection, a session taken over or ended."""

from __future__ import annotations


class ServerError(Exception):
    """The server answered a request with an error (ErrorResp or an HTTP error)."""

    def __init__(self, code: int | str, message: str, cmd: int = 0) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.cmd = cmd


class ConnectionLost(Exception):
    pass


class Kicked(Exception):
    """This session was replaced by a newer login of the same device type, or logged out."""
