"""Outbound ports the fuzzed services need, kept in memory (bounded)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from tinyim.kernel import Privacy, PushTarget, UserProfile


class FuzzUsers:
    def __init__(self, *user_ids: int) -> None:
        self.profiles = {u: UserProfile(u, f"user{u}", f"User {u}") for u in user_ids}
        self.privacies: dict[int, Privacy] = {}

    async def get_profiles(self, user_ids: Iterable[int]) -> Mapping[int, UserProfile]:
        return {u: self.profiles[u] for u in user_ids if u in self.profiles}

    async def update_nickname(self, user_id: int, nickname: str) -> None:
        p = self.profiles.get(user_id)
        if p is not None:
            self.profiles[user_id] = UserProfile(user_id, p.username, nickname)

    async def search_profiles(
        self, username: str, nickname_prefix: str, after_user_id: int, limit: int
    ) -> list[UserProfile]:
        found = [
            p
            for p in self.profiles.values()
            if (username and p.username == username)
            or (nickname_prefix and p.nickname.startswith(nickname_prefix) and p.user_id > after_user_id)
        ]
        return sorted(found, key=lambda p: p.user_id)[:limit]

    async def privacy(self, user_id: int) -> Privacy:
        return self.privacies.get(user_id, Privacy())

    async def set_privacy(self, user_id: int, privacy: Privacy) -> Privacy:
        self.privacies[user_id] = privacy
        return privacy


class FuzzNotices:
    async def to_user(
        self,
        sender_id: int,
        receiver_id: int,
        content: str,
        friend_request: bool = False,
        dedup_key: str = "",
    ) -> None:
        return None

    async def to_group(
        self, sender_id: int, group_id: int, member_ids: Sequence[int], content: str, dedup_key: str = ""
    ) -> None:
        return None


class FuzzNotifier:
    async def notify(self, targets: Sequence[PushTarget]) -> None:
        return None

    async def notify_read(
        self, user_id: int, except_device: str, peer_id: int, group_id: int, read_seq: int
    ) -> None:
        return None

    async def notify_receipt(self, user_id: int, peer_id: int, read_seq: int) -> None:
        return None

    async def notify_conversation(self, user_id: int, except_device: str, view: object) -> None:
        return None
