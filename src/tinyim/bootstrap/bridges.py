"""Small adapters that let one module's port be served by another module's public API."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from tinyim.kernel import UserProfile
from tinyim.modules.auth import AuthApi
from tinyim.modules.timeline import MsgType, NoticeApi


class AuthAsUserDirectory:
    """relation.UserDirectory served by auth's accounts (behind auth's profile cache)."""

    def __init__(self, auth: AuthApi) -> None:
        self._auth = auth

    async def get_profiles(self, user_ids: Iterable[int]) -> Mapping[int, UserProfile]:
        return await self._auth.get_profiles(user_ids)

    async def update_nickname(self, user_id: int, nickname: str) -> None:
        await self._auth.update_nickname(user_id, nickname)


class TimelineNotices:
    """relation.Notices served by the timeline: requests and decisions become messages."""

    def __init__(self, timeline: NoticeApi) -> None:
        self._timeline = timeline

    async def to_user(
        self, sender_id: int, receiver_id: int, content: str, friend_request: bool = False
    ) -> None:
        kind = MsgType.FRIEND_REQ if friend_request else MsgType.SYSTEM
        await self._timeline.post_notice(sender_id, [receiver_id], 0, kind, content)

    async def to_group(self, sender_id: int, group_id: int, member_ids: Sequence[int], content: str) -> None:
        await self._timeline.post_notice(sender_id, member_ids, group_id, MsgType.SYSTEM, content)
