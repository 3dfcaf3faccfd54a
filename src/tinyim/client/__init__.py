"""Python client SDK for TinyIM (used by the PC client, the tests and the benchmarks)."""

from tinyim.client.sdk import Client, ConnectionLost, Kicked, Message, Sent, ServerError, register
from tinyim.client.seqstore import FileSeqStore, MemorySeqStore, SeqStore

__all__ = [
    "Client",
    "ConnectionLost",
    "FileSeqStore",
    "Kicked",
    "MemorySeqStore",
    "Message",
    "Sent",
    "SeqStore",
    "ServerError",
    "register",
]
