"""The frame codec: every check of the spec's protocol table, and no unhandled exception on any input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import (
    HEADER_SIZE,
    PUSH_COMMANDS,
    REQUEST_COMMANDS,
    Cmd,
    ErrorCode,
    FrameError,
    decode,
    encode,
    message_class,
    parse_body,
)

known = st.sampled_from(sorted(int(c) for c in Cmd))


@given(cmd=known, body=st.binary(max_size=2048))
def test_encode_decode_round_trip(cmd: int, body: bytes) -> None:
    data = encode(cmd, body)
    assert len(data) == HEADER_SIZE + len(body)
    assert data[:3] == b"IM\x01"
    frame = decode(data)
    assert (frame.cmd, frame.body) == (cmd, body)


def test_header_is_network_order() -> None:
    assert encode(Cmd.CMD_MSG_SEND_REQ, b"abc") == b"IM\x01\x20\x01\x00\x00\x00\x03abc"


@given(st.binary(max_size=600))
def test_garbage_never_raises_anything_but_frame_error(data: bytes) -> None:
    try:
        frame = decode(data, max_body=512)
    except FrameError as exc:
        assert isinstance(exc.code, ErrorCode)
        return
    try:
        parse_body(frame.cmd, frame.body)
    except FrameError as exc:
        assert exc.code in (ErrorCode.ERR_BAD_BODY, ErrorCode.ERR_UNKNOWN_CMD)


@given(
    cmd=known,
    body=st.binary(max_size=64),
    flip=st.integers(min_value=0, max_value=8),
    byte=st.integers(0, 255),
)
def test_any_corrupted_header_is_caught_or_still_valid(cmd: int, body: bytes, flip: int, byte: int) -> None:
    data = bytearray(encode(cmd, body))
    data[flip] = byte
    try:
        frame = decode(bytes(data))
    except FrameError:
        return
    # A corruption that decodes must still be a well-formed frame of a known command.
    assert frame.cmd in {int(c) for c in Cmd} and len(frame.body) == len(data) - HEADER_SIZE


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"XX\x01\x10\x03\x00\x00\x00\x00", ErrorCode.ERR_BAD_FRAME),  # magic 'X','X'
        (b"IM\x02\x10\x03\x00\x00\x00\x00", ErrorCode.ERR_BAD_FRAME),  # version 2
        (b"IM\x01\x10\x03\x00\x00\x00\x64" + b"x" * 10, ErrorCode.ERR_BAD_FRAME),  # says 100, has 10
        (b"IM\x01\x10\x03\x00\x00\x00\x01" + b"xy", ErrorCode.ERR_BAD_FRAME),  # trailing byte
        (b"IM\x01\x10", ErrorCode.ERR_BAD_FRAME),  # shorter than a header
        (b"", ErrorCode.ERR_BAD_FRAME),
        (struct.pack(">2sBHI", b"IM", 1, 0x1003, 1 << 20), ErrorCode.ERR_FRAME_TOO_LARGE),
        (encode(0x7777), ErrorCode.ERR_UNKNOWN_CMD),
        (encode(0), ErrorCode.ERR_UNKNOWN_CMD),
    ],
)
def test_protocol_table_checks(data: bytes, code: ErrorCode) -> None:
    with pytest.raises(FrameError) as exc:
        decode(data, max_body=64 * 1024)
    assert exc.value.code == code and exc.value.message


def test_error_keeps_the_cmd_when_the_header_was_readable() -> None:
    with pytest.raises(FrameError) as exc:
        decode(b"IM\x01\x20\x01\x00\x00\x00\x05ab")
    assert exc.value.cmd == Cmd.CMD_MSG_SEND_REQ


def test_protobuf_round_trip_of_a_send_request() -> None:
    req = pb.MsgSendReq(receiver_id=42, content="你好, bob", client_msg_id="c-1")
    parsed = parse_body(
        Cmd.CMD_MSG_SEND_REQ, decode(encode(Cmd.CMD_MSG_SEND_REQ, req.SerializeToString())).body
    )
    assert isinstance(parsed, pb.MsgSendReq)
    assert (parsed.receiver_id, parsed.content, parsed.client_msg_id) == (42, "你好, bob", "c-1")


def test_garbage_body_is_bad_body() -> None:
    with pytest.raises(FrameError) as exc:
        parse_body(Cmd.CMD_MSG_SEND_REQ, b"\xff\xff\xff\xff")
    assert exc.value.code == ErrorCode.ERR_BAD_BODY


def test_command_table_is_the_spec_s() -> None:
    spec = {"CMD_LOGIN_REQ": 0x1001, "CMD_MSG_SYNC_REQ": 0x2004, "CMD_GROUP_MEMBER_RESP": 0x4010}
    assert {name: int(Cmd[name]) for name in spec} == spec and int(Cmd.CMD_ERROR_RESP) == 0x1FFF
    assert {int(c) for c in Cmd} == {v for _, v in pb.Cmd.items() if v}
    assert {0x2003, 0x1005, 0x200C} <= PUSH_COMMANDS
    assert {0x2014, 0x2015} <= PUSH_COMMANDS  # conversation changes, read receipts
    assert {0x1014, 0x2032} <= PUSH_COMMANDS  # online status, typing
    assert 0x2004 in REQUEST_COMMANDS and 0x2005 not in REQUEST_COMMANDS
    for cmd in Cmd:
        if cmd != Cmd.CMD_FILE_DATA_TRANS:
            assert message_class(cmd) is not None, cmd.name
