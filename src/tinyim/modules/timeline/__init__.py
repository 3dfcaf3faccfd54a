"""timeline: messages written into every owner's timeline with a gapless per-owner seq; push then pull."""

# conversation list, read receipts, recall
from tinyim.modules.timeline.domain import (
    CLIENT_TYPES,
    Appended,
    Conversation,
    ConversationPage,
    ConversationView,
    ConvType,
    MessageBody,
    MsgType,
    ReadCount,
    RecallResult,
    SendRequest,
    SendResult,
    StoredMessage,
    SyncPage,
    TimelineSlot,
    Unread,
)
from tinyim.modules.timeline.ports import (
    GroupRoles,
    IdGenerator,
    MessagingPolicy,
    NoticeApi,
    PushNotifier,
    TimelineApi,
    TimelineStore,
)
from tinyim.modules.timeline.service import TimelineService, TimelineWriter

__all__ = [
    "CLIENT_TYPES",
    "Appended",
    "ConvType",
    "Conversation",
    "ConversationPage",
    "ConversationView",
    "GroupRoles",
    "IdGenerator",
    "MessageBody",
    "MessagingPolicy",
    "MsgType",
    "NoticeApi",
    "PushNotifier",
    "ReadCount",
    "RecallResult",
    "SendRequest",
    "SendResult",
    "StoredMessage",
    "SyncPage",
    "TimelineApi",
    "TimelineService",
    "TimelineSlot",
    "TimelineStore",
    "TimelineWriter",
    "Unread",
]
