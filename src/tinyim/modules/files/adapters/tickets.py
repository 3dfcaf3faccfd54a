"""Upload and download tokens: short-lived HS256 JWTs bound to user + task + direction.

The key is derived from the process's JWT secret (shared by every role), so a chat session token never
passes as a file ticket nor the other way round (different key and a required audience).
"""

from __future__ import annotations

import hashlib
import hmac

import jwt

from tinyim.kernel import UNAUTHENTICATED, ImError
from tinyim.modules.files.domain import Ticket, TicketKind

AUDIENCE = "tinyim-file"


class JwtTickets:
    def __init__(self, secret: str) -> None:
        if len(secret) < 32:
            raise ValueError("the JWT secret must be at least 32 characters")
        self._key = hmac.new(secret.encode(), b"tinyim file tickets", hashlib.sha256).hexdigest()

    def issue(self, ticket: Ticket) -> str:
        payload = {
            "aud": AUDIENCE,
            "k": ticket.kind.value,
            "t": ticket.task_id,
            "sub": str(ticket.user_id),
            "exp": ticket.expires_at,
        }
        return jwt.encode(payload, self._key, algorithm="HS256")

    def read(self, token: str) -> Ticket:
        if not isinstance(token, str) or not token or len(token) > 1024:
            raise ImError(UNAUTHENTICATED, "missing or oversized file token")
        try:
            p = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=AUDIENCE,
                options={"require": ["exp", "sub", "aud", "k", "t"]},
            )
            return Ticket(TicketKind(p["k"]), str(p["t"]), int(p["sub"]), int(p["exp"]))
        except jwt.ExpiredSignatureError:
            raise ImError(UNAUTHENTICATED, "the file token expired; ask for a new one") from None
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            raise ImError(UNAUTHENTICATED, "invalid file token") from None
