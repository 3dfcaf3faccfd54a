"""Small adapters that let one module's port be served by another module's public API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence

from tinyim.edges.dispatch.ports import FileGatewayAllocator
from tinyim.edges.gateway.hub import GatewayHub
from tinyim.kernel import INVALID_ARGUMENT, AfterCommit, ImError, Privacy, UserProfile
from tinyim.modules.auth import AuthApi
from tinyim.modules.files import FileApi, GatewayEndpoint
from tinyim.modules.presence import PresenceRouter, Status, StatusView
from tinyim.modules.relation import RelationApi
from tinyim.modules.timeline import MsgType, NoticeApi


class AfterCommitKicker:
    """auth.SessionKicker served by presence after the answer: a login never waits on a gateway (the old
    session's token is revoked before this runs, so a late or lost kick lets nothing in)."""

    def __init__(self, presence: PresenceRouter, after_commit: AfterCommit) -> None:
        self._presence = presence
        self._after_commit = after_commit

    async def kick(self, user_id: int, device_id: str, keep_token_id: str, reason: str) -> None:
        self._after_commit.defer(
            "kick", lambda: self._presence.kick(user_id, device_id, keep_token_id, reason)
        )


class AuthAsUserDirectory:
    """relation.UserDirectory served by auth's accounts (behind auth's profile cache)."""

    def __init__(self, auth: AuthApi) -> None:
        self._auth = auth

    async def get_profiles(self, user_ids: Iterable[int]) -> Mapping[int, UserProfile]:
        return await self._auth.get_profiles(user_ids)

    async def update_nickname(self, user_id: int, nickname: str) -> None:
        await self._auth.update_nickname(user_id, nickname)

    # user search
    async def search_profiles(
        self, username: str, nickname_prefix: str, after_user_id: int, limit: int
    ) -> list[UserProfile]:
        return await self._auth.search_profiles(username, nickname_prefix, after_user_id, limit)

    async def privacy(self, user_id: int) -> Privacy:
        return await self._auth.privacy(user_id)

    async def set_privacy(self, user_id: int, privacy: Privacy) -> Privacy:
        return await self._auth.set_privacy(user_id, privacy)


class TimelineNotices:
    """relation.Notices served by the timeline: requests and decisions become messages."""

    def __init__(self, timeline: NoticeApi) -> None:
        self._timeline = timeline

    async def to_user(
        self,
        sender_id: int,
        receiver_id: int,
        content: str,
        friend_request: bool = False,
        dedup_key: str = "",
    ) -> None:
        kind = MsgType.FRIEND_REQ if friend_request else MsgType.SYSTEM
        await self._timeline.post_notice(sender_id, [receiver_id], 0, kind, content, dedup_key)

    async def to_group(
        self, sender_id: int, group_id: int, member_ids: Sequence[int], content: str, dedup_key: str = ""
    ) -> None:
        await self._timeline.post_notice(sender_id, member_ids, group_id, MsgType.SYSTEM, content, dedup_key)


class RelationAsStatusAudience:
    """presence.StatusAudience served by the relation module's rules (online status, typing)."""

    def __init__(self, relation: RelationApi) -> None:
        self._relation = relation

    async def watchers(self, user_id: int) -> list[int]:
        return await self._relation.status_watchers(user_id)

    async def visible(self, viewer_id: int, user_ids: Sequence[int]) -> list[int]:
        return await self._relation.status_visible(viewer_id, user_ids)

    async def check_typing(self, sender_id: int, peer_id: int) -> None:
        await self._relation.check_direct(sender_id, peer_id)  # the 1:1 messaging rule


class PresenceAsStatusNotices:
    """relation.StatusNotices served by presence: a hidden user shows as offline to the viewer."""

    def __init__(self, presence: PresenceRouter) -> None:
        self._presence = presence

    async def hide(self, viewer_id: int, user_id: int) -> None:
        # looks like any going offline: last seen now (they were visible until now)
        now_ms = int(time.time() * 1000)
        await self._presence.push_status([viewer_id], StatusView(user_id, Status.OFFLINE, now_ms))


class FilesAsAttachments:
    """timeline.Attachments served by the files module: a FILE / IMAGE message's content is the spec's
    JSON {task_id, file_name, size}; the file must be finished and the sender's (or sent to them)."""

    def __init__(self, files: FileApi) -> None:
        self._files = files

    async def attach(self, sender_id: int, msg_type: int, content: str, reader_ids: Sequence[int]) -> None:
        try:
            data = json.loads(content)
            task_id, size = data["task_id"], data["size"]
        except (ValueError, KeyError, TypeError):
            raise ImError(INVALID_ARGUMENT, "a file message is JSON {task_id, file_name, size}") from None
        if not isinstance(task_id, str) or not isinstance(size, int) or isinstance(size, bool):
            raise ImError(INVALID_ARGUMENT, "a file message needs a string task_id and an integer size")
        task = await self._files.share(sender_id, task_id, reader_ids)
        if task.size != size:
            raise ImError(INVALID_ARGUMENT, f"the file has {task.size} bytes, not {size}")


class ThisProcessFileGateway:
    """files.GatewayLocator of one process without a registry: its own file listener and HTTP port."""

    def __init__(self, host: str, file_port: int, http_port: int, public_http_url: str = "") -> None:
        self._endpoint = GatewayEndpoint(host, file_port, public_http_url or f"http://{host}:{http_port}")

    async def locate(self, task_id: str) -> GatewayEndpoint | None:
        return self._endpoint


class RingFileGateways:
    """files.GatewayLocator over dispatch's consistent-hash ring of the live file gateways."""

    def __init__(self, allocator: FileGatewayAllocator) -> None:
        self._allocator = allocator

    async def locate(self, task_id: str) -> GatewayEndpoint | None:
        address = await self._allocator.allocate(task_id)
        return GatewayEndpoint(address.host, address.port, address.http_url)


class HubOnlineCount:
    """admin API, one process: the connections of this process's gateway."""

    def __init__(self, hub: GatewayHub) -> None:
        self._hub = hub

    async def connections(self) -> int:
        return self._hub.connection_count
