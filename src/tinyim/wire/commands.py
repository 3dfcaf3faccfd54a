"""The command table: cmd id -> protobuf message class, from the `Cmd` enum of im_protocol.proto."""

from __future__ import annotations

from google.protobuf.message import DecodeError, Message

from tinyim.pb import im_protocol_pb2 as pb
from tinyim.pb.enums import Cmd, ErrorCode

__all__ = [
    "KNOWN_COMMANDS",
    "PUSH_COMMANDS",
    "REQUEST_COMMANDS",
    "Cmd",
    "ErrorCode",
    "message_class",
    "parse_body",
]

_BODIES: dict[int, type[Message]] = {
    Cmd.CMD_LOGIN_REQ: pb.LoginReq,
    Cmd.CMD_LOGIN_RESP: pb.LoginResp,
    Cmd.CMD_HEARTBEAT_REQ: pb.HeartbeatReq,
    Cmd.CMD_HEARTBEAT_RESP: pb.HeartbeatResp,
    Cmd.CMD_KICK_NOTIFY: pb.KickNotify,
    Cmd.CMD_ERROR_RESP: pb.ErrorResp,
    Cmd.CMD_MSG_SEND_REQ: pb.MsgSendReq,
    Cmd.CMD_MSG_SEND_RESP: pb.MsgSendResp,
    Cmd.CMD_MSG_PUSH_NOTIFY: pb.MsgPushNotify,
    Cmd.CMD_MSG_SYNC_REQ: pb.MsgSyncReq,
    Cmd.CMD_MSG_SYNC_RESP: pb.MsgSyncResp,
    Cmd.CMD_FILE_UPLOAD_REQ: pb.FileUploadReq,
    Cmd.CMD_FILE_UPLOAD_ACK: pb.FileUploadResp,
    Cmd.CMD_FILE_DOWNLOAD_REQ: pb.FileDownloadReq,
    Cmd.CMD_FILE_DOWNLOAD_RESP: pb.FileDownloadResp,
    Cmd.CMD_FRIEND_APPLY_REQ: pb.FriendApplyReq,
    Cmd.CMD_FRIEND_APPLY_RESP: pb.FriendApplyResp,
    Cmd.CMD_FRIEND_HANDLE_REQ: pb.FriendHandleReq,
    Cmd.CMD_FRIEND_HANDLE_RESP: pb.FriendHandleResp,
    Cmd.CMD_FRIEND_LIST_REQ: pb.FriendListReq,
    Cmd.CMD_FRIEND_LIST_RESP: pb.FriendListResp,
    Cmd.CMD_FRIEND_DEL_REQ: pb.FriendDelReq,
    Cmd.CMD_FRIEND_DEL_RESP: pb.FriendDelResp,
    Cmd.CMD_GROUP_CREATE_REQ: pb.GroupCreateReq,
    Cmd.CMD_GROUP_CREATE_RESP: pb.GroupCreateResp,
    Cmd.CMD_GROUP_JOIN_REQ: pb.GroupJoinReq,
    Cmd.CMD_GROUP_JOIN_RESP: pb.GroupJoinResp,
    Cmd.CMD_GROUP_LIST_REQ: pb.GroupListReq,
    Cmd.CMD_GROUP_LIST_RESP: pb.GroupListResp,
    Cmd.CMD_GROUP_MEMBER_REQ: pb.GroupMemberReq,
    Cmd.CMD_GROUP_MEMBER_RESP: pb.GroupMemberResp,
    Cmd.CMD_MSG_HISTORY_REQ: pb.MsgHistoryReq,
    Cmd.CMD_MSG_HISTORY_RESP: pb.MsgHistoryResp,
    Cmd.CMD_MSG_READ_REQ: pb.MsgReadReq,
    Cmd.CMD_MSG_READ_RESP: pb.MsgReadResp,
    Cmd.CMD_UNREAD_REQ: pb.UnreadReq,
    Cmd.CMD_UNREAD_RESP: pb.UnreadResp,
    Cmd.CMD_READ_NOTIFY: pb.ReadNotify,
    Cmd.CMD_GROUP_JOIN_HANDLE_REQ: pb.GroupJoinHandleReq,
    Cmd.CMD_GROUP_JOIN_HANDLE_RESP: pb.GroupJoinHandleResp,
    Cmd.CMD_GROUP_LEAVE_REQ: pb.GroupLeaveReq,
    Cmd.CMD_GROUP_LEAVE_RESP: pb.GroupLeaveResp,
    Cmd.CMD_GROUP_REMOVE_REQ: pb.GroupRemoveReq,
    Cmd.CMD_GROUP_REMOVE_RESP: pb.GroupRemoveResp,
    Cmd.CMD_BLACKLIST_ADD_REQ: pb.BlacklistAddReq,
    Cmd.CMD_BLACKLIST_ADD_RESP: pb.BlacklistAddResp,
    Cmd.CMD_BLACKLIST_DEL_REQ: pb.BlacklistDelReq,
    Cmd.CMD_BLACKLIST_DEL_RESP: pb.BlacklistDelResp,
    Cmd.CMD_BLACKLIST_LIST_REQ: pb.BlacklistListReq,
    Cmd.CMD_BLACKLIST_LIST_RESP: pb.BlacklistListResp,
    Cmd.CMD_USER_INFO_REQ: pb.UserInfoReq,
    Cmd.CMD_USER_INFO_RESP: pb.UserInfoResp,
    Cmd.CMD_PROFILE_UPDATE_REQ: pb.ProfileUpdateReq,
    Cmd.CMD_PROFILE_UPDATE_RESP: pb.ProfileUpdateResp,
    Cmd.CMD_USER_SEARCH_REQ: pb.UserSearchReq,
    Cmd.CMD_USER_SEARCH_RESP: pb.UserSearchResp,
    # file gateway frames (files module)
    Cmd.CMD_FILE_AUTH_REQ: pb.FileAuthReq,
    Cmd.CMD_FILE_DOWNLOAD_BEGIN: pb.FileDownloadBegin,
    Cmd.CMD_FILE_UPLOAD_DONE: pb.FileUploadDone,
    # user search privacy
    Cmd.CMD_PRIVACY_GET_REQ: pb.PrivacyGetReq,
    Cmd.CMD_PRIVACY_GET_RESP: pb.PrivacyGetResp,
    Cmd.CMD_PRIVACY_SET_REQ: pb.PrivacySetReq,
    Cmd.CMD_PRIVACY_SET_RESP: pb.PrivacySetResp,
    # group owner actions
    Cmd.CMD_GROUP_TRANSFER_REQ: pb.GroupTransferReq,
    Cmd.CMD_GROUP_TRANSFER_RESP: pb.GroupTransferResp,
    Cmd.CMD_GROUP_ADMIN_REQ: pb.GroupAdminReq,
    Cmd.CMD_GROUP_ADMIN_RESP: pb.GroupAdminResp,
    Cmd.CMD_GROUP_UPDATE_REQ: pb.GroupUpdateReq,
    Cmd.CMD_GROUP_UPDATE_RESP: pb.GroupUpdateResp,
    Cmd.CMD_GROUP_DISSOLVE_REQ: pb.GroupDissolveReq,
    Cmd.CMD_GROUP_DISSOLVE_RESP: pb.GroupDissolveResp,
    # online status and typing
    Cmd.CMD_STATUS_SET_REQ: pb.StatusSetReq,
    Cmd.CMD_STATUS_SET_RESP: pb.StatusSetResp,
    Cmd.CMD_STATUS_QUERY_REQ: pb.StatusQueryReq,
    Cmd.CMD_STATUS_QUERY_RESP: pb.StatusQueryResp,
    Cmd.CMD_STATUS_NOTIFY: pb.StatusNotify,
    Cmd.CMD_TYPING_REQ: pb.TypingReq,
    Cmd.CMD_TYPING_RESP: pb.TypingResp,
    Cmd.CMD_TYPING_NOTIFY: pb.TypingNotify,
}
# CMD_FILE_DATA_TRANS carries raw file bytes on the file gateway, not a protobuf body.
KNOWN_COMMANDS = frozenset(int(c) for c in Cmd)
# Commands only the server sends; a client sending one gets ERR_NOT_A_REQUEST.
PUSH_COMMANDS = frozenset(int(c) for c in Cmd if c.name.endswith("_NOTIFY"))
# Requests are named *_REQ (the spec numbers them unevenly: sync is 0x2004, its answer 0x2005).
REQUEST_COMMANDS = frozenset(int(c) for c in Cmd if c.name.endswith("_REQ"))


def message_class(cmd: int) -> type[Message] | None:
    return _BODIES.get(cmd)


def parse_body(cmd: int, body: bytes) -> Message:
    """Parse `body` as the message of `cmd`; raises FrameError(ERR_BAD_BODY) on garbage."""
    from tinyim.wire.codec import FrameError

    cls = _BODIES.get(cmd)
    if cls is None:
        raise FrameError(ErrorCode.ERR_UNKNOWN_CMD, f"cmd 0x{cmd:04X} has no message body", cmd)
    msg = cls()
    try:
        msg.ParseFromString(body)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise FrameError(ErrorCode.ERR_BAD_BODY, f"body is not a valid {cls.__name__}: {exc}", cmd) from None
    return msg
