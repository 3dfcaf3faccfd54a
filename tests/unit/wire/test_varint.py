"""The hand-written varint equals protobuf's own encoding of the same number."""

from __future__ import annotations

from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire.varint import varint


def test_varint_matches_protobuf_at_every_byte_boundary() -> None:
    assert pb.MessageData.FromString(b"\x10" + varint(0)).seq_id == 0  # proto3 does not write a zero
    for n in (1, 127, 128, 255, 300, 16_383, 16_384, 2**21 - 1, 2**21, 2**35, 2**63 - 1, 2**64 - 1):
        # MessageData.seq_id is field 2, a uint64: tag byte 0x10, then the varint
        assert b"\x10" + varint(n) == pb.MessageData(seq_id=n).SerializeToString(), n
