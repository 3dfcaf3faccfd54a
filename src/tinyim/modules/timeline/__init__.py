"""timeline: messages written into every owner's timeline with a gapless per-owner seq; push then pull."""

from tinyim.modules.timeline.domain import (
    CLIENT_TYPES,
    Appended,
    Conversation,
    ConvType,
    MessageBody,
    MsgType,
    SendRequest,
    SendResult,
    StoredMessage,
    SyncPage,
    TimelineSlot,
    Unread,
)
from tinyim.modules.timeline.ports import (
    Attachments,
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
    "Attachments",
    "ConvType",
    "Conversation",
    "IdGenerator",
    "MessageBody",
    "MessagingPolicy",
    "MsgType",
    "NoticeApi",
    "PushNotifier",
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
