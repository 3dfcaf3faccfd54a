"""Protobuf's base-128 varint, for the few places that append a field to serialized bytes by hand (a
push's message, each owner's seq of a shared message) instead of building a message to serialize."""

from __future__ import annotations


def varint(n: int) -> bytes:
    """`n` (>= 0) as a protobuf varint: 7 bits a byte, low bits first, the high bit set but on the last."""
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
