"""Command routing (spec test plan D: cmd 0x2001 reaches the send handler), errors, settings."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from tests.unit.fakes import FakeUsers, RecordingNotices
from tests.unit.presence.test_presence_and_hub import connection
from tinyim.edges.gateway.hub import GatewayHub
from tinyim.edges.gateway.router import CommandRouter
from tinyim.infra.db import replica_status_ok
from tinyim.kernel import NOT_FOUND, Caller, ImError
from tinyim.modules.presence.adapters.memory import InMemorySessionDirectory
from tinyim.modules.relation import RelationService
from tinyim.modules.relation.adapters.memory import InMemoryRelationStore
from tinyim.modules.relation.adapters.memory_unit_of_work import InMemoryRelationUnits
from tinyim.modules.timeline import (
    Conversation,
    ConversationPage,
    ConversationView,
    ReadCount,
    RecallResult,
    SendRequest,
    SendResult,
    StoredMessage,
    SyncPage,
    Unread,
)
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.settings import Settings
from tinyim.wire import Cmd, ErrorCode, decode, encode
from tinyim.wire.codec import Frame


class FakeTimeline:
    def __init__(self, error: Exception | None = None) -> None:
        self.sent: list[tuple[Caller, SendRequest]] = []
        self.synced: list[tuple[Caller, int, int]] = []
        self.error = error
        self.listed: list[tuple[Caller, int, str]] = []
        self.updates: list[tuple[Caller, Conversation, bool | None, bool | None]] = []
        self.recalls: list[tuple[Caller, int]] = []

    async def send(self, caller: Caller, req: SendRequest) -> SendResult:
        if self.error:
            raise self.error
        self.sent.append((caller, req))
        return SendResult(77, 3, 1234, False)

    async def sync(self, caller: Caller, after_seq: int, limit: int, min_seq: int = 0) -> SyncPage:
        self.synced.append((caller, after_seq, limit))
        return SyncPage(0, [], False)

    async def history(
        self, caller: Caller, conversation: Conversation, before_seq: int, limit: int
    ) -> tuple[list[StoredMessage], bool]:
        return [], False

    async def mark_read(self, caller: Caller, conversation: Conversation, read_seq: int) -> int:
        return read_seq

    async def unread(self, caller: Caller) -> list[Unread]:
        return []

    # conversation list, pin/mute, recall, group read counts
    async def conversations(self, caller: Caller, limit: int, cursor: str) -> ConversationPage:
        self.listed.append((caller, limit, cursor))
        return ConversationPage([], "")

    async def update_conversation(
        self, caller: Caller, conversation: Conversation, pinned: bool | None, muted: bool | None
    ) -> ConversationView:
        self.updates.append((caller, conversation, pinned, muted))
        return ConversationView(conversation, 4, 5, 6, 0, "p", 1, 2, 3, bool(pinned), bool(muted))

    async def recall(self, caller: Caller, msg_id: int) -> RecallResult:
        self.recalls.append((caller, msg_id))
        return RecallResult(msg_id, 9)

    async def group_read_counts(
        self, caller: Caller, group_id: int, msg_ids: Sequence[int]
    ) -> list[ReadCount]:
        return [ReadCount(m, 1, 2) for m in msg_ids]


def router(timeline: FakeTimeline) -> CommandRouter:
    store = InMemoryRelationStore()
    relation = RelationService(
        store, FakeUsers(1, 5, 9), RecordingNotices(), units=InMemoryRelationUnits(store)
    )
    return CommandRouter(timeline, relation, GatewayHub("gw", InMemorySessionDirectory()))


async def test_send_request_reaches_the_send_handler_with_the_session_identity() -> None:
    timeline = FakeTimeline()
    conn, _ = connection(5, "Web")
    body = pb.MsgSendReq(receiver_id=9, content="hi", client_msg_id="c").SerializeToString()
    out = decode(await router(timeline).handle(conn, Frame(Cmd.CMD_MSG_SEND_REQ, body)))
    assert out.cmd == Cmd.CMD_MSG_SEND_RESP
    assert pb.MsgSendResp.FromString(out.body).msg_id == 77
    assert timeline.sent == [(Caller(5, "Web"), SendRequest(9, 0, 0, "hi", "c"))]


async def test_friend_commands_reach_the_relation_module_as_the_session_user() -> None:
    conn, _ = connection(5, "PC")
    r = router(FakeTimeline())
    body = pb.FriendApplyReq(target_user_id=9, reason="hi").SerializeToString()
    out = decode(await r.handle(conn, Frame(Cmd.CMD_FRIEND_APPLY_REQ, body)))
    assert out.cmd == Cmd.CMD_FRIEND_APPLY_RESP and pb.FriendApplyResp.FromString(out.body).success
    again = decode(await r.handle(conn, Frame(Cmd.CMD_FRIEND_APPLY_REQ, body)))
    assert int(pb.ErrorResp.FromString(again.body).code) == ErrorCode.ERR_ALREADY_EXISTS


async def test_sync_ignores_the_user_id_in_the_body() -> None:
    timeline = FakeTimeline()
    conn, _ = connection(5, "PC")
    body = pb.MsgSyncReq(user_id=6, local_max_seq=4, limit=20).SerializeToString()
    await router(timeline).handle(conn, Frame(Cmd.CMD_MSG_SYNC_REQ, body))
    assert timeline.synced == [(Caller(5, "PC"), 4, 20)]


@pytest.mark.parametrize(
    ("cmd", "body", "timeline", "code"),
    [
        (Cmd.CMD_MSG_PUSH_NOTIFY, b"", FakeTimeline(), ErrorCode.ERR_NOT_A_REQUEST),
        (Cmd.CMD_MSG_SEND_RESP, b"", FakeTimeline(), ErrorCode.ERR_NOT_A_REQUEST),
        (Cmd.CMD_FILE_UPLOAD_REQ, b"", FakeTimeline(), ErrorCode.ERR_UNIMPLEMENTED),
        (Cmd.CMD_READ_NOTIFY, b"", FakeTimeline(), ErrorCode.ERR_NOT_A_REQUEST),
        (
            Cmd.CMD_FRIEND_APPLY_REQ,
            pb.FriendApplyReq(target_user_id=404).SerializeToString(),
            FakeTimeline(),
            ErrorCode.ERR_NOT_FOUND,
        ),
        (Cmd.CMD_LOGIN_REQ, b"", FakeTimeline(), ErrorCode.ERR_INVALID_ARGUMENT),
        (Cmd.CMD_MSG_SEND_REQ, b"\xff\xff", FakeTimeline(), ErrorCode.ERR_BAD_BODY),
        (
            Cmd.CMD_MSG_SEND_REQ,
            b"",
            FakeTimeline(ImError(NOT_FOUND, "no such user")),
            ErrorCode.ERR_NOT_FOUND,
        ),
        (Cmd.CMD_MSG_SEND_REQ, b"", FakeTimeline(RuntimeError("db down")), ErrorCode.ERR_INTERNAL),
    ],
)
async def test_every_failure_is_an_error_frame_naming_the_request(
    cmd: int, body: bytes, timeline: FakeTimeline, code: ErrorCode
) -> None:
    conn, _ = connection(1, "PC")
    out = decode(await router(timeline).handle(conn, Frame(cmd, body)))
    err = pb.ErrorResp.FromString(out.body)
    assert (out.cmd, int(err.code), err.cmd) == (Cmd.CMD_ERROR_RESP, code, cmd) and err.message


def test_settings_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("IM_HTTP_PORT", "IM_ROLES", "IM_DATABASE_URL", "IM_DATA_DIR"):
        monkeypatch.delenv(key, raising=False)
    s = Settings()
    assert (s.host, s.http_port, s.file_port, s.roles) == ("127.0.0.1", 8080, 8090, "all")
    assert s.effective_database_url.startswith("sqlite+aiosqlite:///") and s.heartbeat_timeout_seconds == 60


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IM_HTTP_PORT", "9999")
    monkeypatch.setenv("IM_ROLES", "msg, gateway")
    monkeypatch.setenv("IM_DATABASE_URL", "mysql+asyncmy://root@127.0.0.1/im")
    monkeypatch.setenv("IM_REDIS_URL", "redis://127.0.0.1:6379/0")
    s = Settings()
    assert s.http_port == 9999 and s.role_set == {"gateway", "msg"} and s.effective_grpc_port == 10999
    assert (s.placement("msg"), s.placement("auth"), s.registry_kind) == ("local", "remote", "redis")
    assert s.node_id("gateway") == "gw-127.0.0.1:9999" and s.node_id("msg") == "msg-127.0.0.1:10999"


def test_one_process_has_every_role_locally_and_no_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("IM_ROLES", "IM_REDIS_URL", "IM_ETCD_ENDPOINTS"):
        monkeypatch.delenv(key, raising=False)
    s = Settings()
    assert {s.placement(r) for r in ("dispatch", "gateway", "auth", "user", "msg")} == {"local"}
    assert s.registry_kind == "none"


def test_a_role_per_process_needs_shared_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IM_ROLES", "gateway")
    monkeypatch.delenv("IM_REDIS_URL", raising=False)
    with pytest.raises(ValidationError, match="IM_DATABASE_URL and IM_REDIS_URL"):
        Settings()


@pytest.mark.parametrize(
    ("key", "value"),
    [("IM_ROLES", "gateway,bogus"), ("IM_HTTP_PORT", "70000"), ("IM_ROLES", " , "), ("IM_WORKER_ID", "1024")],
)
def test_bad_settings_fail_clearly(monkeypatch: pytest.MonkeyPatch, key: str, value: str) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        Settings()


def test_encode_refuses_out_of_range_cmd() -> None:
    with pytest.raises(ValueError, match="uint16"):
        encode(0x10000)


def test_tokens_are_redacted_from_log_lines() -> None:
    import logging

    from tinyim.infra.logging import RedactTokens

    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        "",
        0,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", "/ws?token=eyJhbGciOi.secret.sig&device_id=PC"),
        None,
    )
    assert RedactTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "WebSocket /ws?token=[redacted]&device_id=PC" [accepted]'


@pytest.mark.parametrize(
    ("row", "ok"),
    [
        (None, True),  # a plain read endpoint
        ({"Replica_IO_Running": "Yes", "Replica_SQL_Running": "Yes", "Seconds_Behind_Source": 1}, True),
        ({"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": 0}, True),
        ({"Replica_IO_Running": "Yes", "Replica_SQL_Running": "No", "Seconds_Behind_Source": None}, False),
        ({"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": 9}, False),
        ({"Slave_IO_Running": "Connecting", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": 0}, False),
    ],
)
def test_replica_status_of_mysql_and_mariadb(row: dict[str, object] | None, ok: bool) -> None:
    assert replica_status_ok(row, max_lag=2.0) is ok


async def test_frames_are_counted_by_command_name_and_unknown_ids_as_unknown() -> None:
    from prometheus_client import REGISTRY

    def counted(label: str) -> float:
        return REGISTRY.get_sample_value("tinyim_ws_frames_total", {"cmd": label}) or 0.0

    before = counted("unknown"), counted("CMD_MSG_SYNC_REQ")
    conn, _ = connection(1, "PC")
    out = decode(await router(FakeTimeline()).handle(conn, Frame(0x7FFE, b"")))
    err = pb.ErrorResp.FromString(out.body)
    assert int(err.code) == ErrorCode.ERR_NOT_A_REQUEST and err.message.startswith("unknown (0x7FFE)")
    await router(FakeTimeline()).handle(conn, Frame(Cmd.CMD_MSG_SYNC_REQ, b""))
    assert (counted("unknown"), counted("CMD_MSG_SYNC_REQ")) == (before[0] + 1, before[1] + 1)
