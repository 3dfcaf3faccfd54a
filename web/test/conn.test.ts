import { describe, expect, it } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import { Connection, ConnectionLost, ServerError, type SocketLike } from "../src/core/conn";
import { Cmd, pb } from "../src/proto/commands";
import { decodeFrame, encodeFrame } from "../src/proto/frame";

/** A socket the test answers by hand. */
class ManualSocket implements SocketLike {
  binaryType = "";
  readyState = 1;
  sent: { cmd: number }[] = [];
  closed: number | null = null;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  send(data: Uint8Array<ArrayBuffer>) {
    this.sent.push({ cmd: decodeFrame(data).cmd });
  }
  close(code = 1000) {
    this.closed = code;
    this.onclose?.({ code, reason: "" });
  }
  answer(cmd: Cmd, schema: Parameters<typeof toBinary>[0], init: object) {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const body = toBinary(schema, create(schema as any, init));
    this.onmessage?.({ data: encodeFrame(cmd, body).buffer });
  }
}

async function open(timeoutMs = 1000) {
  const socket = new ManualSocket();
  const pushes: number[] = [];
  const closes: number[] = [];
  const promise = Connection.open(() => socket, "ws://x", {
    onPush: (cmd) => pushes.push(cmd),
    onClose: (code) => closes.push(code),
  }, timeoutMs);
  socket.onopen?.({});
  return { conn: await promise, socket, pushes, closes };
}

describe("Connection", () => {
  it("matches answers to requests in order, with pushes in between", async () => {
    const { conn, socket, pushes } = await open();
    const sync = conn.request(Cmd.MSG_SYNC_REQ, pb.MsgSyncReqSchema, { localMaxSeq: 3n }, pb.MsgSyncRespSchema);
    const beat = conn.request(Cmd.HEARTBEAT_REQ, pb.HeartbeatReqSchema, {}, pb.HeartbeatRespSchema);
    expect(socket.sent.map((s) => s.cmd)).toEqual([Cmd.MSG_SYNC_REQ, Cmd.HEARTBEAT_REQ]);
    socket.answer(Cmd.MSG_PUSH_NOTIFY, pb.MsgPushNotifySchema, { maxSeqId: 9n });
    socket.answer(Cmd.MSG_SYNC_RESP, pb.MsgSyncRespSchema, { maxSeq: 9n });
    socket.answer(Cmd.HEARTBEAT_RESP, pb.HeartbeatRespSchema, { serverTime: 5n });
    expect((await sync).maxSeq).toBe(9n);
    expect((await beat).serverTime).toBe(5n);
    expect(pushes).toEqual([Cmd.MSG_PUSH_NOTIFY]);
  });

  it("turns ErrorResp into ServerError with the code the client branches on", async () => {
    const { conn, socket } = await open();
    const send = conn.request(Cmd.MSG_SEND_REQ, pb.MsgSendReqSchema, { content: "x" }, pb.MsgSendRespSchema);
    socket.answer(Cmd.ERROR_RESP, pb.ErrorRespSchema, { code: 10, message: "not friends", cmd: Cmd.MSG_SEND_REQ });
    await expect(send).rejects.toMatchObject({ name: "ServerError", code: 10, message: "not friends" });
    await expect(send).rejects.toBeInstanceOf(ServerError);
  });

  it("fails every pending request when the socket closes, and refuses new ones", async () => {
    const { conn, socket, closes } = await open();
    const a = conn.request(Cmd.HEARTBEAT_REQ, pb.HeartbeatReqSchema, {}, pb.HeartbeatRespSchema);
    socket.close(1006);
    await expect(a).rejects.toBeInstanceOf(ConnectionLost);
    await expect(conn.request(Cmd.HEARTBEAT_REQ, pb.HeartbeatReqSchema, {}, pb.HeartbeatRespSchema)).rejects.toBeInstanceOf(ConnectionLost);
    expect(closes).toEqual([1006]);
  });

  it("gives up on a connection whose answer does not come (later answers would be misread)", async () => {
    const { conn, socket } = await open(30);
    const a = conn.request(Cmd.HEARTBEAT_REQ, pb.HeartbeatReqSchema, {}, pb.HeartbeatRespSchema);
    await expect(a).rejects.toBeInstanceOf(ConnectionLost);
    expect(socket.closed).toBe(4000);
    expect(conn.isOpen).toBe(false);
  });

  it("ignores garbage frames from the server", async () => {
    const { conn, socket } = await open();
    const beat = conn.request(Cmd.HEARTBEAT_REQ, pb.HeartbeatReqSchema, {}, pb.HeartbeatRespSchema);
    socket.onmessage?.({ data: new Uint8Array([1, 2, 3]).buffer });
    socket.answer(Cmd.HEARTBEAT_RESP, pb.HeartbeatRespSchema, { serverTime: 1n });
    expect((await beat).serverTime).toBe(1n);
  });

  it("rejects opening when the handshake is refused", async () => {
    const socket = new ManualSocket();
    const promise = Connection.open(() => socket, "ws://x", { onPush: () => undefined, onClose: () => undefined });
    socket.onclose?.({ code: 1006, reason: "" });
    await expect(promise).rejects.toBeInstanceOf(ConnectionLost);
  });
});
