"""timeline: messages written into every owner's timeline with a gapless per-owner seq; push then pull."""

from tinyim.modules.timeline.domain import (
    CLIENT_TYPES,
    Appended,
    MessageBody,
    MsgType,
    SendRequest,
    SendResult,
    StoredMessage,
    SyncPage,
    TimelineSlot,
)
from tinyim.modules.timeline.ports import (
    IdGenerator,
    MessagingPolicy,
    PushNotifier,
    TimelineApi,
    TimelineStore,
)
from tinyim.modules.timeline.service import TimelineService

__all__ = [
    "CLIENT_TYPES",
    "Appended",
    "IdGenerator",
    "MessageBody",
    "MessagingPolicy",
    "MsgType",
    "PushNotifier",
    "SendRequest",
    "SendResult",
    "StoredMessage",
    "SyncPage",
    "TimelineApi",
    "TimelineService",
    "TimelineSlot",
    "TimelineStore",
]
