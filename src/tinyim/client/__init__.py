"""Python client SDK for TinyIM (used by the PC client, the tests and the benchmarks)."""

from tinyim.client.errors import ConnectionLost, Kicked, ServerError
from tinyim.client.files import FileRef, FileTransfers
from tinyim.client.models import (
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
from tinyim.client.options import ClientOptions
from tinyim.client.sdk import Client
from tinyim.client.seqstore import FileSeqStore, MemorySeqStore, SeqStore
from tinyim.client.session import register
from tinyim.client.status import Typing, UserStatus

__all__ = [
    "Client",
    "ClientEvent",
    "ClientOptions",
    "ConnectionLost",
    "ConversationEvent",
    "ConversationItem",
    "FileRef",
    "FileSeqStore",
    "FileTransfers",
    "GroupSummary",
    "Kicked",
    "MemorySeqStore",
    "Message",
    "ReadCount",
    "RecallEvent",
    "RecallResult",
    "ReceiptEvent",
    "Sent",
    "SeqStore",
    "ServerError",
    "Typing",
    "Unread",
    "User",
    "UserStatus",
    "register",
]

# PC client: the conversation list built from the synced timeline, the device types
from tinyim.client.conversations import (
    Conversation,
    ConversationBook,
    ConvKey,
    FriendRequest,
    JoinRequest,
    conversation_key,
    describe,
    file_of,
    notice_of,
)
from tinyim.client.models import DEVICE_IDS

__all__ += [
    "DEVICE_IDS",
    "ConvKey",
    "Conversation",
    "ConversationBook",
    "FriendRequest",
    "JoinRequest",
    "conversation_key",
    "describe",
    "file_of",
    "notice_of",
]
