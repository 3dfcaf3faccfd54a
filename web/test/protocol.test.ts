import { describe, expect, it } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import { BODIES, Cmd, decodeMessage, encodeMessage, isMessage, pb, PUSH_COMMANDS } from "../src/proto/commands";
import { decodeFrame, encodeFrame, FrameError, HEADER_SIZE } from "../src/proto/frame";

describe("frame header", () => {
  it("is magic IM, version 1, cmd and length big-endian, then the body", () => {
    const frame = encodeFrame(0x2001, new Uint8Array([7, 8, 9]));
    expect([...frame]).toEqual([0x49, 0x4d, 1, 0x20, 0x01, 0, 0, 0, 3, 7, 8, 9]);
    expect(HEADER_SIZE).toBe(9);
    const { cmd, body } = decodeFrame(frame);
    expect(cmd).toBe(0x2001);
    expect([...body]).toEqual([7, 8, 9]);
  });

  it("refuses short frames, bad magic, other versions and a wrong length", () => {
    expect(() => decodeFrame(new Uint8Array(8))).toThrow(FrameError);
    const good = encodeFrame(0x1003, new Uint8Array([1, 2]));
    const badMagic = good.slice();
    badMagic[0] = 0x58;
    expect(() => decodeFrame(badMagic)).toThrow(/magic/);
    const badVersion = good.slice();
    badVersion[2] = 2;
    expect(() => decodeFrame(badVersion)).toThrow(/version/);
    expect(() => decodeFrame(good.subarray(0, good.length - 1))).toThrow(/length/);
    expect(() => encodeFrame(0x10000, new Uint8Array())).toThrow(FrameError);
  });

  it("reads a frame that sits inside a larger buffer", () => {
    const frame = encodeFrame(0x1004, new Uint8Array([5]));
    const big = new Uint8Array(frame.length + 10);
    big.set(frame, 10);
    expect(decodeFrame(big.subarray(10)).cmd).toBe(0x1004);
  });
});

describe("command table", () => {
  it("names a generated message for every command of the proto (raw file data aside)", () => {
    const ids = Object.values(Cmd).filter((v): v is number => typeof v === "number");
    for (const id of ids) {
      if (id === Cmd.UNSPECIFIED || id === Cmd.FILE_DATA_TRANS) continue;
      expect(BODIES.has(id), `cmd 0x${id.toString(16)}`).toBe(true);
    }
    for (const push of [Cmd.KICK_NOTIFY, Cmd.MSG_PUSH_NOTIFY, Cmd.READ_NOTIFY]) {
      expect(PUSH_COMMANDS.has(push)).toBe(true);
    }
    // online status, typing
    expect(PUSH_COMMANDS.has(Cmd.STATUS_NOTIFY) && PUSH_COMMANDS.has(Cmd.TYPING_NOTIFY)).toBe(true);
    expect([...PUSH_COMMANDS].every((cmd) => (Cmd[cmd] ?? "").endsWith("_NOTIFY"))).toBe(true);
    expect(BODIES.get(Cmd.MSG_SYNC_REQ)).toBe(pb.MsgSyncReqSchema);
    expect(BODIES.get(Cmd.MSG_SYNC_RESP)).toBe(pb.MsgSyncRespSchema);
    expect(BODIES.get(Cmd.FILE_UPLOAD_ACK)).toBe(pb.FileUploadRespSchema);
    expect(BODIES.get(Cmd.ERROR_RESP)).toBe(pb.ErrorRespSchema);
    expect(BODIES.get(Cmd.KICK_NOTIFY)).toBe(pb.KickNotifySchema);
    expect(BODIES.has(Cmd.FILE_DATA_TRANS)).toBe(false);
  });

  it("pairs each request with its own message and refuses another", () => {
    expect(() => encodeMessage(Cmd.MSG_SEND_REQ, pb.MsgSyncReqSchema, {})).toThrow(FrameError);
  });

  it("keeps 64-bit ids exact (BigInt, never a double)", () => {
    const big = (1n << 63n) + 5n; // 2^63 + 5 rounds to 2^63 through a JS number
    const frame = encodeMessage(Cmd.MSG_SEND_REQ, pb.MsgSendReqSchema, { receiverId: big, content: "hi", clientMsgId: "c1" });
    const { cmd, message } = decodeMessage(frame);
    expect(cmd).toBe(Cmd.MSG_SEND_REQ);
    expect(isMessage(message, pb.MsgSendReqSchema) && message.receiverId).toBe(big);
  });

  it("matches bytes the Python server would write (field numbers, varints)", () => {
    // MsgPushNotify{max_seq_id=300}: field 1 varint -> 08 AC 02
    const body = toBinary(pb.MsgPushNotifySchema, create(pb.MsgPushNotifySchema, { maxSeqId: 300n }));
    expect([...body]).toEqual([0x08, 0xac, 0x02]);
    const { message } = decodeMessage(encodeFrame(Cmd.MSG_PUSH_NOTIFY, body));
    expect(isMessage(message, pb.MsgPushNotifySchema) && message.maxSeqId).toBe(300n);
  });

  it("turns an unknown cmd or a garbage body into FrameError", () => {
    expect(() => decodeMessage(encodeFrame(0x7777, new Uint8Array()))).toThrow(/unknown cmd/);
    expect(() => decodeMessage(encodeFrame(Cmd.MSG_SYNC_RESP, new Uint8Array([0x12, 0xff])))).toThrow(FrameError);
  });
});
