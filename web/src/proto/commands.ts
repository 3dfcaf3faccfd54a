// The command table: cmd id -> generated message schema (the TypeScript twin of tinyim/wire/commands.py).
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import * as pb from "../gen/im_protocol_pb";
import { Cmd } from "../gen/im_protocol_pb";
import { decodeFrame, encodeFrame, FrameError } from "./frame";

export { Cmd, pb };

export const BODIES: ReadonlyMap<number, DescMessage> = new Map<number, DescMessage>([
  [Cmd.LOGIN_REQ, pb.LoginReqSchema],
  [Cmd.LOGIN_RESP, pb.LoginRespSchema],
  [Cmd.HEARTBEAT_REQ, pb.HeartbeatReqSchema],
  [Cmd.HEARTBEAT_RESP, pb.HeartbeatRespSchema],
  [Cmd.KICK_NOTIFY, pb.KickNotifySchema],
  [Cmd.ERROR_RESP, pb.ErrorRespSchema],
  [Cmd.MSG_SEND_REQ, pb.MsgSendReqSchema],
  [Cmd.MSG_SEND_RESP, pb.MsgSendRespSchema],
  [Cmd.MSG_PUSH_NOTIFY, pb.MsgPushNotifySchema],
  [Cmd.MSG_SYNC_REQ, pb.MsgSyncReqSchema],
  [Cmd.MSG_SYNC_RESP, pb.MsgSyncRespSchema],
  [Cmd.MSG_HISTORY_REQ, pb.MsgHistoryReqSchema],
  [Cmd.MSG_HISTORY_RESP, pb.MsgHistoryRespSchema],
  [Cmd.MSG_READ_REQ, pb.MsgReadReqSchema],
  [Cmd.MSG_READ_RESP, pb.MsgReadRespSchema],
  [Cmd.UNREAD_REQ, pb.UnreadReqSchema],
  [Cmd.UNREAD_RESP, pb.UnreadRespSchema],
  [Cmd.READ_NOTIFY, pb.ReadNotifySchema],
  [Cmd.FILE_UPLOAD_REQ, pb.FileUploadReqSchema],
  [Cmd.FILE_UPLOAD_ACK, pb.FileUploadRespSchema],
  [Cmd.FILE_DOWNLOAD_REQ, pb.FileDownloadReqSchema],
  [Cmd.FILE_DOWNLOAD_RESP, pb.FileDownloadRespSchema],
  [Cmd.FRIEND_APPLY_REQ, pb.FriendApplyReqSchema],
  [Cmd.FRIEND_APPLY_RESP, pb.FriendApplyRespSchema],
  [Cmd.FRIEND_HANDLE_REQ, pb.FriendHandleReqSchema],
  [Cmd.FRIEND_HANDLE_RESP, pb.FriendHandleRespSchema],
  [Cmd.FRIEND_LIST_REQ, pb.FriendListReqSchema],
  [Cmd.FRIEND_LIST_RESP, pb.FriendListRespSchema],
  [Cmd.FRIEND_DEL_REQ, pb.FriendDelReqSchema],
  [Cmd.FRIEND_DEL_RESP, pb.FriendDelRespSchema],
  [Cmd.GROUP_CREATE_REQ, pb.GroupCreateReqSchema],
  [Cmd.GROUP_CREATE_RESP, pb.GroupCreateRespSchema],
  [Cmd.GROUP_JOIN_REQ, pb.GroupJoinReqSchema],
  [Cmd.GROUP_JOIN_RESP, pb.GroupJoinRespSchema],
  [Cmd.GROUP_LIST_REQ, pb.GroupListReqSchema],
  [Cmd.GROUP_LIST_RESP, pb.GroupListRespSchema],
  [Cmd.GROUP_MEMBER_REQ, pb.GroupMemberReqSchema],
  [Cmd.GROUP_MEMBER_RESP, pb.GroupMemberRespSchema],
  [Cmd.GROUP_JOIN_HANDLE_REQ, pb.GroupJoinHandleReqSchema],
  [Cmd.GROUP_JOIN_HANDLE_RESP, pb.GroupJoinHandleRespSchema],
  [Cmd.GROUP_LEAVE_REQ, pb.GroupLeaveReqSchema],
  [Cmd.GROUP_LEAVE_RESP, pb.GroupLeaveRespSchema],
  [Cmd.GROUP_REMOVE_REQ, pb.GroupRemoveReqSchema],
  [Cmd.GROUP_REMOVE_RESP, pb.GroupRemoveRespSchema],
  [Cmd.BLACKLIST_ADD_REQ, pb.BlacklistAddReqSchema],
  [Cmd.BLACKLIST_ADD_RESP, pb.BlacklistAddRespSchema],
  [Cmd.BLACKLIST_DEL_REQ, pb.BlacklistDelReqSchema],
  [Cmd.BLACKLIST_DEL_RESP, pb.BlacklistDelRespSchema],
  [Cmd.BLACKLIST_LIST_REQ, pb.BlacklistListReqSchema],
  [Cmd.BLACKLIST_LIST_RESP, pb.BlacklistListRespSchema],
  [Cmd.USER_INFO_REQ, pb.UserInfoReqSchema],
  [Cmd.USER_INFO_RESP, pb.UserInfoRespSchema],
  [Cmd.PROFILE_UPDATE_REQ, pb.ProfileUpdateReqSchema],
  [Cmd.PROFILE_UPDATE_RESP, pb.ProfileUpdateRespSchema],
  [Cmd.USER_SEARCH_REQ, pb.UserSearchReqSchema],
  [Cmd.USER_SEARCH_RESP, pb.UserSearchRespSchema],
]);

/** Commands only the server sends (pushes): they never answer a request. */
export const PUSH_COMMANDS: ReadonlySet<number> = new Set(
  Object.entries(Cmd)
    .filter(([name, v]) => typeof v === "number" && name.endsWith("_NOTIFY"))
    .map(([, v]) => v as number),
);

/** One frame: the header plus `init` encoded as the message of `cmd`. */
export function encodeMessage<D extends DescMessage>(cmd: Cmd, schema: D, init: MessageInitShape<D>): Uint8Array<ArrayBuffer> {
  const expected = BODIES.get(cmd);
  if (expected !== schema) throw new FrameError(`cmd 0x${cmd.toString(16)} does not carry ${schema.typeName}`);
  return encodeFrame(cmd, toBinary(schema, create(schema, init)));
}

export interface Decoded {
  cmd: number;
  message: MessageShape<DescMessage>;
}

/** Parse one frame from the server; FrameError for a bad header, an unknown cmd or a garbage body. */
export function decodeMessage(data: Uint8Array): Decoded {
  const { cmd, body } = decodeFrame(data);
  const schema = BODIES.get(cmd);
  if (schema === undefined) throw new FrameError(`unknown cmd 0x${cmd.toString(16)}`);
  try {
    return { cmd, message: fromBinary(schema, body) };
  } catch (err) {
    throw new FrameError(`body is not a valid ${schema.typeName}: ${String(err)}`);
  }
}

/** Narrow a decoded message to one schema's type. */
export function isMessage<D extends DescMessage>(m: { $typeName: string }, schema: D): m is MessageShape<D> {
  return m.$typeName === schema.typeName;
}
