"""The relation service. It is THE place that decides who may message whom.

Until friendships exist (the social-graph issue), any registered user may message any other.
"""

from __future__ import annotations

from tinyim.kernel import INVALID_ARGUMENT, NOT_FOUND, ImError
from tinyim.modules.relation.ports import UserDirectory


class RelationService:
    def __init__(self, users: UserDirectory) -> None:
        self._users = users

    async def check_direct(self, sender_id: int, receiver_id: int) -> None:
        if sender_id == receiver_id:
            raise ImError(INVALID_ARGUMENT, "you cannot send a message to yourself")
        if receiver_id not in await self._users.existing([receiver_id]):
            raise ImError(NOT_FOUND, f"user {receiver_id} does not exist")
