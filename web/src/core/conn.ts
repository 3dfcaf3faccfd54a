// One WebSocket to a gateway: requests answered in order (a FIFO of pending requests), pushes in between.
import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { Cmd, decodeMessage, encodeMessage, isMessage, pb, PUSH_COMMANDS } from "../proto/commands";
import { FrameError } from "../proto/frame";

/** What the browser's WebSocket offers (and the fake socket of the unit tests). */
export interface SocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array<ArrayBuffer>): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type SocketFactory = (url: string) => SocketLike;

/** The server answered with ErrorResp (0x1FFF). */
export class ServerError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly cmd = 0,
  ) {
    super(message);
    this.name = "ServerError";
  }
}
/** The connection closed (or timed out) before the answer came. */
export class ConnectionLost extends Error {
  constructor(message = "connection lost") {
    super(message);
    this.name = "ConnectionLost";
  }
}

export interface ConnectionEvents {
  onPush(cmd: number, message: { $typeName: string }): void;
  onClose(code: number, reason: string): void;
}

interface Pending {
  resolve(m: { $typeName: string }): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

export class Connection {
  private pending: Pending[] = [];
  private closed = false;

  private constructor(
    private readonly socket: SocketLike,
    private readonly events: ConnectionEvents,
    private readonly timeoutMs: number,
  ) {
    socket.onmessage = (ev) => this.receive(ev.data);
    socket.onclose = (ev) => this.lost(ev.code, ev.reason);
    socket.onerror = () => undefined; // a close follows
  }

  /** Open `url`; resolves once the socket is open, rejects if it closes (refused handshake) first. */
  static open(factory: SocketFactory, url: string, events: ConnectionEvents, timeoutMs = 10_000): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = factory(url);
      socket.binaryType = "arraybuffer";
      const timer = setTimeout(() => {
        socket.close();
        reject(new ConnectionLost("connect timed out"));
      }, timeoutMs);
      socket.onopen = () => {
        clearTimeout(timer);
        resolve(new Connection(socket, events, timeoutMs));
      };
      socket.onclose = (ev) => {
        clearTimeout(timer);
        reject(new ConnectionLost(`connect failed (close ${ev.code})`));
      };
      socket.onerror = () => undefined;
    });
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** Send one request and wait for its answer; ServerError on ErrorResp, ConnectionLost on a drop. */
  request<Q extends DescMessage, R extends DescMessage>(
    cmd: Cmd,
    schema: Q,
    init: MessageInitShape<Q>,
    answer: R,
  ): Promise<MessageShape<R>> {
    if (this.closed) return Promise.reject(new ConnectionLost("not connected"));
    const frame = encodeMessage(cmd, schema, init);
    return new Promise<{ $typeName: string }>((resolve, reject) => {
      const timer = setTimeout(() => {
        // Answers come in order: a lost answer would shift every later one, so give up on the connection.
        reject(new ConnectionLost(`no answer to 0x${cmd.toString(16)} in ${this.timeoutMs} ms`));
        this.close(4000, "request timed out");
      }, this.timeoutMs);
      this.pending.push({ resolve, reject, timer });
      this.socket.send(frame);
    }).then((m) => {
      if (isMessage(m, pb.ErrorRespSchema)) throw new ServerError(m.code, m.message, m.cmd);
      if (!isMessage(m, answer)) throw new FrameError(`expected ${answer.typeName}, got ${m.$typeName}`);
      return m;
    });
  }

  close(code = 1000, reason = ""): void {
    if (this.closed) return;
    try {
      this.socket.close(code, reason);
    } catch {
      // already closing
    }
    this.lost(code, reason);
  }

  private receive(data: unknown): void {
    if (this.closed || !(data instanceof ArrayBuffer)) return;
    let decoded;
    try {
      decoded = decodeMessage(new Uint8Array(data));
    } catch (err) {
      console.warn("bad frame from the server", err);
      return;
    }
    if (PUSH_COMMANDS.has(decoded.cmd)) {
      this.events.onPush(decoded.cmd, decoded.message);
      return;
    }
    const next = this.pending.shift();
    if (next !== undefined) {
      clearTimeout(next.timer);
      next.resolve(decoded.message);
    }
  }

  private lost(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.splice(0)) {
      clearTimeout(p.timer);
      p.reject(new ConnectionLost(`connection closed (${code})`));
    }
    this.socket.onmessage = null;
    this.socket.onclose = null;
    this.events.onClose(code, reason);
  }
}
