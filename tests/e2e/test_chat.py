"""One process, real WebSockets, driven through the SDK the way a user's client would."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import Served
from tests.e2e.helpers import PASSWORD, befriend, friend_pair, new_user, online, recv_bytes
from tinyim.client import Client, ClientOptions, Kicked, MemorySeqStore, ServerError
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, ErrorCode, decode, encode

pytestmark = pytest.mark.e2e


async def test_register_login_and_chat_both_ways(deployment: Served) -> None:
    alice, alice_id, bob, bob_id = await friend_pair(deployment.base_url)
    async with online(deployment.base_url, alice) as a, online(deployment.base_url, bob) as b:
        sent = await a.send_text(bob_id, "hello bob")
        got = await b.next_message()
        assert (got.sender_id, got.receiver_id, got.content, got.msg_id) == (
            alice_id,
            bob_id,
            "hello bob",
            sent.msg_id,
        )
        assert got.client_msg_id == sent.client_msg_id and not got.is_mine
        await b.send_text(alice_id, "hi alice")
        back = await a.next_message()
        assert (back.sender_id, back.content) == (bob_id, "hi alice")
        # Alice's timeline holds her own copy first (seq from the ack); this device already had it.
        assert back.seq_id == sent.seq_id + 1 == a.local_max_seq


async def test_a_steady_conversation_needs_no_sync_per_message(deployment: Served) -> None:
    """Small messages ride in their push and a sender knows its own: neither side pulls per message."""
    alice, alice_id, bob, bob_id = await friend_pair(deployment.base_url)
    async with online(deployment.base_url, alice) as a, online(deployment.base_url, bob) as b:
        syncs = {"a": 0, "b": 0}

        def counting(name: str, client: Client) -> None:
            real = client.sync

            async def sync() -> list[object]:
                syncs[name] += 1
                return list(await real())

            client.sync = sync  # type: ignore[method-assign,assignment]

        counting("a", a)
        counting("b", b)
        for i in range(10):
            await a.send_text(bob_id, f"ping {i}")
            assert (await b.next_message()).content == f"ping {i}"
            await b.send_text(alice_id, f"pong {i}")
            assert (await a.next_message()).content == f"pong {i}"
        assert a.local_max_seq == b.local_max_seq  # both timelines hold all 20 (plus the same notices)
        # 40 deliveries and acks; before inline pushes each one cost a sync. A race may still cost one,
        # and an active client pulls once per heartbeat (20 s) in case a last push was lost.
        assert syncs["a"] + syncs["b"] <= 4, syncs


async def test_offline_user_gets_everything_in_order_on_reconnect(deployment: Served) -> None:
    alice, _, bob, bob_id = await friend_pair(deployment.base_url)
    store = MemorySeqStore()
    async with online(deployment.base_url, bob, seq_store=store) as b:
        async with online(deployment.base_url, alice) as a:
            sent = await a.send_text(bob_id, "while online")
        assert (await b.next_message()).msg_id == sent.msg_id
        base = b.local_max_seq
    async with online(deployment.base_url, alice) as a:
        for i in range(25):
            await a.send_text(bob_id, f"offline {i}")
    # Bob comes back with the local_max_seq he kept: he gets exactly the 25 he missed, in order.
    seen: list[str] = []
    async with online(
        deployment.base_url, bob, seq_store=store, on_message=lambda m: seen.append(m.content)
    ) as b:
        assert b.local_max_seq == base + 25
    assert seen == [f"offline {i}" for i in range(25)]


async def test_sync_pages_with_has_more(deployment: Served) -> None:
    alice, _, bob, bob_id = await friend_pair(deployment.base_url)
    async with online(deployment.base_url, alice) as a:
        for i in range(7):
            await a.send_text(bob_id, f"m{i}")
    async with online(
        deployment.base_url, bob, options=ClientOptions(heartbeat_interval=5, sync_limit=3)
    ) as b:
        resp = await b.request(Cmd.CMD_MSG_SYNC_REQ, pb.MsgSyncReq(local_max_seq=0, limit=3))
        assert isinstance(resp, pb.MsgSyncResp)
        # seq 1 is the friend request bob received; then alice's seven messages.
        assert [m.seq_id for m in resp.msgs] == [1, 2, 3] and resp.has_more and resp.max_seq == 8
        assert resp.msgs[0].type == pb.FRIEND_REQ and resp.msgs[1].content == "m0"
        assert b.local_max_seq == 8  # the SDK followed has_more to the end


async def test_multi_device_both_receive_and_see_own_messages(deployment: Served) -> None:
    alice, alice_id, bob, bob_id = await friend_pair(deployment.base_url)
    async with (
        online(deployment.base_url, alice, "PC") as a_pc,
        online(deployment.base_url, alice, "Web") as a_web,
        online(deployment.base_url, bob, "PC") as b,
    ):
        await b.send_text(alice_id, "to both devices")
        for device in (a_pc, a_web):
            m = await device.next_message()
            assert (m.sender_id, m.content) == (bob_id, "to both devices")
        # Alice writes from PC: her Web device gets her own message (is_sender copy) by push + sync.
        sent = await a_pc.send_text(bob_id, "from my PC")
        mine = await a_web.next_message()
        assert mine.is_mine and mine.content == "from my PC" and mine.seq_id == sent.seq_id
        assert mine.receiver_id == bob_id
        assert (await b.next_message()).content == "from my PC"
        assert not a_pc.kicked.is_set() and not a_web.kicked.is_set()


async def test_same_device_relogin_kicks_the_old_session(deployment: Served) -> None:
    alice, _, bob, bob_id = await friend_pair(deployment.base_url)
    async with (
        online(deployment.base_url, alice, "PC") as first,
        online(deployment.base_url, alice, "Web") as web,
    ):
        old_token = first.token
        async with online(deployment.base_url, alice, "PC") as second:
            await asyncio.wait_for(first.kicked.wait(), 5)
            assert first.kick_reason
            assert not second.kicked.is_set() and not web.kicked.is_set()
            # The old token no longer connects.
            with pytest.raises(InvalidStatus):
                await connect(f"{first.ws_url}?token={old_token}&device_id=PC")
            # The survivors still get pushes.
            async with online(deployment.base_url, bob) as b:
                await b.send_text(second.user_id, "still here?")
            assert (await second.next_message()).content == "still here?"
            assert (await web.next_message()).content == "still here?"
            with pytest.raises(Kicked):
                await first.send_text(bob_id, "from a kicked session")


async def test_bad_frames_hurt_only_their_own_connection(deployment: Served) -> None:
    alice, _, bob, bob_id = await friend_pair(deployment.base_url)
    mallory, _ = await new_user(deployment.base_url, "mallory")
    async with online(deployment.base_url, alice) as a, online(deployment.base_url, bob) as b:
        m = Client(deployment.base_url, mallory, PASSWORD, "PC")
        await m.login()
        async with connect(f"{m.ws_url}?token={m.token}&device_id=PC") as raw:
            cases = {
                b"XX\x01\x10\x03\x00\x00\x00\x00": ErrorCode.ERR_BAD_FRAME,  # wrong magic
                b"IM\x07\x10\x03\x00\x00\x00\x00": ErrorCode.ERR_BAD_FRAME,  # wrong version
                b"IM\x01\x10\x03\x00\x00\x00\x64abc": ErrorCode.ERR_BAD_FRAME,  # length 100, body 3
                encode(0x7777, b""): ErrorCode.ERR_UNKNOWN_CMD,
                encode(Cmd.CMD_MSG_SEND_REQ, b"\xff\xff\xff\xff"): ErrorCode.ERR_BAD_BODY,
                encode(Cmd.CMD_MSG_PUSH_NOTIFY, b""): ErrorCode.ERR_NOT_A_REQUEST,
                b"IM\x01\x20\x01\x7f\xff\xff\xff": ErrorCode.ERR_FRAME_TOO_LARGE,
                b"IM": ErrorCode.ERR_BAD_FRAME,
            }
            for data, code in cases.items():
                await raw.send(data)
                frame = decode(await recv_bytes(raw))
                err = pb.ErrorResp.FromString(frame.body)
                assert (frame.cmd, int(err.code)) == (Cmd.CMD_ERROR_RESP, code), data
                # Meanwhile the others keep chatting.
                await a.send_text(bob_id, f"after {data!r}")
                assert (await b.next_message()).content == f"after {data!r}"
            await raw.send("a text frame")
            assert (
                int(pb.ErrorResp.FromString(decode(await recv_bytes(raw)).body).code)
                == ErrorCode.ERR_BAD_FRAME
            )
            # The same connection still serves good requests after bad ones.
            await raw.send(encode(Cmd.CMD_HEARTBEAT_REQ, pb.HeartbeatReq().SerializeToString()))
            assert decode(await recv_bytes(raw)).cmd == Cmd.CMD_HEARTBEAT_RESP


async def test_flood_closes_only_the_flooding_connection(deployment: Served) -> None:
    alice, _, bob, bob_id = await friend_pair(deployment.base_url)
    mallory, _ = await new_user(deployment.base_url, "mallory")
    async with online(deployment.base_url, alice) as a, online(deployment.base_url, bob) as b:
        m = Client(deployment.base_url, mallory, PASSWORD, "PC")
        await m.login()
        async with connect(f"{m.ws_url}?token={m.token}&device_id=PC") as raw:
            hb = encode(Cmd.CMD_HEARTBEAT_REQ, b"")
            codes: list[int] = []
            with pytest.raises(Exception, match=r"1008|policy|close"):
                for _ in range(2000):
                    await raw.send(hb)
                for _ in range(2000):
                    frame = decode(await recv_bytes(raw))
                    if frame.cmd == Cmd.CMD_ERROR_RESP:
                        codes.append(int(pb.ErrorResp.FromString(frame.body).code))
            assert ErrorCode.ERR_RATE_LIMITED in codes
        await a.send_text(bob_id, "unaffected")
        assert (await b.next_message()).content == "unaffected"


async def test_retried_client_msg_id_makes_no_duplicate(deployment: Served) -> None:
    alice, _, bob, bob_id = await friend_pair(deployment.base_url)
    async with online(deployment.base_url, alice) as a, online(deployment.base_url, bob) as b:
        base = b.local_max_seq
        first = await a.send_text(bob_id, "once", client_msg_id="retry-1")
        again = await a.send_text(bob_id, "once", client_msg_id="retry-1")
        assert (again.msg_id, again.seq_id, again.duplicate) == (first.msg_id, first.seq_id, True)
        await a.send_text(bob_id, "next")
        contents = [(await b.next_message()).content for _ in range(2)]
        assert contents == ["once", "next"]
        assert b.local_max_seq == base + 2


async def test_sync_naming_another_user_returns_only_the_callers_timeline(deployment: Served) -> None:
    alice, alice_id, _, bob_id = await friend_pair(deployment.base_url)
    eve, eve_id = await new_user(deployment.base_url, "eve")
    await befriend(deployment.base_url, alice, eve)
    async with online(deployment.base_url, alice) as a:
        for i in range(3):
            await a.send_text(bob_id, f"private to bob {i}")
        await a.send_text(eve_id, "hello eve")
    async with online(deployment.base_url, eve) as e:
        resp = await e.request(Cmd.CMD_MSG_SYNC_REQ, pb.MsgSyncReq(user_id=bob_id, local_max_seq=0, limit=50))
        assert isinstance(resp, pb.MsgSyncResp)
        texts = [(m.sender_id, m.receiver_id, m.content) for m in resp.msgs if m.type == pb.TEXT]
        assert texts == [(alice_id, eve_id, "hello eve")]
        assert all(bob_id not in (m.sender_id, m.receiver_id) for m in resp.msgs)
        assert resp.max_seq == len(resp.msgs) == 2  # the friend-request notice and alice's message


async def test_send_refusals_are_clear(deployment: Served) -> None:
    alice, alice_id = await new_user(deployment.base_url, "alice")
    async with online(deployment.base_url, alice) as a:
        with pytest.raises(ServerError) as missing:
            await a.send_text(987654321, "to nobody")
        assert missing.value.code == ErrorCode.ERR_NOT_FOUND
        with pytest.raises(ServerError) as myself:
            await a.send_text(alice_id, "to me")
        assert myself.value.code == ErrorCode.ERR_INVALID_ARGUMENT
        with pytest.raises(ServerError) as big:
            await a.send_text(1, "x" * 20000)
        assert big.value.code == ErrorCode.ERR_INVALID_ARGUMENT
        with pytest.raises(ServerError) as system:
            await a.send(receiver_id=1, content="fake", msg_type=pb.SYSTEM)
        assert system.value.code == ErrorCode.ERR_INVALID_ARGUMENT
        with pytest.raises(ServerError) as files:  # an upload of nothing (file transfer)
            await a.request(Cmd.CMD_FILE_UPLOAD_REQ, pb.FileUploadReq())
        assert files.value.code == ErrorCode.ERR_INVALID_ARGUMENT
        assert await a.heartbeat() > 0


async def test_bad_or_missing_token_is_refused_at_once(deployment: Served) -> None:
    ws = f"ws://127.0.0.1:{deployment.port}/ws"
    with pytest.raises(InvalidStatus):
        await connect(f"{ws}?token=not-a-token&device_id=PC")
    alice, _ = await new_user(deployment.base_url, "alice")
    c = Client(deployment.base_url, alice, PASSWORD, "PC")
    await c.login()
    with pytest.raises(InvalidStatus):  # a valid token used with another device type
        await connect(f"{ws}?token={c.token}&device_id=Web")
    tampered = c.token[:-2] + ("AA" if not c.token.endswith("AA") else "BB")
    with pytest.raises(InvalidStatus):
        await connect(f"{ws}?token={tampered}&device_id=PC")


async def test_login_frame_instead_of_url_token(deployment: Served) -> None:
    alice, alice_id = await new_user(deployment.base_url, "alice")
    c = Client(deployment.base_url, alice, PASSWORD, "Web")
    await c.login()
    ws = f"ws://127.0.0.1:{deployment.port}/ws"
    async with connect(ws) as raw:
        await raw.send(
            encode(Cmd.CMD_LOGIN_REQ, pb.LoginReq(token=c.token, device_id="Web").SerializeToString())
        )
        frame = decode(await recv_bytes(raw))
        resp = pb.LoginResp.FromString(frame.body)
        assert frame.cmd == Cmd.CMD_LOGIN_RESP and resp.success and resp.user_id == alice_id
        await raw.send(encode(Cmd.CMD_HEARTBEAT_REQ, b""))
        assert decode(await recv_bytes(raw)).cmd == Cmd.CMD_HEARTBEAT_RESP
    async with connect(ws) as raw:
        await raw.send(encode(Cmd.CMD_LOGIN_REQ, pb.LoginReq(token="forged").SerializeToString()))
        resp = pb.LoginResp.FromString(decode(await recv_bytes(raw)).body)
        assert not resp.success and resp.err_msg
        with pytest.raises(Exception, match="4401"):
            await raw.recv()
    async with connect(ws) as raw:  # anything but LoginReq first is refused
        await raw.send(encode(Cmd.CMD_MSG_SYNC_REQ, b""))
        err = pb.ErrorResp.FromString(decode(await recv_bytes(raw)).body)
        assert int(err.code) == ErrorCode.ERR_UNAUTHENTICATED


async def test_reconnect_after_a_dropped_connection_resyncs(deployment: Served) -> None:
    alice, _, bob, bob_id = await friend_pair(deployment.base_url)
    async with online(deployment.base_url, alice) as a, online(deployment.base_url, bob) as b:
        await a.send_text(bob_id, "before")
        assert (await b.next_message()).content == "before"
        await b.drop_connection()
        await a.send_text(bob_id, "during the outage")
        assert (await b.next_message(timeout=15)).content == "during the outage"
        assert b.connects >= 2
        # Sends from a client whose link dropped are retried with the same client_msg_id.
        await a.drop_connection()
        sent = await a.send_text(bob_id, "after my own outage")
        assert not sent.duplicate
        assert (await b.next_message(timeout=15)).content == "after my own outage"


async def test_logout_revokes_the_token(deployment: Served) -> None:
    alice, _ = await new_user(deployment.base_url, "alice")
    c = Client(deployment.base_url, alice, PASSWORD, "PC")
    await c.start()
    token = c.token
    await c.logout()
    async with httpx.AsyncClient(base_url=deployment.base_url) as http:
        resp = await http.get("/api/allocate_gateway", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401
    with pytest.raises(InvalidStatus):
        await connect(f"ws://127.0.0.1:{deployment.port}/ws?token={token}&device_id=PC")


async def test_tokens_never_reach_the_server_log(deployment: Served) -> None:
    alice, _ = await new_user(deployment.base_url, "alice")
    async with online(deployment.base_url, alice) as a:
        token = a.token
        await a.heartbeat()
    log = deployment.log()
    assert "WebSocket /ws?token=[redacted]" in log  # the request line is logged, without its credential
    assert token not in log and token.split(".")[2] not in log


async def test_a_sender_s_timeline_position_covers_its_own_sends(deployment: Served) -> None:
    alice, _, _, bob_id = await friend_pair(deployment.base_url)
    async with online(deployment.base_url, alice) as a:
        for i in range(3):
            sent = await a.send_text(bob_id, f"mine {i}")
        await a.wait_for_seq(sent.seq_id, timeout=5)  # no push for own messages, yet nothing lags
        with pytest.raises(TimeoutError):
            await a.next_message(timeout=0.3)  # and this device is not handed its own messages again
