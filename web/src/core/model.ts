// Plain data the worker keeps and sends to the tabs (structured-clone friendly; 64-bit ids are BigInt).
import { parse as parseLossless, isSafeNumber } from "lossless-json";

export const MsgType = { TEXT: 0, IMAGE: 1, FILE: 2, SYSTEM: 3, FRIEND_REQ: 4 } as const;

export interface Msg {
  seq: bigint; // position in my timeline (0 for a message not synced yet)
  msgId: bigint;
  senderId: bigint;
  receiverId: bigint;
  groupId: bigint;
  type: number;
  content: string;
  createTime: number; // ms since the epoch (fits a double)
  clientMsgId: string;
  isMine: boolean;
}

/** "u:<peer id>" for a 1:1 conversation, "g:<group id>" for a group: the server's conversation key. */
export type ConvKey = string;

export function convKey(peerId: bigint, groupId: bigint): ConvKey {
  return groupId !== 0n ? `g:${groupId}` : `u:${peerId}`;
}

export function parseConvKey(key: ConvKey): { peerId: bigint; groupId: bigint } {
  const id = BigInt(key.slice(2));
  return key.startsWith("g:") ? { peerId: 0n, groupId: id } : { peerId: id, groupId: 0n };
}

/** The conversation a timeline entry belongs to, as the server counts it (unread, history, read marks). */
export function convOf(m: Msg): ConvKey {
  if (m.groupId !== 0n) return convKey(0n, m.groupId);
  return convKey(m.isMine ? m.receiverId : m.senderId, 0n);
}

export interface ConvSummary {
  key: ConvKey;
  last: Msg;
  unread: number;
  readSeq: bigint;
}

export interface User {
  userId: bigint;
  username: string;
  nickname: string;
}

export interface Group {
  groupId: bigint;
  name: string;
  ownerId: bigint;
  memberCount: number;
}

export interface Member extends User {
  role: number; // 1 member, 2 admin, 3 owner
}

/** A SYSTEM or FRIEND_REQ body: JSON {"event": …}. Integers past 2^53 come back as BigInt. */
export interface Notice {
  event: string;
  [field: string]: unknown;
}

export function parseNotice(content: string): Notice | null {
  try {
    const value = parseLossless(content, undefined, (text) =>
      isSafeNumber(text) ? Number(text) : /^-?\d+$/.test(text) ? BigInt(text) : Number(text),
    ) as unknown;
    if (value && typeof value === "object" && typeof (value as Notice).event === "string") return value as Notice;
  } catch {
    // not JSON: shown as text
  }
  return null;
}

/** An id field of a notice as BigInt (numbers, BigInts and digit strings accepted). */
export function noticeId(n: Notice, field: string): bigint {
  const v = n[field];
  if (typeof v === "bigint") return v;
  if (typeof v === "number" && Number.isSafeInteger(v)) return BigInt(v);
  if (typeof v === "string" && /^\d+$/.test(v)) return BigInt(v);
  return 0n;
}

/** A message sent from here, shown at once and retried with the same client_msg_id until acked. */
export interface OutboxItem {
  clientMsgId: string;
  key: ConvKey;
  type: number;
  content: string;
  createTime: number;
  status: "sending" | "failed";
  error: string;
  seq: bigint; // the ack's seq once the server committed it (0 before)
}

export interface FriendRequest {
  userId: bigint;
  reason: string;
  seq: bigint;
}

export interface JoinRequest {
  groupId: bigint;
  userId: bigint;
  seq: bigint;
}

export interface ChatWindow {
  key: ConvKey;
  msgs: Msg[]; // ascending seq
  hasMore: boolean;
  loading: boolean;
  error: string;
}

export interface Upload {
  id: string; // local id (the task id once known)
  key: ConvKey;
  name: string;
  size: number;
  done: number;
  status: "hashing" | "uploading" | "paused" | "failed" | "finished";
  error: string;
}

export type Status = "starting" | "loggedOut" | "connecting" | "online" | "offline" | "kicked";

export interface AppState {
  status: Status;
  statusDetail: string; // why (kick reason, last error)
  retryAt: number; // ms epoch of the next reconnect attempt (offline)
  me: User | null;
  localMaxSeq: bigint;
  convs: ConvSummary[]; // newest first
  chats: Record<ConvKey, ChatWindow>;
  outbox: OutboxItem[];
  users: Record<string, User>;
  friends: User[];
  groups: Group[];
  members: Record<string, Member[]>; // by group id
  blacklist: User[];
  friendRequests: FriendRequest[];
  joinRequests: JoinRequest[];
  uploads: Upload[];
  connects: number;
}

export function emptyState(): AppState {
  return {
    status: "starting",
    statusDetail: "",
    retryAt: 0,
    me: null,
    localMaxSeq: 0n,
    convs: [],
    chats: {},
    outbox: [],
    users: {},
    friends: [],
    groups: [],
    members: {},
    blacklist: [],
    friendRequests: [],
    joinRequests: [],
    uploads: [],
    connects: 0,
  };
}
