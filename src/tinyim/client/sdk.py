"""The TinyIM client SDK: what a PC client, the tests and the benchmarks use to talk to a server.

    user_id = await register(base_url, "alice", "password1", "Alice")
    client = Client(base_url, "alice", "password1", "PC", options=ClientOptions(heartbeat_interval=10))
    await client.start()                       # HTTP login, WebSocket, sync from the stored local_max_seq
    await client.send_text(bob_id, "hi")       # returns once the server has committed it
    async for message in client.messages(): …  # every new timeline entry, in seq order

A push is only a signal: the client pulls (MsgSyncReq) whenever a MsgPushNotify names a seq above its own,
and after every (re)connect. Sends carry a client_msg_id and are retried with the same id after a
reconnect, so a retry never makes a duplicate.

`Client` is the API facade over a `Session` (session.py: HTTP login, the WebSocket, pipelined requests,
heartbeats, reconnects); it keeps the timeline (sync, local_max_seq) and what the pushes say.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

from google.protobuf.message import Message as ProtoMessage

from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, ErrorCode

from .errors import ConnectionLost, Kicked, ServerError
from .models import (
    ClientEvent,
    ConversationEvent,
    ConversationItem,
    GroupSummary,
    Message,
    ReadCount,
    RecallEvent,
    RecallResult,
    ReceiptEvent,
    Sent,
    Unread,
    User,
)
from .options import ClientOptions
from .seqstore import MemorySeqStore, SeqStore
from .session import Session
from .status import STATUS_VALUES, Typing, UserStatus, user_status

if TYPE_CHECKING:  # files (file transfer)
    from .files import FileRef, Progress

log = logging.getLogger(__name__)

MAX_AHEAD = 5_000  # messages held behind a gap at most; past that they are dropped and a sync brings them

OnMessage = Callable[[Message], Awaitable[None] | None]
R = TypeVar("R", bound=ProtoMessage)
T = TypeVar("T")


def _user(u: pb.UserInfo) -> User:
    return User(u.user_id, u.username, u.nickname)


class _FromSession(Generic[T]):
    """An attribute of the client's session, read and written through the client (the SDK's API)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> _FromSession[T]: ...
    @overload
    def __get__(self, obj: Client, objtype: type | None = None) -> T: ...
    def __get__(self, obj: Client | None, objtype: type | None = None) -> T | _FromSession[T]:
        if obj is None:
            return self
        return cast(T, getattr(obj.session, self._name))

    def __set__(self, obj: Client, value: T) -> None:
        setattr(obj.session, self._name, value)


class Client:
    base_url = _FromSession[str]()
    username = _FromSession[str]()
    device_id = _FromSession[str]()
    user_id = _FromSession[int]()
    token = _FromSession[str]()
    token_expires_at = _FromSession[int]()
    refresh_token = _FromSession[str]()
    ws_url = _FromSession[str]()
    kicked = _FromSession[asyncio.Event]()
    kick_reason = _FromSession[str]()
    connected = _FromSession[asyncio.Event]()
    connects = _FromSession[int]()

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        device_id: str = "PC",
        *,
        options: ClientOptions | None = None,
        seq_store: SeqStore | None = None,
        on_message: OnMessage | None = None,
        on_push: Callable[[int], None] | None = None,
        on_read: Callable[[int, int, int], None] | None = None,
    ) -> None:
        options = options or ClientOptions()
        self.options = options
        self.session = Session(base_url, username, password, device_id, options, self)
        self._seq_store = seq_store or MemorySeqStore()
        self._on_message = on_message
        self._on_push = on_push  # called with max_seq_id of every MsgPushNotify (UI hints, benchmarks)
        self._on_read = on_read  # (peer_id, group_id, read_seq) when another device of yours read
        # Read marks per conversation (peer_id, group_id), from your reads and your other devices'.
        self.read_marks: dict[tuple[int, int], int] = {}
        self.read_changed = asyncio.Event()
        self._sync_limit = options.sync_limit
        self._echo_own = options.echo_own_sends
        self._gap_wait = options.gap_wait
        self._sent_here: set[str] = set()
        self._sent_order: deque[str] = deque(maxlen=10_000)

        self.local_max_seq = 0
        self.notified_max_seq = 0  # the highest seq a push announced (sent as MsgSyncReq.min_seq)
        self._sync_lock = asyncio.Lock()
        self._sync_again = False
        self._need_sync = False
        self._active = False  # a push came or a send was answered since the last heartbeat
        # Messages that arrived without a sync (inside a push, or this device's own sends), applied in
        # order by the sync task when they continue local_max_seq; those past a gap wait in _ahead (by
        # seq) for gap_wait, then a sync fills the gap.
        self._pushed: deque[list[pb.MessageData]] = deque()
        self._ahead: dict[int, pb.MessageData] = {}
        self._wake = asyncio.Event()  # set whenever _schedule_sync is called (a push, a signal)
        self._sync_task: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._seq_changed = asyncio.Condition()
        # conversation list, read receipts, recall (see events())
        self._events: asyncio.Queue[ClientEvent] = asyncio.Queue()
        self.receipts: dict[int, int] = {}  # 1:1 peer -> how far they read, as a seq of your timeline
        self.recalled: dict[int, int] = {}  # msg_id -> who recalled it (from RECALL entries synced)
        # online status and typing pushes (latest status per user; both also queued for next_*)
        self.statuses: dict[int, UserStatus] = {}
        self.on_status: Callable[[UserStatus], None] | None = None
        self.on_typing: Callable[[Typing], None] | None = None
        self._status_queue: asyncio.Queue[UserStatus] = asyncio.Queue(maxsize=1000)
        self._typing_queue: asyncio.Queue[Typing] = asyncio.Queue(maxsize=1000)
        self._background: set[asyncio.Task[None]] = set()

    # ---------- lifecycle ----------
    async def login(self) -> None:
        """Log in with the password (HTTP). Throttled (429) attempts wait the server's Retry-After."""
        await self.session.login()

    async def start(self) -> None:
        """Log in, connect and sync once; afterwards a background task keeps the session alive."""
        await self.session.open()
        await self.sync()

    async def close(self) -> None:
        await self.session.close()
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(BaseException):
                await self._sync_task

    async def logout(self) -> None:
        await self.session.logout()
        await self.close()

    async def drop_connection(self) -> None:
        """Close the WebSocket as a network failure would; the client reconnects by itself."""
        await self.session.drop_connection()

    @property
    def connection_state(self) -> str:
        """One of connected, reconnecting, kicked (logged in elsewhere), closed, offline (not started)."""
        return self.session.connection_state

    # ---------- what the session tells (SessionEvents) ----------
    def on_session(self) -> None:
        self.local_max_seq = max(self.local_max_seq, self._seq_store.load(self.user_id, self.device_id))

    def on_frame(self, cmd: int, body: ProtoMessage) -> None:
        if isinstance(body, pb.MsgPushNotify):
            self._active = True
            self.notified_max_seq = max(self.notified_max_seq, body.max_seq_id)
            if self._on_push is not None:
                self._on_push(body.max_seq_id)
            if body.max_seq_id > self.local_max_seq:
                # The messages ride in the push when small: no sync when they are the next ones.
                self._schedule_sync(list(body.msgs) or None)
        elif isinstance(body, pb.ReadNotify):
            self._remember_read(body.peer_id, body.group_id, body.read_seq)
            if self._on_read is not None:
                self._on_read(body.peer_id, body.group_id, body.read_seq)
        elif isinstance(body, pb.ReceiptNotify | pb.ConversationNotify):
            self._conversation_push(body)
        else:  # status, typing, newer pushes
            self._on_notify(cmd, body)

    def on_reconnected(self) -> None:
        self._schedule_sync()
        self._refresh_statuses_soon()  # online status: pushes missed while away

    def on_heartbeat(self) -> None:
        if self._active:
            # A push is only a hint, and the last one of a burst can be lost (a msg node that died
            # between its commit and its push): while a conversation is going on, one sync per
            # heartbeat bounds how long such a message waits. Idle clients pull nothing.
            self._active = False
            self._schedule_sync()

    # ---------- API ----------
    async def send_text(self, receiver_id: int, text: str, client_msg_id: str | None = None) -> Sent:
        return await self.send(receiver_id=receiver_id, content=text, client_msg_id=client_msg_id)

    async def send(
        self,
        *,
        receiver_id: int = 0,
        group_id: int = 0,
        content: str,
        msg_type: int = pb.TEXT,
        client_msg_id: str | None = None,
        retry_for: float = 30.0,
    ) -> Sent:
        """Send and wait for the durable ack; retried with the same client_msg_id across reconnects."""
        cmid = client_msg_id or uuid.uuid4().hex
        self._remember_sent(cmid)
        req = pb.MsgSendReq(
            receiver_id=receiver_id,
            group_id=group_id,
            type=cast(Any, msg_type),
            content=content,
            client_msg_id=cmid,
        )
        deadline = time.monotonic() + retry_for
        limited = 0
        while True:
            try:
                resp = await self.request(Cmd.CMD_MSG_SEND_REQ, req)
                assert isinstance(resp, pb.MsgSendResp)
                self._active = True
                if resp.seq_id > self.local_max_seq:
                    # This device gets no push for its own message. When it is the next seq, the device
                    # knows it already; otherwise a sync covers it and whatever came before it.
                    own = pb.MessageData(
                        msg_id=resp.msg_id, seq_id=resp.seq_id, sender_id=self.user_id,
                        receiver_id=receiver_id, group_id=group_id, type=cast(Any, msg_type),
                        content=content, create_time=resp.send_time, client_msg_id=cmid, is_sender=True,
                    )  # fmt: skip
                    self._schedule_sync([own])
                return Sent(resp.msg_id, resp.seq_id, resp.send_time, resp.duplicate, cmid)
            except (ConnectionLost, TimeoutError):
                if self.kicked.is_set() or self.session.closing or time.monotonic() > deadline:
                    raise
                await self.session.wait_connected(deadline)
            except ServerError as exc:
                if time.monotonic() > deadline:
                    raise
                if exc.code == ErrorCode.ERR_RATE_LIMITED:
                    # Slow down (with the same client_msg_id, so a retry never duplicates).
                    limited += 1
                    await asyncio.sleep(
                        min(self.session.backoff[1], 0.2 * 2**limited) * (0.5 + random.random())
                    )
                    continue
                # A msg node died mid-send: the same client_msg_id on a retry returns the first result.
                if exc.code != ErrorCode.ERR_UNAVAILABLE:
                    raise
                await asyncio.sleep(self.session.backoff[0] * (0.5 + random.random()))

    async def heartbeat(self) -> int:
        return await self.session.heartbeat()

    async def sync(self) -> list[Message]:
        """Pull everything after local_max_seq (all pages); new messages are also delivered."""
        async with self._sync_lock:
            got: list[Message] = []
            while True:
                req = pb.MsgSyncReq(
                    local_max_seq=self.local_max_seq, limit=self._sync_limit, min_seq=self.notified_max_seq
                )
                resp = await self.request(Cmd.CMD_MSG_SYNC_REQ, req)
                assert isinstance(resp, pb.MsgSyncResp)
                got += await self._take(resp.msgs)
                if not resp.has_more:
                    # what a push brought past the synced end now continues the timeline: apply it now,
                    # not on the next signal (a seq the sync did not see yet, e.g. still being written)
                    return got + await self._take_held()
                if not resp.msgs:
                    await asyncio.sleep(0.2)  # the server stopped before a seq still being written

    async def _take(self, msgs: Iterable[pb.MessageData]) -> list[Message]:
        """Apply messages that continue the local timeline (in seq order; older ones are skipped)."""
        got: list[Message] = []
        before = self.local_max_seq
        for m in msgs:
            if m.seq_id <= self.local_max_seq:
                continue
            msg = self._message(m)
            self.local_max_seq = m.seq_id
            if msg.is_mine and msg.client_msg_id in self._sent_here and not self._echo_own:
                continue
            got.append(msg)
            await self._deliver(msg)
        if self.local_max_seq != before:
            self._seq_store.save(self.user_id, self.device_id, self.local_max_seq)
            async with self._seq_changed:
                self._seq_changed.notify_all()
        return got

    async def _apply_pushed(self) -> bool:
        """Apply what came without a sync as far as it continues local_max_seq; False while some of it
        waits behind a gap (a sync, or the missing messages' own push, fills it)."""
        async with self._sync_lock:
            while self._pushed:
                for m in self._pushed.popleft():
                    if m.seq_id > self.local_max_seq:
                        self._ahead[m.seq_id] = m
            await self._take_held()
            if len(self._ahead) > MAX_AHEAD:
                self._ahead.clear()  # a long gap: the sync brings all of it
            return not self._ahead

    async def _take_held(self) -> list[Message]:
        """Apply the held messages (`_ahead`) as far as they continue local_max_seq; forget older ones."""
        run: list[pb.MessageData] = []
        while (self.local_max_seq + 1 + len(run)) in self._ahead:
            run.append(self._ahead.pop(self.local_max_seq + 1 + len(run)))
        got = await self._take(run) if run else []
        self._forget_applied()
        return got

    def _forget_applied(self) -> None:
        if self._ahead:
            self._ahead = {seq: m for seq, m in self._ahead.items() if seq > self.local_max_seq}

    async def _gap_filled(self) -> bool:
        """Wait up to gap_wait for pushes that fill the gap before what is held; False when it is still
        there (or a signal without messages asks for a sync anyway)."""
        deadline = asyncio.get_running_loop().time() + self._gap_wait
        while True:
            self._wake.clear()
            if await self._apply_pushed():
                return True
            remaining = deadline - asyncio.get_running_loop().time()
            if self._need_sync or remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                return await self._apply_pushed()

    async def messages(self) -> AsyncIterator[Message]:
        while True:
            yield await self._queue.get()

    def take_delivered(self) -> list[Message]:
        """Everything delivered but not yet taken from messages()/next_message(), without waiting
        (e.g. the history a first sync brought, when a UI loads history its own way)."""
        taken = []
        while not self._queue.empty():
            taken.append(self._queue.get_nowait())
        return taken

    async def next_message(self, timeout: float = 10.0) -> Message:
        return await asyncio.wait_for(self._queue.get(), timeout)

    async def wait_for_seq(self, seq: int, timeout: float = 10.0) -> None:
        """Wait until local_max_seq reaches `seq` (tests and benchmarks)."""
        async with asyncio.timeout(timeout), self._seq_changed:
            await self._seq_changed.wait_for(lambda: self.local_max_seq >= seq)

    async def request(self, cmd: int, body: ProtoMessage) -> ProtoMessage:
        """Send one request frame and wait for its answer (responses come back in request order)."""
        return await self.session.request(cmd, body)

    async def send_group(self, group_id: int, text: str, client_msg_id: str | None = None) -> Sent:
        return await self.send(group_id=group_id, content=text, client_msg_id=client_msg_id)

    async def history(
        self, *, peer_id: int = 0, group_id: int = 0, before_seq: int = 0, limit: int = 50
    ) -> tuple[list[Message], bool]:
        """One conversation, newest first page (before_seq=0) or older than before_seq; ascending."""
        req = pb.MsgHistoryReq(peer_id=peer_id, group_id=group_id, before_seq=before_seq, limit=limit)
        resp = await self._call(Cmd.CMD_MSG_HISTORY_REQ, req, pb.MsgHistoryResp)
        return [self._message(m) for m in resp.msgs], resp.has_more

    async def mark_read(self, *, peer_id: int = 0, group_id: int = 0, read_seq: int) -> int:
        req = pb.MsgReadReq(peer_id=peer_id, group_id=group_id, read_seq=read_seq)
        stored = (await self._call(Cmd.CMD_MSG_READ_REQ, req, pb.MsgReadResp)).read_seq
        self._remember_read(peer_id, group_id, stored)
        return stored

    async def unread(self) -> list[Unread]:
        resp = await self._call(Cmd.CMD_UNREAD_REQ, pb.UnreadReq(), pb.UnreadResp)
        return [Unread(c.peer_id, c.group_id, c.unread, c.last_seq, c.read_seq) for c in resp.conversations]

    # ---------- friends, blacklist, profiles ----------
    async def apply_friend(self, target_id: int, reason: str = "") -> bool:
        """Returns True when you are friends at once (they had asked you, or still had you)."""
        req = pb.FriendApplyReq(target_user_id=target_id, reason=reason)
        return (await self._call(Cmd.CMD_FRIEND_APPLY_REQ, req, pb.FriendApplyResp)).now_friends

    async def handle_friend(self, applicant_id: int, agree: bool = True) -> None:
        req = pb.FriendHandleReq(request_user_id=applicant_id, agree=agree)
        await self._call(Cmd.CMD_FRIEND_HANDLE_REQ, req, pb.FriendHandleResp)

    async def friends(self) -> list[User]:
        resp = await self._call(Cmd.CMD_FRIEND_LIST_REQ, pb.FriendListReq(), pb.FriendListResp)
        return [_user(u) for u in resp.friends]

    async def delete_friend(self, friend_id: int) -> None:
        await self._call(Cmd.CMD_FRIEND_DEL_REQ, pb.FriendDelReq(friend_id=friend_id), pb.FriendDelResp)

    async def block(self, user_id: int) -> None:
        await self._call(Cmd.CMD_BLACKLIST_ADD_REQ, pb.BlacklistAddReq(user_id=user_id), pb.BlacklistAddResp)

    async def unblock(self, user_id: int) -> None:
        await self._call(Cmd.CMD_BLACKLIST_DEL_REQ, pb.BlacklistDelReq(user_id=user_id), pb.BlacklistDelResp)

    async def blacklist(self) -> list[User]:
        resp = await self._call(Cmd.CMD_BLACKLIST_LIST_REQ, pb.BlacklistListReq(), pb.BlacklistListResp)
        return [_user(u) for u in resp.users]

    async def users(self, user_ids: list[int]) -> list[User]:
        resp = await self._call(Cmd.CMD_USER_INFO_REQ, pb.UserInfoReq(user_ids=user_ids), pb.UserInfoResp)
        return [_user(u) for u in resp.users]

    async def update_nickname(self, nickname: str) -> None:
        req = pb.ProfileUpdateReq(nickname=nickname)
        await self._call(Cmd.CMD_PROFILE_UPDATE_REQ, req, pb.ProfileUpdateResp)

    # ---------- groups ----------
    async def create_group(self, name: str, member_ids: list[int]) -> int:
        req = pb.GroupCreateReq(group_name=name, member_ids=member_ids)
        return (await self._call(Cmd.CMD_GROUP_CREATE_REQ, req, pb.GroupCreateResp)).group_id

    async def join_group(self, group_id: int) -> None:
        await self._call(Cmd.CMD_GROUP_JOIN_REQ, pb.GroupJoinReq(group_id=group_id), pb.GroupJoinResp)

    async def handle_join(self, group_id: int, applicant_id: int, agree: bool = True) -> None:
        req = pb.GroupJoinHandleReq(group_id=group_id, applicant_id=applicant_id, agree=agree)
        await self._call(Cmd.CMD_GROUP_JOIN_HANDLE_REQ, req, pb.GroupJoinHandleResp)

    async def leave_group(self, group_id: int) -> None:
        await self._call(Cmd.CMD_GROUP_LEAVE_REQ, pb.GroupLeaveReq(group_id=group_id), pb.GroupLeaveResp)

    async def remove_member(self, group_id: int, member_id: int) -> None:
        req = pb.GroupRemoveReq(group_id=group_id, member_id=member_id)
        await self._call(Cmd.CMD_GROUP_REMOVE_REQ, req, pb.GroupRemoveResp)

    async def groups(self) -> list[GroupSummary]:
        resp = await self._call(Cmd.CMD_GROUP_LIST_REQ, pb.GroupListReq(), pb.GroupListResp)
        return [
            GroupSummary(g.group_id, g.group_name, g.owner_id, g.member_count, g.announcement)
            for g in resp.groups
        ]

    async def group_members(self, group_id: int) -> list[tuple[User, int]]:
        resp = await self._call(
            Cmd.CMD_GROUP_MEMBER_REQ, pb.GroupMemberReq(group_id=group_id), pb.GroupMemberResp
        )
        return [(_user(m.user), int(m.role)) for m in resp.member_infos]

    # ---------- internals ----------
    async def _call(self, cmd: int, req: ProtoMessage, resp_type: type[R]) -> R:
        resp = await self.request(cmd, req)
        if not isinstance(resp, resp_type):
            raise ServerError(
                "unexpected_response", f"expected {resp_type.__name__}, got {type(resp).__name__}"
            )
        return resp

    def _message(self, m: pb.MessageData) -> Message:
        return Message(
            m.seq_id,
            m.msg_id,
            m.sender_id,
            m.receiver_id,
            m.group_id,
            int(m.type),
            m.content,
            m.create_time,
            m.client_msg_id,
            m.sender_id == self.user_id,
            m.recalled_by,
        )

    def _remember_read(self, peer_id: int, group_id: int, read_seq: int) -> None:
        key = (peer_id, group_id)
        self.read_marks[key] = max(self.read_marks.get(key, 0), read_seq)
        self.read_changed.set()

    def _schedule_sync(self, pushed: list[pb.MessageData] | None = None) -> None:
        """One sync at a time; a signal that arrives during a sync causes exactly one more. `pushed`:
        messages that came without a sync, applied without one when they are the next seqs."""
        if pushed:
            self._pushed.append(pushed)
        else:
            self._need_sync = True
        self._wake.set()
        if self._sync_task is not None and not self._sync_task.done():
            self._sync_again = True
            return
        self._sync_task = asyncio.create_task(self._sync_loop())

    async def _sync_loop(self) -> None:
        failures = 0
        while True:
            self._sync_again = False
            try:
                if not await self._apply_pushed() and not await self._gap_filled():
                    self._need_sync = True
                if self._need_sync:
                    self._need_sync = False  # cleared first: a signal during this sync asks for one more
                    try:
                        await self.sync()
                    except BaseException:
                        self._need_sync = True
                        raise
                failures = 0
            except ConnectionLost:
                return  # the reconnect syncs
            except (ServerError, TimeoutError) as exc:
                # A push is only a hint: after the last one nothing else would bring us to sync, so a
                # failed sync is retried here with backoff instead of waiting for the next signal.
                failures += 1
                if self.session.closing or self.kicked.is_set() or failures > 8:
                    log.warning("sync keeps failing; the next signal or reconnect retries: %s", exc)
                    return
                first, longest = self.session.backoff
                await asyncio.sleep(min(longest, first * 2**failures) * (0.5 + random.random()))
                self._sync_again = True
            if not self._sync_again:
                return

    async def _deliver(self, message: Message) -> None:
        if message.type == pb.RECALL:
            self._recall_entry(message)
        self._queue.put_nowait(message)
        if self._on_message is not None:
            result = self._on_message(message)
            if inspect.isawaitable(result):
                await result

    def _remember_sent(self, client_msg_id: str) -> None:
        if client_msg_id in self._sent_here:
            return
        if len(self._sent_order) == self._sent_order.maxlen:
            self._sent_here.discard(self._sent_order[0])
        self._sent_order.append(client_msg_id)
        self._sent_here.add(client_msg_id)

    def __repr__(self) -> str:
        return f"Client({self.username!r}, device={self.device_id}, user_id={self.user_id})"

    # ---------- files (tinyim.client.files): upload, send as a FILE / IMAGE message, download ----------
    async def upload_file(self, path: str | os.PathLike[str], *, progress: Progress | None = None) -> FileRef:
        """Upload (instantly when the server holds the same bytes); resumes by itself after a cut."""
        from .files import FileTransfers

        return await FileTransfers(self).upload(path, progress=progress)

    async def send_file(
        self,
        path: str | os.PathLike[str],
        *,
        to: int = 0,
        group: int = 0,
        progress: Progress | None = None,
        image: bool | None = None,
    ) -> Sent:
        """Upload, then send a FILE (or IMAGE: guessed from the name unless given) message naming it."""
        from .files import FileTransfers

        return await FileTransfers(self).send(path, to=to, group=group, progress=progress, image=image)

    async def download_file(
        self,
        message_or_task_id: Message | FileRef | str,
        dest: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
    ) -> Path:
        """Download a file you uploaded or were sent (dest: a file path, or a directory for its name)."""
        from .files import FileTransfers

        return await FileTransfers(self).download(message_or_task_id, dest, progress=progress)

    # ---------- user search ----------
    async def search_users(
        self, username: str = "", nickname_prefix: str = "", limit: int = 20, cursor: str = ""
    ) -> tuple[list[User], str]:
        """Exactly one of username (exact) or nickname_prefix (paged: pass the returned cursor for the
        next page; "" = no more). Searches are rate-limited per user (ERR_RATE_LIMITED)."""
        req = pb.UserSearchReq(username=username, nickname_prefix=nickname_prefix, limit=limit, cursor=cursor)
        resp = await self._call(Cmd.CMD_USER_SEARCH_REQ, req, pb.UserSearchResp)
        return [_user(u) for u in resp.users], resp.next_cursor

    async def hidden_from_nickname_search(self) -> bool:
        resp = await self._call(Cmd.CMD_PRIVACY_GET_REQ, pb.PrivacyGetReq(), pb.PrivacyGetResp)
        return resp.settings.hide_from_nickname_search

    async def set_hidden_from_nickname_search(self, hidden: bool) -> bool:
        """Opt out of (or back into) nickname-prefix search; an exact username search still finds you."""
        req = pb.PrivacySetReq(settings=pb.PrivacySettings(hide_from_nickname_search=hidden))
        resp = await self._call(Cmd.CMD_PRIVACY_SET_REQ, req, pb.PrivacySetResp)
        return resp.settings.hide_from_nickname_search

    # ---------- group owner actions (each reaches every member as a SYSTEM event) ----------
    async def transfer_group(self, group_id: int, new_owner_id: int) -> None:
        req = pb.GroupTransferReq(group_id=group_id, new_owner_id=new_owner_id)
        await self._call(Cmd.CMD_GROUP_TRANSFER_REQ, req, pb.GroupTransferResp)

    async def set_group_admin(self, group_id: int, member_id: int, admin: bool = True) -> None:
        req = pb.GroupAdminReq(group_id=group_id, member_id=member_id, admin=admin)
        await self._call(Cmd.CMD_GROUP_ADMIN_REQ, req, pb.GroupAdminResp)

    async def update_group(
        self, group_id: int, *, name: str | None = None, announcement: str | None = None
    ) -> GroupSummary:
        """Rename and/or set the announcement ("" clears it); returns the group as stored."""
        req = pb.GroupUpdateReq(group_id=group_id)
        if name is not None:
            req.group_name = name
        if announcement is not None:
            req.announcement = announcement
        g = (await self._call(Cmd.CMD_GROUP_UPDATE_REQ, req, pb.GroupUpdateResp)).group
        return GroupSummary(g.group_id, g.group_name, g.owner_id, g.member_count, g.announcement)

    async def dissolve_group(self, group_id: int) -> None:
        req = pb.GroupDissolveReq(group_id=group_id)
        await self._call(Cmd.CMD_GROUP_DISSOLVE_REQ, req, pb.GroupDissolveResp)

    # ---------- online status and typing ----------
    async def set_status(self, status: str) -> UserStatus:
        """ "away" (kept until you set "online", across reconnects) or "online" (automatic: away only
        while every device of yours is idle). Returns your status now."""
        if status not in ("online", "away"):
            raise ValueError('status must be "online" or "away"')
        req = pb.StatusSetReq(status=cast(Any, STATUS_VALUES[status]))
        return user_status((await self._call(Cmd.CMD_STATUS_SET_REQ, req, pb.StatusSetResp)).status)

    async def query_statuses(self, user_ids: list[int]) -> list[UserStatus]:
        """Your friends' status (at most 200 ids); ids whose status you may not see are left out."""
        req = pb.StatusQueryReq(user_ids=user_ids)
        resp = await self._call(Cmd.CMD_STATUS_QUERY_REQ, req, pb.StatusQueryResp)
        found = [user_status(s) for s in resp.statuses]
        self.statuses.update((s.user_id, s) for s in found)
        return found

    async def next_status(self, timeout: float = 10.0) -> UserStatus:
        """The next pushed status change of a friend."""
        return await asyncio.wait_for(self._status_queue.get(), timeout)

    async def typing(self, peer_id: int, stopped: bool = False) -> None:
        """Tell a friend you are typing (send again every few seconds while typing; rate-limited)."""
        await self._call(Cmd.CMD_TYPING_REQ, pb.TypingReq(peer_id=peer_id, stopped=stopped), pb.TypingResp)

    async def next_typing(self, timeout: float = 10.0) -> Typing:
        return await asyncio.wait_for(self._typing_queue.get(), timeout)

    def _refresh_statuses_soon(self) -> None:
        """After a reconnect: query again every user whose status this client holds; changes missed
        meanwhile are delivered like pushes."""
        held = dict(list(self.statuses.items())[:200])
        if not held:
            return

        async def refresh() -> None:
            with contextlib.suppress(ServerError, ConnectionLost, TimeoutError, Kicked):
                for status in await self.query_statuses(list(held)):
                    if status == held.get(status.user_id):
                        continue
                    _offer(self._status_queue, status)
                    if self.on_status is not None:
                        self.on_status(status)

        task = asyncio.get_running_loop().create_task(refresh())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _on_notify(self, cmd: int, body: ProtoMessage) -> None:
        """Pushes other than sync signals, read marks and kicks; unknown ones are ignored."""
        if isinstance(body, pb.StatusNotify):
            status = user_status(body.status)
            self.statuses[status.user_id] = status
            _offer(self._status_queue, status)
            if self.on_status is not None:
                self.on_status(status)
        elif isinstance(body, pb.TypingNotify):
            typing = Typing(body.user_id, body.stopped)
            _offer(self._typing_queue, typing)
            if self.on_typing is not None:
                self.on_typing(typing)

    # ---------- conversation list, pin/mute, read receipts, recall ----------
    async def conversations(self, limit: int = 20, cursor: str = "") -> tuple[list[ConversationItem], str]:
        """One page of your conversations, pinned first, then newest first; and the next page's cursor
        ("" when there is none)."""
        req = pb.ConversationListReq(limit=limit, cursor=cursor)
        resp = await self._call(Cmd.CMD_CONV_LIST_REQ, req, pb.ConversationListResp)
        return [_conversation(c) for c in resp.conversations], resp.next_cursor

    async def all_conversations(self, page: int = 100) -> list[ConversationItem]:
        items: list[ConversationItem] = []
        cursor = ""
        while True:
            got, cursor = await self.conversations(page, cursor)
            items += got
            if not cursor:
                return items

    async def pin_conversation(
        self, *, peer_id: int = 0, group_id: int = 0, pinned: bool = True
    ) -> ConversationItem:
        """Pin (or unpin) a conversation for all your devices."""
        return await self._update_conversation(
            pb.ConversationUpdateReq(peer_id=peer_id, group_id=group_id, pinned=pinned)
        )

    async def mute_conversation(
        self, *, peer_id: int = 0, group_id: int = 0, muted: bool = True
    ) -> ConversationItem:
        """Mute (or unmute) a conversation for all your devices."""
        return await self._update_conversation(
            pb.ConversationUpdateReq(peer_id=peer_id, group_id=group_id, muted=muted)
        )

    async def recall(self, msg_id: int) -> RecallResult:
        """Recall (撤回) a message: your own within 2 minutes, any group message as its owner or an admin.
        Everyone who has it gets a RECALL entry in their timeline (a RecallEvent here)."""
        resp = await self._call(Cmd.CMD_MSG_RECALL_REQ, pb.MsgRecallReq(msg_id=msg_id), pb.MsgRecallResp)
        if resp.seq_id > self.local_max_seq:
            self._schedule_sync()  # this device gets no push for its own RECALL entry (as for a send)
        return RecallResult(msg_id, resp.seq_id, resp.already_recalled)

    async def group_read_count(self, group_id: int, msg_ids: list[int]) -> dict[int, ReadCount]:
        """How many members read group messages you sent (others' messages are left out)."""
        req = pb.GroupReadCountReq(group_id=group_id, msg_ids=msg_ids)
        resp = await self._call(Cmd.CMD_GROUP_READ_COUNT_REQ, req, pb.GroupReadCountResp)
        return {c.msg_id: ReadCount(c.msg_id, c.read, c.total) for c in resp.counts}

    async def events(self) -> AsyncIterator[ClientEvent]:
        """Read receipts (ReceiptEvent), recalls (RecallEvent) and pin/mute changes made on your other
        devices (ConversationEvent), as they arrive."""
        while True:
            yield await self._events.get()

    async def next_event(self, timeout: float = 10.0) -> ClientEvent:
        return await asyncio.wait_for(self._events.get(), timeout)

    async def _update_conversation(self, req: pb.ConversationUpdateReq) -> ConversationItem:
        resp = await self._call(Cmd.CMD_CONV_UPDATE_REQ, req, pb.ConversationUpdateResp)
        return _conversation(resp.conversation)

    def _conversation_push(self, body: ProtoMessage) -> None:
        if isinstance(body, pb.ReceiptNotify):
            self.receipts[body.peer_id] = max(self.receipts.get(body.peer_id, 0), body.read_seq)
            self._events.put_nowait(ReceiptEvent(body.peer_id, body.read_seq))
        elif isinstance(body, pb.ConversationNotify):
            self._events.put_nowait(ConversationEvent(body.peer_id, body.group_id, body.pinned, body.muted))

    def _recall_entry(self, message: Message) -> None:
        try:
            content = json.loads(message.content)
            msg_id, by = int(content["msg_id"]), int(content["by"])
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable RECALL entry %s", message.msg_id)
            return
        self.recalled[msg_id] = by
        peer_id = 0 if message.group_id else (message.receiver_id if message.is_mine else message.sender_id)
        self._events.put_nowait(RecallEvent(msg_id, by, peer_id, message.group_id, message.seq_id))

    # ---------- PC client: finding people ----------
    async def find_user(self, who: str) -> User:
        """A user by exact username (through user search), or by id written "#12" (an id finds only
        users you have a reason to see: friends, requests, your groups' members; others by username)."""
        who = who.strip()
        if who.startswith("#") and who[1:].isdigit():
            users = await self.users([int(who[1:])])
        else:
            found, _ = await self.search_users(username=who, limit=1)
            users = [u for u in found if u.username == who]
        if not users:
            raise ServerError("not_found", f"no user {who!r}")
        return users[0]


def _offer(queue: asyncio.Queue[Any], item: Any) -> None:
    """Queue a push; when nobody takes them, the oldest make room (the latest state is what counts)."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)


def _conversation(c: pb.ConversationInfo) -> ConversationItem:
    return ConversationItem(
        c.peer_id, c.group_id, c.last_seq, c.last_msg_id, c.last_sender_id, int(c.last_type), c.preview,
        c.last_time, c.unread, c.read_seq, c.peer_read_seq, c.pinned, c.muted,
    )  # fmt: skip
