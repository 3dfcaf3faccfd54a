"""Write the seed corpus: one well-formed frame per request command (frames), and the same bodies
with a command/user selector prefix (handlers). `python -m fuzz.seeds` rewrites fuzz/corpus/."""

from __future__ import annotations

from pathlib import Path

from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import REQUEST_COMMANDS, Cmd, encode

CORPUS = Path(__file__).with_name("corpus")

SAMPLES = {
    Cmd.CMD_HEARTBEAT_REQ: pb.HeartbeatReq(user_id=1),
    Cmd.CMD_MSG_SEND_REQ: pb.MsgSendReq(receiver_id=2, content="hi", client_msg_id="c1"),
    Cmd.CMD_MSG_SYNC_REQ: pb.MsgSyncReq(local_max_seq=0, limit=10),
    Cmd.CMD_MSG_HISTORY_REQ: pb.MsgHistoryReq(peer_id=2, limit=10),
    Cmd.CMD_MSG_READ_REQ: pb.MsgReadReq(peer_id=2, read_seq=1),
    Cmd.CMD_FRIEND_APPLY_REQ: pb.FriendApplyReq(target_user_id=2, reason="hello"),
    Cmd.CMD_FRIEND_HANDLE_REQ: pb.FriendHandleReq(request_user_id=2, agree=True),
    Cmd.CMD_FRIEND_DEL_REQ: pb.FriendDelReq(friend_id=2),
    Cmd.CMD_GROUP_CREATE_REQ: pb.GroupCreateReq(group_name="g", member_ids=[2, 3]),
    Cmd.CMD_GROUP_JOIN_REQ: pb.GroupJoinReq(group_id=1),
    Cmd.CMD_GROUP_MEMBER_REQ: pb.GroupMemberReq(group_id=1),
    Cmd.CMD_GROUP_JOIN_HANDLE_REQ: pb.GroupJoinHandleReq(group_id=1, applicant_id=2, agree=True),
    Cmd.CMD_GROUP_LEAVE_REQ: pb.GroupLeaveReq(group_id=1),
    Cmd.CMD_GROUP_REMOVE_REQ: pb.GroupRemoveReq(group_id=1, member_id=2),
    Cmd.CMD_BLACKLIST_ADD_REQ: pb.BlacklistAddReq(user_id=2),
    Cmd.CMD_BLACKLIST_DEL_REQ: pb.BlacklistDelReq(user_id=2),
    Cmd.CMD_USER_INFO_REQ: pb.UserInfoReq(user_ids=[1, 2]),
    Cmd.CMD_PROFILE_UPDATE_REQ: pb.ProfileUpdateReq(nickname="Nick"),
    Cmd.CMD_USER_SEARCH_REQ: pb.UserSearchReq(nickname_prefix="User", limit=5),
}


def main() -> None:
    commands = sorted(c for c in REQUEST_COMMANDS if c != Cmd.CMD_LOGIN_REQ)
    for target in ("frames", "handlers"):
        (CORPUS / target).mkdir(parents=True, exist_ok=True)
    for cmd, msg in SAMPLES.items():
        body = msg.SerializeToString()
        name = Cmd(cmd).name.lower()
        (CORPUS / "frames" / name).write_bytes(encode(cmd, body))
        if cmd in commands:
            (CORPUS / "handlers" / name).write_bytes(bytes([commands.index(cmd), 0]) + body)
    for request in commands:  # an empty body for every request, the ones without a sample too
        empty = bytes([commands.index(request), 0])
        (CORPUS / "handlers" / f"{Cmd(request).name.lower()}_empty").write_bytes(empty)


if __name__ == "__main__":
    main()
