"""Two users, a friend request and its approval, a message each way, through the Python SDK.

Start a server (`make run`), then: .venv/bin/python examples/sdk_quickstart.py
(TINYIM_SERVER=http://host:port points it elsewhere).
"""

import asyncio
import os
import secrets

from tinyim.client import Client, Message, register
from tinyim.pb import im_protocol_pb2 as pb

SERVER = os.environ.get("TINYIM_SERVER", "http://127.0.0.1:8080")


async def next_text(client: Client) -> Message:
    """The next text message from someone else (friend requests and notices are messages too)."""
    async for message in client.messages():  # every new timeline entry, in seq order
        if message.type == pb.TEXT and not message.is_mine:
            return message
    raise RuntimeError("unreachable")


async def main() -> None:
    suffix = secrets.token_hex(3)  # fresh usernames on every run
    await register(SERVER, f"alice_{suffix}", "password1", "Alice")
    bob_id = await register(SERVER, f"bob_{suffix}", "password1", "Bob")

    # device_id is one of "PC", "Web", "Mobile", "Pad": one live session per user and device type
    # (a new login on the same type kicks the older one; other types stay online).
    alice = Client(SERVER, f"alice_{suffix}", "password1", device_id="PC")
    bob = Client(SERVER, f"bob_{suffix}", "password1", device_id="Mobile")
    await alice.start()  # login, connect, sync from the stored local_max_seq
    await bob.start()
    try:
        await alice.apply_friend(bob_id, "hi, it's Alice")
        request = await bob.next_message()  # a FRIEND_REQ message in Bob's timeline
        assert request.type == pb.FRIEND_REQ
        await bob.handle_friend(request.sender_id, agree=True)

        await alice.send_text(bob_id, "hello Bob")  # returns after the server committed it
        print("Bob got:", (await next_text(bob)).content)
        await bob.send_text(alice.user_id, "hi Alice")
        print("Alice got:", (await next_text(alice)).content)
    finally:
        await alice.close()
        await bob.close()


if __name__ == "__main__":
    asyncio.run(main())
