// "Speak the protocol from JavaScript": the README's example, built and served at /examples/protocol.html
// (?username=…&password=…&to=<user id>) and run by the browser tests. No app code: the generated messages,
// the 9-byte header, fetch and a WebSocket.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Cmd, MsgSendReqSchema, MsgSendRespSchema, MsgSyncReqSchema, MsgSyncRespSchema } from "../src/gen/im_protocol_pb";

const out = document.getElementById("out")!;
const say = (line: string) => (out.textContent += line + "\n");

const frame = (cmd: number, body: Uint8Array) => {       // | "IM" | 1 | cmd u16 BE | length u32 BE | body |
  const bytes = new Uint8Array(9 + body.length), view = new DataView(bytes.buffer);
  bytes.set([0x49, 0x4d, 1]); view.setUint16(3, cmd); view.setUint32(5, body.length); bytes.set(body, 9);
  return bytes;
};

const params = new URLSearchParams(location.search);
const login = await (await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(
  { username: params.get("username"), password: params.get("password"), device_id: "Web" }) })).json();
const ws = new WebSocket(`${login.gateway.ws_url}?token=${login.token}&device_id=Web`);
ws.binaryType = "arraybuffer";
ws.onopen = () => {
  ws.send(frame(Cmd.MSG_SEND_REQ, toBinary(MsgSendReqSchema, create(MsgSendReqSchema,
    { receiverId: BigInt(params.get("to")!), content: "hi from JS", clientMsgId: crypto.randomUUID() }))));
  ws.send(frame(Cmd.MSG_SYNC_REQ, toBinary(MsgSyncReqSchema, create(MsgSyncReqSchema, { localMaxSeq: 0n }))));
};
ws.onmessage = ({ data }) => {            // answers come in request order; pushes (*_NOTIFY) in between
  const bytes = new Uint8Array(data), cmd = new DataView(data).getUint16(3), body = bytes.subarray(9);
  if (cmd === Cmd.MSG_SEND_RESP) say(`stored as seq ${fromBinary(MsgSendRespSchema, body).seqId}`);
  if (cmd === Cmd.MSG_SYNC_RESP) say(`synced: ${fromBinary(MsgSyncRespSchema, body).msgs.map((m) => m.content).join(" | ")}`);
};
