"""The scriptable PC commands: `tinyim send`, `tinyim tail`, `tinyim upload`, `tinyim download`.

Each logs in through the SDK, does one thing and exits: 0 on success, 1 on a server error (message on
stderr), 3 when the session was taken over by another login ("logged in elsewhere").
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import httpx

from tinyim.client import (
    Client,
    ConnectionLost,
    Kicked,
    Message,
    ServerError,
    User,
    conversation_key,
    describe,
    file_of,
)
from tinyim.pb import im_protocol_pb2 as pb

from .account import Account
from .progress import transfer_bar

TYPE_NAMES: dict[int, str] = {
    pb.TEXT: "text",
    pb.IMAGE: "image",
    pb.FILE: "file",
    pb.SYSTEM: "system",
    pb.FRIEND_REQ: "friend_req",
}
EXIT_ERROR, EXIT_KICKED = 1, 3


def _client(account: Account) -> Client:
    # The scriptable commands keep no local seq: they sync from the start and show only what is new
    # (tail --history shows the whole timeline first).
    return Client(account.server, account.username, account.password, account.device_id)


class Names:
    """user id -> "Nickname (username)", fetched in batches and cached."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.users: dict[int, User] = {}

    async def learn(self, user_ids: list[int]) -> None:
        missing = sorted({u for u in user_ids if u and u not in self.users})
        for i in range(0, len(missing), 100):
            for user in await self._client.users(missing[i : i + 100]):
                self.users[user.user_id] = user

    def __call__(self, user_id: int) -> str:
        user = self.users.get(user_id)
        return user.username if user else f"#{user_id}"


def message_json(message: Message, names: Names) -> dict[str, Any]:
    """One message as a JSON object (what `tinyim tail --json` prints, one per line)."""
    peer, _group = conversation_key(message)
    return {
        "seq_id": message.seq_id,
        "msg_id": message.msg_id,
        "type": TYPE_NAMES.get(int(message.type), str(message.type)),
        "sender_id": message.sender_id,
        "sender": names(message.sender_id),
        "receiver_id": message.receiver_id,
        "group_id": message.group_id,
        "peer_id": peer,
        "is_mine": message.is_mine,
        "content": message.content,
        "text": describe(message, names),
        "file": file_of(message),
        "create_time": message.create_time,
        "client_msg_id": message.client_msg_id,
    }


def message_line(message: Message, names: Names) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(message.create_time / 1000))
    where = f"[group {message.group_id}] " if message.group_id else ""
    if message.is_mine and not message.group_id:
        where = f"[to {names(message.receiver_id)}] "
    return f"{stamp} {where}{names(message.sender_id)}: {describe(message, names)}"


async def _target(client: Client, to: str | None, group: int | None) -> tuple[int, int]:
    if group:
        return 0, group
    if not to:
        raise ServerError("invalid_argument", "give --to USER or --group GROUP_ID")
    return (await client.find_user(to)).user_id, 0


async def send(
    account: Account,
    *,
    to: str | None,
    group: int | None,
    text: str | None,
    file: Path | None = None,
    image: bool | None = None,
    as_json: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    client = _client(account)  # reconnects by itself (ClientOptions.reconnect)
    try:
        await client.start()
        peer, group_id = await _target(client, to, group)
        results = []
        if file is not None:
            with transfer_bar(f"send {file.name}") as progress:
                sent = await client.send_file(file, to=peer, group=group_id, progress=progress, image=image)
            results.append(sent)
        if text:
            results.append(await client.send(receiver_id=peer, group_id=group_id, content=text))
        for sent in results:
            if as_json:
                out.write(json.dumps({"msg_id": sent.msg_id, "seq_id": sent.seq_id}) + "\n")
            else:
                out.write(f"sent msg_id={sent.msg_id} seq={sent.seq_id}\n")
        out.flush()
        return 0
    finally:
        await client.close()


async def tail(
    account: Account,
    *,
    as_json: bool,
    count: int = 0,
    timeout: float = 0.0,
    history: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Print incoming timeline entries until `count` were printed, `timeout` s passed, or Ctrl-C."""
    client = _client(account)
    names = Names(client)
    printed = 0

    async def emit(message: Message) -> None:
        nonlocal printed
        await names.learn([message.sender_id, message.receiver_id])
        out.write(
            json.dumps(message_json(message, names)) + "\n"
            if as_json
            else message_line(message, names) + "\n"
        )
        out.flush()
        printed += 1

    try:
        await client.start()
        backlog = client.take_delivered()
        err.write(f"tinyim tail: listening as {client.username} (#{client.user_id}), {account.device_id}\n")
        err.flush()
        if history:
            for message in backlog:
                await emit(message)
        deadline = time.monotonic() + timeout if timeout else None
        while not count or printed < count:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            waiter = asyncio.ensure_future(
                client.next_message(timeout=3600 if remaining is None else remaining)
            )
            kicked = asyncio.ensure_future(client.kicked.wait())
            done, _ = await asyncio.wait({waiter, kicked}, return_when=asyncio.FIRST_COMPLETED)
            kicked.cancel()
            if waiter not in done:
                waiter.cancel()
                err.write(f"tinyim tail: logged in elsewhere ({client.kick_reason or 'kicked'})\n")
                return EXIT_KICKED
            try:
                message = waiter.result()
            except TimeoutError:
                continue
            await emit(message)
        return 0
    finally:
        await client.close()


async def upload(account: Account, path: Path, *, as_json: bool = False, out: TextIO = sys.stdout) -> int:
    client = _client(account)
    try:
        await client.start()
        with transfer_bar(f"upload {path.name}") as progress:
            ref = await client.upload_file(path, progress=progress)
        info = {"task_id": ref.task_id, "file_name": ref.file_name, "size": ref.size, "md5": ref.md5}
        out.write(
            json.dumps(info) + "\n" if as_json else f"uploaded {ref.file_name}: task_id={ref.task_id}\n"
        )
        out.flush()
        return 0
    finally:
        await client.close()


async def download(
    account: Account, task_id: str, dest: Path, *, as_json: bool = False, out: TextIO = sys.stdout
) -> int:
    client = _client(account)
    try:
        await client.start()
        with transfer_bar(f"download task {task_id}") as progress:
            path = await client.download_file(task_id, dest, progress=progress)
        out.write(json.dumps({"path": str(path)}) + "\n" if as_json else f"downloaded {path}\n")
        out.flush()
        return 0
    finally:
        await client.close()


def run(coro: Any, err: TextIO = sys.stderr) -> int:
    """Run one command; server errors become a message and exit code 1, not a traceback."""
    try:
        return int(asyncio.run(coro))
    except KeyboardInterrupt:
        return 130
    except Kicked as exc:
        err.write(f"tinyim: logged in elsewhere ({exc})\n")
        return EXIT_KICKED
    except (ServerError, ConnectionLost, OSError, TimeoutError, httpx.HTTPError) as exc:
        err.write(f"tinyim: {exc}\n")
        return EXIT_ERROR
    except AttributeError as exc:
        if "upload_file" in str(exc) or "send_file" in str(exc) or "download_file" in str(exc):
            err.write("tinyim: file transfer is not available in this build of the SDK\n")
            return EXIT_ERROR
        raise
