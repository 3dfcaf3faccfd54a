"""Python client SDK for TinyIM (used by the PC client, the tests and the benchmarks)."""

# PC client: the conversation list built from the synced timeline
from tinyim.client.conversations import (
    Conversation,
    ConversationBook,
    FriendRequest,
    JoinRequest,
    conversation_key,
    describe,
    file_of,
    notice_of,
)
from tinyim.client.sdk import (
    DEVICE_IDS,
    Client,
    ConnectionLost,
    GroupSummary,
    Kicked,
    Message,
    Sent,
    ServerError,
    Unread,
    User,
    register,
)
from tinyim.client.seqstore import FileSeqStore, MemorySeqStore, SeqStore

__all__ = [
    "DEVICE_IDS",
    "Client",
    "ConnectionLost",
    # PC client
    "Conversation",
    "ConversationBook",
    "FileSeqStore",
    "FriendRequest",
    "GroupSummary",
    "JoinRequest",
    "Kicked",
    "MemorySeqStore",
    "Message",
    "Sent",
    "SeqStore",
    "ServerError",
    "Unread",
    "User",
    "conversation_key",
    "describe",
    "file_of",
    "notice_of",
    "register",
]
