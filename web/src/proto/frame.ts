// The 9-byte frame header of every WebSocket binary message:
// | magic "IM" (2) | version 1 (1) | cmd uint16 BE (2) | length uint32 BE (4) | protobuf body (length) |
// Bodies are encoded and decoded by the code generated from protos/im_protocol.proto (see commands.ts).

export const MAGIC0 = 0x49; // "I"
export const MAGIC1 = 0x4d; // "M"
export const VERSION = 1;
export const HEADER_SIZE = 9;

export class FrameError extends Error {}

export function encodeFrame(cmd: number, body: Uint8Array): Uint8Array<ArrayBuffer> {
  if (!Number.isInteger(cmd) || cmd < 0 || cmd > 0xffff) throw new FrameError(`cmd ${cmd} does not fit in uint16`);
  const out = new Uint8Array(HEADER_SIZE + body.length);
  const view = new DataView(out.buffer);
  out[0] = MAGIC0;
  out[1] = MAGIC1;
  out[2] = VERSION;
  view.setUint16(3, cmd, false);
  view.setUint32(5, body.length, false);
  out.set(body, HEADER_SIZE);
  return out;
}

export function decodeFrame(data: Uint8Array): { cmd: number; body: Uint8Array } {
  if (data.length < HEADER_SIZE) throw new FrameError(`frame of ${data.length} bytes is shorter than the header`);
  if (data[0] !== MAGIC0 || data[1] !== MAGIC1) throw new FrameError("bad magic: frames start with 'IM'");
  if (data[2] !== VERSION) throw new FrameError(`unsupported protocol version ${data[2]}`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const cmd = view.getUint16(3, false);
  const length = view.getUint32(5, false);
  if (data.length !== HEADER_SIZE + length) {
    throw new FrameError(`length field says ${length} but the body has ${data.length - HEADER_SIZE}`);
  }
  return { cmd, body: data.subarray(HEADER_SIZE) };
}
