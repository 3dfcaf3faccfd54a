"""Ports of the relation module."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class RelationApi(Protocol):
    async def check_direct(self, sender_id: int, receiver_id: int) -> None:
        """Raise ImError unless sender may send a 1:1 message to receiver."""
        ...


class UserDirectory(Protocol):
    """Which user ids exist (served by the auth module's accounts)."""

    async def existing(self, user_ids: Iterable[int]) -> set[int]: ...
