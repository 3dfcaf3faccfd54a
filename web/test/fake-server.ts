// An in-memory stand-in for a gateway, speaking the real frames (generated code) over fake sockets:
// one user's timeline with gapless seqs, idempotent sends by client_msg_id, sync pages, read marks.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BODIES, Cmd, pb } from "../src/proto/commands";
import { decodeFrame, encodeFrame } from "../src/proto/frame";
import type { SocketLike } from "../src/core/conn";
import type { HttpApi } from "../src/core/http";
import { HttpError } from "../src/core/http";
import type { SessionOptions } from "../src/core/session";
import type { Storage } from "../src/core/storage";

export class FakeSocket implements SocketLike {
  binaryType = "blob";
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(
    readonly url: string,
    private readonly server: FakeServer,
  ) {}
  send(data: Uint8Array<ArrayBuffer>): void {
    if (this.readyState !== 1) throw new Error("not open");
    this.server.receive(this, data);
  }
  close(code = 1000, reason = ""): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.server.sockets.delete(this);
    queueMicrotask(() => this.onclose?.({ code, reason }));
  }
  deliver(cmd: number, body: Uint8Array): void {
    const frame = encodeFrame(cmd, body);
    queueMicrotask(() => this.onmessage?.({ data: frame.buffer }));
  }
}

export interface FakeFile {
  id: string;
  size: number;
  md5: string;
  bytes: number[];
  done: boolean;
  proofFor?: FakeFile;
}

export interface Entry {
  seq: bigint;
  msg: pb.MessageData;
}

export class FakeServer {
  /** A Session's options against this server: quick reconnects without jitter, no heartbeat in a test. */
  sessionOptions(storage: Storage): SessionOptions {
    return {
      http: this.http,
      socket: this.socketFactory,
      storage,
      backoffInitialMs: 5,
      backoffMaxMs: 20,
      heartbeatMs: 60_000,
      random: () => 0.5,
    };
  }

  up = true;
  sockets = new Set<FakeSocket>();
  timeline: pb.MessageData[] = [];
  byClientId = new Map<string, pb.MessageData>();
  requests: { cmd: number; body: { $typeName: string } }[] = [];
  readMarks = new Map<string, bigint>();
  nextMsgId = (1n << 60n) + 1n; // past 2^53: must stay exact
  tokenValid = true;
  allocations = 0;
  sendFailures = 0; // answer this many sends by dropping the connection after storing them
  dropsBeforeStore = 0; // drop the connection on this many sends before storing anything
  syncErrors = 0; // answer this many syncs with ERR_UNAVAILABLE (a backend down for a moment)
  syncHides = 0; // syncs leave out the newest this many messages (committed, not yet visible to a read)

  files = new Map<string, FakeFile>();
  chunkSize = 4;
  puts: { task: string; offset: number; length: number }[] = [];
  proofMd5: (f: FakeFile) => string = () => "";
  beforePut?: (task: FakeFile) => void;

  constructor(readonly userId: bigint) {}

  /** The file gateway's HTTP side (contracts.md): PUT bytes at the offset it holds. */
  fetcher = (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input));
    const id = decodeURIComponent(url.pathname.split("/").pop()!);
    const task = this.files.get(id);
    const headers = new Headers(init?.headers);
    if (!task || headers.get("authorization") !== `Bearer up-${id}`) return new Response("{}", { status: 401 });
    this.beforePut?.(task);
    const offset = Number(headers.get("upload-offset"));
    if (offset !== task.bytes.length) return Response.json({ offset: task.bytes.length }, { status: 409 });
    const body = new Uint8Array(await new Response(init!.body as Blob).arrayBuffer());
    this.puts.push({ task: id, offset, length: body.length });
    task.bytes.push(...body);
    if (task.bytes.length >= task.size) task.done = true;
    return Response.json({ offset: task.bytes.length, status: task.done ? "finished" : "uploading" });
  }) as typeof fetch;

  socketFactory = (url: string): FakeSocket => {
    const s = new FakeSocket(url, this);
    queueMicrotask(() => {
      if (!this.up) {
        s.readyState = 3;
        s.onclose?.({ code: 1006, reason: "" });
        return;
      }
      s.readyState = 1;
      this.sockets.add(s);
      s.onopen?.({});
    });
    return s;
  };

  http: HttpApi = {
    register: async () => this.userId,
    login: async () => ({ userId: this.userId, token: "tok", expiresAt: Date.now() / 1000 + 3600, wsUrl: "ws://fake/ws" }),
    logout: async () => undefined,
    allocateGateway: async () => {
      this.allocations++;
      if (!this.tokenValid) throw new HttpError(401, "unauthenticated", "token revoked");
      if (!this.up) throw new HttpError(0, "network", "down");
      return "ws://fake/ws";
    },
    clientConfig: async () => ({ heartbeatSeconds: 20 }),
  };

  /**
   * A message from someone else lands in the user's timeline; connected sockets get a push, which carries
   * the message itself when `inline` (as the real server does for small messages), and none when `silent`.
   */
  incoming(from: bigint, content: string, groupId = 0n, type = 0, opts: { inline?: boolean; silent?: boolean } = {}): pb.MessageData {
    const m = this.append({ senderId: from, receiverId: groupId ? 0n : this.userId, groupId, content, type, isSender: false });
    if (opts.silent) return m;
    const push = create(pb.MsgPushNotifySchema, { maxSeqId: m.seqId, msgs: opts.inline ? [m] : [] });
    for (const s of this.sockets) s.deliver(Cmd.MSG_PUSH_NOTIFY, toBinary(pb.MsgPushNotifySchema, push));
    return m;
  }

  dropAll(): void {
    for (const s of [...this.sockets]) s.close(1006, "");
  }

  push(cmd: Cmd, schema: (typeof pb)[keyof typeof pb], init: object): void {
    for (const s of this.sockets) {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      s.deliver(cmd, toBinary(schema as any, create(schema as any, init)));
    }
  }

  private append(init: Omit<Partial<pb.MessageData>, "$typeName" | "$unknown">): pb.MessageData {
    const m = create(pb.MessageDataSchema, {
      ...init,
      msgId: this.nextMsgId++,
      seqId: BigInt(this.timeline.length + 1),
      createTime: BigInt(Date.now()),
    });
    this.timeline.push(m);
    return m;
  }

  receive(socket: FakeSocket, data: Uint8Array): void {
    const { cmd, body } = decodeFrame(data);
    const schema = BODIES.get(cmd)!;
    const req = fromBinary(schema, body) as { $typeName: string };
    this.requests.push({ cmd, body: req });
    const answer = <S extends (typeof pb)[keyof typeof pb]>(c: Cmd, s: S, init: object) =>
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      socket.deliver(c, toBinary(s as any, create(s as any, init)));
    switch (cmd) {
      case Cmd.HEARTBEAT_REQ:
        return answer(Cmd.HEARTBEAT_RESP, pb.HeartbeatRespSchema, { serverTime: BigInt(Date.now()) });
      case Cmd.MSG_SYNC_REQ: {
        if (this.syncErrors > 0) {
          this.syncErrors--;
          return answer(Cmd.ERROR_RESP, pb.ErrorRespSchema, { code: 14, message: "msg service unavailable", cmd });
        }
        const r = req as pb.MsgSyncReq;
        const limit = r.limit || 100;
        const visible = this.timeline.slice(0, this.timeline.length - this.syncHides);
        const after = visible.filter((m) => m.seqId > r.localMaxSeq);
        return answer(Cmd.MSG_SYNC_RESP, pb.MsgSyncRespSchema, {
          maxSeq: BigInt(visible.length),
          msgs: after.slice(0, limit),
          hasMore: after.length > limit,
        });
      }
      case Cmd.MSG_SEND_REQ: {
        const r = req as pb.MsgSendReq;
        if (this.dropsBeforeStore > 0) {
          this.dropsBeforeStore--;
          socket.close(1006, "");
          return;
        }
        let m = this.byClientId.get(r.clientMsgId);
        const duplicate = m !== undefined;
        if (!m) {
          m = this.append({ senderId: this.userId, receiverId: r.receiverId, groupId: r.groupId, content: r.content, type: r.type, clientMsgId: r.clientMsgId, isSender: true });
          this.byClientId.set(r.clientMsgId, m);
        }
        if (this.sendFailures > 0) {
          this.sendFailures--;
          socket.close(1006, ""); // stored, but the ack is lost
          return;
        }
        return answer(Cmd.MSG_SEND_RESP, pb.MsgSendRespSchema, { msgId: m.msgId, seqId: m.seqId, sendTime: m.createTime, duplicate });
      }
      case Cmd.MSG_HISTORY_REQ: {
        const r = req as pb.MsgHistoryReq;
        const inConv = this.timeline.filter((m) =>
          r.groupId ? m.groupId === r.groupId : m.groupId === 0n && (m.isSender ? m.receiverId : m.senderId) === r.peerId,
        );
        const older = inConv.filter((m) => !r.beforeSeq || m.seqId < r.beforeSeq);
        const limit = r.limit || 50;
        return answer(Cmd.MSG_HISTORY_RESP, pb.MsgHistoryRespSchema, { msgs: older.slice(-limit), hasMore: older.length > limit });
      }
      case Cmd.MSG_READ_REQ: {
        const r = req as pb.MsgReadReq;
        const key = `${r.peerId}:${r.groupId}`;
        const stored = [this.readMarks.get(key) ?? 0n, r.readSeq].reduce((a, b) => (a > b ? a : b));
        this.readMarks.set(key, stored);
        return answer(Cmd.MSG_READ_RESP, pb.MsgReadRespSchema, { readSeq: stored });
      }
      case Cmd.UNREAD_REQ: {
        const convs = new Map<string, pb.ConversationUnread>();
        for (const m of this.timeline) {
          if (m.isSender) continue;
          const peerId = m.groupId ? 0n : m.senderId;
          const key = `${peerId}:${m.groupId}`;
          const read = this.readMarks.get(key) ?? 0n;
          if (m.seqId <= read) continue;
          const c = convs.get(key) ?? create(pb.ConversationUnreadSchema, { peerId, groupId: m.groupId, readSeq: read });
          c.unread += 1;
          c.lastSeq = m.seqId;
          convs.set(key, c);
        }
        return answer(Cmd.UNREAD_RESP, pb.UnreadRespSchema, { conversations: [...convs.values()] });
      }
      case Cmd.USER_INFO_REQ: {
        const r = req as pb.UserInfoReq;
        return answer(Cmd.USER_INFO_RESP, pb.UserInfoRespSchema, {
          users: r.userIds.map((id) => ({ userId: id, username: `u${id}`, nickname: `User ${id}` })),
        });
      }
      case Cmd.FILE_UPLOAD_REQ: {
        const r = req as pb.FileUploadReq;
        let task = r.taskId ? this.files.get(r.taskId) : undefined;
        if (!task) {
          const known = [...this.files.values()].find((t) => t.md5 === r.md5 && t.done);
          task = { id: `task-${this.files.size + 1}`, size: Number(r.fileSize), md5: r.md5, bytes: [], done: false, proofFor: known };
          this.files.set(task.id, task);
        } else if (r.proof && task.proofFor) {
          const expected = this.proofMd5(task.proofFor);
          if (r.proof === expected) {
            task.done = true;
            task.bytes = task.proofFor.bytes;
          }
          task.proofFor = undefined;
        }
        const proof = task.proofFor && !task.done;
        return answer(Cmd.FILE_UPLOAD_ACK, pb.FileUploadRespSchema, {
          taskId: task.id,
          isInstant: task.done,
          uploadToken: `up-${task.id}`,
          offset: BigInt(task.bytes.length),
          httpUrl: "http://files.fake",
          chunkSize: this.chunkSize,
          proofRequired: !!proof,
          proofOffset: proof ? 2n : 0n,
          proofLength: proof ? 3n : 0n,
        });
      }
      case Cmd.USER_SEARCH_REQ:
        return answer(Cmd.ERROR_RESP, pb.ErrorRespSchema, { code: 12, message: "not served", cmd });
      case Cmd.FRIEND_LIST_REQ:
        return answer(Cmd.FRIEND_LIST_RESP, pb.FriendListRespSchema, {});
      case Cmd.GROUP_LIST_REQ:
        return answer(Cmd.GROUP_LIST_RESP, pb.GroupListRespSchema, {});
      case Cmd.BLACKLIST_LIST_REQ:
        return answer(Cmd.BLACKLIST_LIST_RESP, pb.BlacklistListRespSchema, {});
      default:
        return answer(Cmd.ERROR_RESP, pb.ErrorRespSchema, { code: 12, message: "not in the fake", cmd });
    }
  }
}
