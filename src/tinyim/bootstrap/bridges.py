"""Small adapters that let one module's port be served by another module's public API."""

from __future__ import annotations

from collections.abc import Iterable

from tinyim.modules.auth import AuthApi


class AccountsAsUserDirectory:
    """relation.UserDirectory served by auth's accounts."""

    def __init__(self, auth: AuthApi) -> None:
        self._auth = auth

    async def existing(self, user_ids: Iterable[int]) -> set[int]:
        return set(await self._auth.get_profiles(user_ids))
