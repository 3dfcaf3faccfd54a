"""In-memory fakes for unit tests: classes that keep state, so tests assert on what happened."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tinyim.kernel import Privacy, PushTarget, UserProfile
from tinyim.modules.presence import StatusView


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
        self.reads: list[tuple[int, str, int, int, int]] = []
        self.fail = fail
        self.receipts: list[tuple[int, int, int]] = []  # (user, peer who read, read_seq in user's seqs)
        self.conversation_changes: list[tuple[int, str, Any]] = []  # (user, except_device, ConversationView)

    async def notify_read(
        self, user_id: int, except_device: str, peer_id: int, group_id: int, read_seq: int
    ) -> None:
        self.reads.append((user_id, except_device, peer_id, group_id, read_seq))

    async def notify(self, targets: Sequence[PushTarget]) -> None:
        self.batches.append(list(targets))
        if self.fail:
            raise ConnectionError("gateway unreachable")

    # read receipts, conversation changes
    async def notify_receipt(self, user_id: int, peer_id: int, read_seq: int) -> None:
        self.receipts.append((user_id, peer_id, read_seq))

    async def notify_conversation(self, user_id: int, except_device: str, view: Any) -> None:
        self.conversation_changes.append((user_id, except_device, view))


class RecordingGatewayLink:
    def __init__(self, dead: frozenset[str] = frozenset()) -> None:
        self.dead = dead  # gateways whose calls fail (killed, unreachable)
        self.pushes: list[tuple[str, list[PushTarget]]] = []
        self.kicks: list[tuple[str, int, str, str]] = []
        self.reads: list[tuple[str, int, str, int]] = []
        self.events: list[tuple[str, int, str, int]] = []
        self.statuses: list[tuple[str, list[int], StatusView]] = []  # online status
        self.typings: list[tuple[str, int, int, bool]] = []

    async def push_read(
        self, gateway_id: str, user_id: int, except_device: str, peer_id: int, group_id: int, read_seq: int
    ) -> None:
        self.reads.append((gateway_id, user_id, except_device, read_seq))

    async def push(self, gateway_id: str, targets: Sequence[PushTarget]) -> None:
        self.pushes.append((gateway_id, list(targets)))

    # client frames for a user's devices (read receipts, conversation changes)
    async def push_event(
        self, gateway_id: str, user_id: int, except_device: str, cmd: int, body: bytes
    ) -> None:
        self.events.append((gateway_id, user_id, except_device, cmd))

    async def kick(
        self, gateway_id: str, user_id: int, device_id: str, keep_token_id: str, reason: str
    ) -> None:
        if gateway_id in self.dead:
            raise ConnectionError(f"{gateway_id} is gone")
        self.kicks.append((gateway_id, user_id, device_id, keep_token_id))

    # online status and typing
    async def push_status(self, gateway_id: str, user_ids: Sequence[int], status: StatusView) -> None:
        if gateway_id in self.dead:
            raise ConnectionError(f"{gateway_id} is gone")
        self.statuses.append((gateway_id, sorted(user_ids), status))

    async def push_typing(self, gateway_id: str, user_id: int, from_user_id: int, stopped: bool) -> None:
        if gateway_id in self.dead:
            raise ConnectionError(f"{gateway_id} is gone")
        self.typings.append((gateway_id, user_id, from_user_id, stopped))


class FakePolicy:
    """timeline.MessagingPolicy: any two known users may talk; groups are a dict of member lists."""

    def __init__(self, users: set[int], groups: dict[int, list[int]] | None = None) -> None:
        self.users = users
        self.groups = groups or {}

    async def check_direct(self, sender_id: int, receiver_id: int) -> None:
        from tinyim.kernel import INVALID_ARGUMENT, NOT_FOUND, ImError

        if sender_id == receiver_id:
            raise ImError(INVALID_ARGUMENT, "to yourself")
        if receiver_id not in self.users:
            raise ImError(NOT_FOUND, "no such user")

    async def group_recipients(self, sender_id: int, group_id: int) -> list[int]:
        from tinyim.kernel import NOT_FOUND, NOT_MEMBER, ImError

        if group_id not in self.groups:
            raise ImError(NOT_FOUND, "no such group")
        if sender_id not in self.groups[group_id]:
            raise ImError(NOT_MEMBER, "not a member")
        return list(self.groups[group_id])


class FakeUsers:
    """relation.UserDirectory over a dict of profiles."""

    def __init__(self, *user_ids: int) -> None:
        self.profiles = {u: UserProfile(u, f"user{u}", f"User {u}") for u in user_ids}
        self.privacies: dict[int, Privacy] = {}  # user search

    async def get_profiles(self, user_ids: Iterable[int]) -> Mapping[int, UserProfile]:
        return {u: self.profiles[u] for u in user_ids if u in self.profiles}

    async def update_nickname(self, user_id: int, nickname: str) -> None:
        old = self.profiles[user_id]
        self.profiles[user_id] = UserProfile(user_id, old.username, nickname)

    # user search
    async def search_profiles(
        self, username: str, nickname_prefix: str, after_user_id: int, limit: int
    ) -> list[UserProfile]:
        found = [
            p
            for u, p in sorted(self.profiles.items())
            if u > after_user_id
            and (
                p.username == username
                if username
                else p.nickname.lower().startswith(nickname_prefix.lower())
                and not self.privacies.get(u, Privacy()).hide_from_nickname_search
            )
        ]
        return found[:limit]

    async def privacy(self, user_id: int) -> Privacy:
        return self.privacies.get(user_id, Privacy())

    async def set_privacy(self, user_id: int, privacy: Privacy) -> Privacy:
        self.privacies[user_id] = privacy
        return privacy


class RecordingNotices:
    """relation.Notices: what would have been written into timelines. Like the timeline, a notice posted
    again with a key it has seen is not recorded again; `fail_next` makes that many posts fail first."""

    def __init__(self) -> None:
        self.to_users: list[tuple[int, int, dict[str, object], bool]] = []
        self.to_groups: list[tuple[int, int, list[int], dict[str, object]]] = []
        self.keys: set[tuple[int, str]] = set()  # (sender, dedup_key) written
        self.posts = 0  # calls, duplicates included
        self.fail_next = 0

    def _first_time(self, sender_id: int, dedup_key: str) -> bool:
        self.posts += 1
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("the timeline is unreachable")
        if not dedup_key:
            return True
        if (sender_id, dedup_key) in self.keys:
            return False
        self.keys.add((sender_id, dedup_key))
        return True

    async def to_user(
        self,
        sender_id: int,
        receiver_id: int,
        content: str,
        friend_request: bool = False,
        dedup_key: str = "",
    ) -> None:
        import json

        if self._first_time(sender_id, dedup_key):
            self.to_users.append((sender_id, receiver_id, json.loads(content), friend_request))

    async def to_group(
        self, sender_id: int, group_id: int, member_ids: Sequence[int], content: str, dedup_key: str = ""
    ) -> None:
        import json

        if self._first_time(sender_id, dedup_key):
            self.to_groups.append((sender_id, group_id, list(member_ids), json.loads(content)))

    def events_for(self, user_id: int) -> list[str]:
        direct = [str(c["event"]) for _, r, c, _ in self.to_users if r == user_id]
        return direct + [str(c["event"]) for _, _, members, c in self.to_groups if user_id in members]
