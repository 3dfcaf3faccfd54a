"""In-memory fakes for unit tests: classes that keep state, so tests assert on what happened."""

from __future__ import annotations

from collections.abc import Sequence

from tinyim.kernel import PushTarget


class FakeHasher:
    """Reversible stand-in for argon2 (fast); `scheme` lets a test mark hashes as outdated."""

    def __init__(self, scheme: str = "v2") -> None:
        self.scheme = scheme
        self.verified = 0

    async def hash(self, password: str) -> str:
        return f"{self.scheme}${password}"

    async def verify(self, password_hash: str, password: str) -> bool:
        self.verified += 1
        return password_hash.split("$", 1)[1] == password

    def needs_rehash(self, password_hash: str) -> bool:
        return not password_hash.startswith(f"{self.scheme}$")


class RecordingKicker:
    def __init__(self) -> None:
        self.kicks: list[tuple[int, str, str, str]] = []

    async def kick(self, user_id: int, device_id: str, keep_token_id: str, reason: str) -> None:
        self.kicks.append((user_id, device_id, keep_token_id, reason))


class RecordingNotifier:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[PushTarget]] = []
        self.fail = fail

    async def notify(self, targets: Sequence[PushTarget]) -> None:
        self.batches.append(list(targets))
        if self.fail:
            raise ConnectionError("gateway unreachable")


class RecordingGatewayLink:
    def __init__(self) -> None:
        self.pushes: list[tuple[str, list[PushTarget]]] = []
        self.kicks: list[tuple[str, int, str, str]] = []

    async def push(self, gateway_id: str, targets: Sequence[PushTarget]) -> None:
        self.pushes.append((gateway_id, list(targets)))

    async def kick(
        self, gateway_id: str, user_id: int, device_id: str, keep_token_id: str, reason: str
    ) -> None:
        self.kicks.append((gateway_id, user_id, device_id, keep_token_id))


class SetDirectory:
    """relation.UserDirectory over a fixed set of user ids."""

    def __init__(self, user_ids: set[int]) -> None:
        self.user_ids = user_ids

    async def existing(self, user_ids: object) -> set[int]:
        return {u for u in user_ids if u in self.user_ids}  # type: ignore[attr-defined]
