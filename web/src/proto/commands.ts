// The command table: cmd id -> generated message schema (the TypeScript twin of tinyim/wire/commands.py).
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import * as pb from "../gen/im_protocol_pb";
import { Cmd } from "../gen/im_protocol_pb";
import { decodeFrame, encodeFrame, FrameError } from "./frame";

export { Cmd, pb };

/** Commands whose message is not named after them (CMD_X_REQ -> XReq); raw file data has no message. */
const NAMED_OTHERWISE: Record<string, string | null> = {
  CMD_UNSPECIFIED: null,
  CMD_FILE_UPLOAD_ACK: "FileUploadResp",
  CMD_FILE_DATA_TRANS: null,
  CMD_CONV_LIST_REQ: "ConversationListReq",
  CMD_CONV_LIST_RESP: "ConversationListResp",
  CMD_CONV_UPDATE_REQ: "ConversationUpdateReq",
  CMD_CONV_UPDATE_RESP: "ConversationUpdateResp",
  CMD_CONV_NOTIFY: "ConversationNotify",
};

function pascal(cmdName: string): string {
  return cmdName
    .replace(/^CMD_/, "")
    .toLowerCase()
    .split("_")
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join("");
}

/**
 * cmd id -> message schema, derived from the generated descriptors by the proto's naming rule
 * (CMD_MSG_SYNC_REQ carries im.MsgSyncReq), so commands added to im_protocol.proto need no edit here.
 */
export const BODIES: ReadonlyMap<number, DescMessage> = (() => {
  const messages = new Map(pb.file_im_protocol.messages.map((m) => [m.name, m as DescMessage]));
  const table = new Map<number, DescMessage>();
  for (const value of pb.CmdSchema.values) {
    const name = value.name in NAMED_OTHERWISE ? NAMED_OTHERWISE[value.name] : pascal(value.name);
    if (name === null || name === undefined) continue;
    const schema = messages.get(name);
    if (schema === undefined) throw new Error(`${value.name} names no message ${name} in im_protocol.proto`);
    table.set(value.number, schema);
  }
  return table;
})();

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
