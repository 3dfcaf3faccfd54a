// The session of one browser: login, one WebSocket, sync from the stored local_max_seq, optimistic sends
// with client_msg_id retries, read marks, friends, groups; reconnect with jittered backoff through dispatch.
// It runs once per browser (in a SharedWorker, or in the page where those do not exist); tabs see its state.
import { Cmd, pb } from "../proto/commands";
import { Connection, ConnectionLost, ServerError, type SocketFactory } from "./conn";
import { HttpError, type HttpApi } from "./http";
import {
  convKey,
  convOf,
  emptyState,
  MsgType,
  parseConvKey,
  type AppState,
  type ChatWindow,
  type ConvKey,
  type Group,
  type Member,
  type Msg,
  type OutboxItem,
  type Status,
  type User,
} from "./model";
import type { StoredSession, Storage } from "./storage";
import { Timeline } from "./timeline";

export const DEVICE_ID = "Web";
const ERR_UNAVAILABLE = 14;
const ERR_UNIMPLEMENTED = 12;
const ERR_NOT_FOUND = 8;
const HISTORY_PAGE = 30;
const SYNC_PAGE = 200;

export interface SessionOptions {
  http: HttpApi;
  socket: SocketFactory;
  storage: Storage;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  requestTimeoutMs?: number;
  heartbeatMs?: number; // default: what dispatch's /api/client_config says
  // messages that came without a sync after a gap wait this long for the missing ones' push, then a sync
  gapWaitMs?: number;
  random?: () => number;
  newId?: () => string;
  fetcher?: typeof fetch; // HTTP to the file gateway
}

function toMsg(m: pb.MessageData): Msg {
  return {
    seq: m.seqId,
    msgId: m.msgId,
    senderId: m.senderId,
    receiverId: m.receiverId,
    groupId: m.groupId,
    type: m.type,
    content: m.content,
    createTime: Number(m.createTime),
    clientMsgId: m.clientMsgId,
    isMine: m.isSender,
  };
}

const toUser = (u: pb.UserInfo): User => ({ userId: u.userId, username: u.username, nickname: u.nickname });

function randomId(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Session {
  state: AppState = emptyState();
  private listeners = new Set<(s: AppState) => void>();
  private timeline = new Timeline();
  private conn: Connection | null = null;
  private session: StoredSession | null = null;
  private notified = 0n; // highest seq a push announced (MsgSyncReq.min_seq)
  private syncing: Promise<void> | null = null;
  private syncAgain = false;
  // Messages from pushes (or this tab's own acks) past a gap, by seq: a busy group's pushes are paced
  // (up to 0.25 s) and another push may overtake one; they wait gapWaitMs for it, then a sync fills the gap.
  private ahead = new Map<bigint, Msg>();
  private gapTimer: ReturnType<typeof setTimeout> | null = null;
  private backoff: number;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private heartbeatMs = 0;
  private active = false; // a push came or a send was answered since the last heartbeat
  private meKnown = false;
  private viewing = new Set<ConvKey>();
  private emitScheduled = false;
  private saveTimer: ReturnType<typeof setTimeout> | null = null;
  private flushing = false;
  private closed = false;
  private readonly o: Required<SessionOptions>;

  constructor(options: SessionOptions) {
    this.o = {
      backoffInitialMs: 250,
      backoffMaxMs: 8000,
      requestTimeoutMs: 10_000,
      heartbeatMs: 0,
      gapWaitMs: 500,
      random: Math.random,
      newId: randomId,
      fetcher: (input, init) => fetch(input, init),
      ...options,
    };
    this.backoff = this.o.backoffInitialMs;
  }

  subscribe(fn: (s: AppState) => void): () => void {
    this.listeners.add(fn);
    fn(this.state);
    return () => this.listeners.delete(fn);
  }

  /** Resume the stored session (a reload, a new tab after all were closed), or wait for a login. */
  async start(): Promise<void> {
    const stored = await this.o.storage.loadSession();
    if (!stored || stored.expiresAt * 1000 < Date.now() + 30_000) {
      this.set({ status: "loggedOut" });
      return;
    }
    await this.begin(stored, false);
  }

  // ---------- account ----------
  async register(username: string, password: string, nickname: string): Promise<void> {
    await this.o.http.register(username, password, nickname);
    await this.login(username, password);
  }

  async login(username: string, password: string): Promise<void> {
    const answer = await this.o.http.login(username, password, DEVICE_ID);
    await this.begin(
      { userId: answer.userId, username, token: answer.token, expiresAt: answer.expiresAt, wsUrl: answer.wsUrl },
      true,
    );
  }

  async logout(): Promise<void> {
    const token = this.session?.token;
    this.stop();
    await this.saveNow(); // local_max_seq and the outbox stay for the next login of this user
    await this.o.storage.saveSession(null);
    if (token) await this.o.http.logout(token).catch(() => undefined);
    this.reset("loggedOut");
  }

  /** Try to reconnect now instead of waiting for the backoff timer. */
  reconnectNow(): void {
    if (this.state.status !== "offline") return;
    this.backoff = this.o.backoffInitialMs;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    void this.reconnect();
  }

  /** The network is back (the browser's `online` event). */
  networkOnline(): void {
    this.reconnectNow();
  }

  close(): void {
    this.closed = true;
    this.stop();
  }

  /** Drop the WebSocket as a network failure would (tests, the "reconnect" button). */
  dropConnection(): void {
    this.conn?.close(4000, "dropped");
  }

  private async begin(stored: StoredSession, fresh: boolean): Promise<void> {
    this.stop();
    this.closed = false;
    this.session = stored;
    await this.o.storage.saveSession(stored);
    const saved = await this.o.storage.loadUser(stored.userId);
    this.timeline = new Timeline(saved?.timeline);
    this.state = {
      ...emptyState(),
      status: "connecting",
      me: { userId: stored.userId, username: stored.username, nickname: stored.username },
      outbox: saved?.outbox ?? [],
      users: Object.fromEntries((saved?.users ?? []).map((u) => [String(u.userId), u])),
    };
    this.publishTimeline();
    this.meKnown = false;
    if (fresh) {
      await this.connect(stored.wsUrl);
    } else {
      await this.reconnect();
    }
  }

  private stop(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.gapTimer) clearTimeout(this.gapTimer);
    this.gapTimer = null;
    this.ahead.clear(); // the sync after the next connect brings them
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.retryTimer = null;
    this.heartbeat = null;
    const conn = this.conn;
    this.conn = null;
    conn?.close(1000, "bye");
  }

  private reset(status: Status, detail = ""): void {
    this.session = null;
    this.timeline = new Timeline();
    this.state = { ...emptyState(), status, statusDetail: detail };
    this.emit();
  }

  // ---------- connection ----------
  private async connect(wsUrl: string): Promise<void> {
    const session = this.session;
    if (!session) return;
    this.set({ status: "connecting" });
    if (!this.heartbeatMs) {
      // The gateway closes a connection silent for its heartbeat timeout; dispatch says how often to beat.
      const config = this.o.heartbeatMs ? null : await this.o.http.clientConfig();
      this.heartbeatMs = this.o.heartbeatMs || (config?.heartbeatSeconds ?? 0) * 1000;
    }
    const url = `${wsUrl}?token=${encodeURIComponent(session.token)}&device_id=${DEVICE_ID}`;
    let conn: Connection;
    try {
      conn = await Connection.open(
        this.o.socket,
        url,
        {
          onPush: (cmd, m) => this.onPush(conn, cmd, m),
          onClose: (code, reason) => this.onClose(conn, code, reason),
        },
        this.o.requestTimeoutMs,
      );
    } catch (err) {
      this.scheduleReconnect(String(err instanceof Error ? err.message : err));
      return;
    }
    if (this.session !== session || this.closed) {
      conn.close();
      return;
    }
    this.conn = conn;
    this.backoff = this.o.backoffInitialMs;
    // 10 s until dispatch has answered /api/client_config (it is asked again on the next connect)
    this.heartbeat = setInterval(() => {
      conn.request(Cmd.HEARTBEAT_REQ, pb.HeartbeatReqSchema, {}, pb.HeartbeatRespSchema).catch(() => undefined);
      // A push is only a hint, and the last one of a burst can be lost (a msg node that died between its
      // commit and its push): while a conversation is going on, one sync per heartbeat bounds how long
      // such a message waits. An idle tab pulls nothing.
      if (this.active) {
        this.active = false;
        void this.syncSoon();
      }
    }, this.heartbeatMs || 10_000);
    this.set({ status: "online", statusDetail: "", retryAt: 0, connects: this.state.connects + 1 });
    void this.afterConnect(conn);
  }

  private async afterConnect(conn: Connection): Promise<void> {
    await this.syncSoon();
    if (this.conn !== conn) return;
    const refreshed = await Promise.allSettled([
      this.refreshUnread(),
      this.refreshFriends(),
      this.refreshGroups(),
      this.refreshBlacklist(),
      this.refreshProfiles([this.session!.userId]),
    ]);
    for (const r of refreshed) if (r.status === "rejected") console.warn("refresh after connect failed", r.reason);
    for (const key of Object.keys(this.state.chats)) await this.loadNewest(key);
    void this.flushOutbox();
    this.markViewedRead();
  }

  /**
   * Sync now, and again with backoff when it fails while connected: a push is only a hint, so after the
   * last one nothing else would bring the missing messages. A lost connection stops it (the reconnect syncs).
   */
  private async syncSoon(): Promise<void> {
    for (let failures = 0; ; ) {
      const conn = this.conn;
      if (!conn) return;
      try {
        await this.sync();
        return;
      } catch (err) {
        if (err instanceof ConnectionLost || this.conn !== conn || ++failures > 8) {
          if (!(err instanceof ConnectionLost)) console.warn("sync keeps failing; the next push or connect retries", err);
          return;
        }
        const delay = Math.min(this.o.backoffMaxMs, this.o.backoffInitialMs * 2 ** failures) * (0.5 + this.o.random());
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private onClose(conn: Connection, code: number, reason: string): void {
    if (this.conn !== conn) return; // an old connection we replaced
    this.conn = null;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    if (this.state.status === "kicked" || this.closed || !this.session) return;
    if (code === 4001) {
      void this.kicked(reason || "logged in elsewhere");
      return;
    }
    this.scheduleReconnect(`connection closed (${code}${reason ? ` ${reason}` : ""})`);
  }

  private scheduleReconnect(why: string): void {
    if (this.closed || !this.session || this.state.status === "kicked") return;
    const delay = Math.min(this.backoff, this.o.backoffMaxMs) * (0.5 + this.o.random());
    this.backoff = Math.min(this.backoff * 2, this.o.backoffMaxMs);
    this.set({ status: "offline", statusDetail: why, retryAt: Date.now() + delay });
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.reconnect();
    }, delay);
  }

  /** Ask dispatch for a gateway (this also checks the token), then connect. */
  private async reconnect(): Promise<void> {
    const session = this.session;
    if (!session || this.closed) return;
    this.set({ status: "connecting" });
    let wsUrl: string;
    try {
      wsUrl = await this.o.http.allocateGateway(session.token);
    } catch (err) {
      if (err instanceof HttpError && err.status === 401) {
        // The token was revoked (a newer login of this device type, a logout) or expired.
        await this.kicked(err.message || "session ended");
        return;
      }
      this.scheduleReconnect(err instanceof Error ? err.message : String(err));
      return;
    }
    if (this.session !== session) return;
    session.wsUrl = wsUrl;
    await this.connect(wsUrl);
  }

  private async kicked(reason: string): Promise<void> {
    this.stop();
    await this.o.storage.saveSession(null);
    await this.saveNow();
    this.session = null;
    this.set({ status: "kicked", statusDetail: reason });
  }

  private onPush(conn: Connection, cmd: number, m: { $typeName: string }): void {
    if (this.conn !== conn) return;
    if (cmd === Cmd.MSG_PUSH_NOTIFY) {
      this.active = true;
      const push = m as pb.MsgPushNotify;
      const seq = push.maxSeqId;
      if (seq > this.notified) this.notified = seq;
      // Small messages ride in the push: applied at once when they are the next seqs (after a gap they
      // wait a little for the missing ones); a push without its messages (too large to ride) means a sync.
      if (seq > this.timeline.localMaxSeq) {
        if (push.msgs.length) this.applyPushed(push.msgs.map(toMsg));
        else void this.syncSoon();
      }
    } else if (cmd === Cmd.READ_NOTIFY) {
      const r = m as pb.ReadNotify;
      this.applyRead(convKey(r.peerId, r.groupId), r.readSeq);
    } else if (cmd === Cmd.KICK_NOTIFY) {
      void this.kicked((m as pb.KickNotify).reason || "logged in elsewhere");
    }
  }

  private async call<T>(fn: (c: Connection) => Promise<T>): Promise<T> {
    return fn(this.conn ?? (await this.connectedSoon()));
  }

  /**
   * A request made while the session is starting or connecting waits for that attempt (a tab that has just
   * taken the session over, a click during a reconnect) for up to the request timeout, instead of failing
   * at once; offline, logged out or kicked, it fails at once.
   */
  private connectedSoon(): Promise<Connection> {
    return new Promise((resolve, reject) => {
      let unsubscribe = (): void => undefined;
      const timer = setTimeout(() => settle(), this.o.requestTimeoutMs);
      const settle = (): void => {
        clearTimeout(timer);
        queueMicrotask(() => unsubscribe());
        if (this.conn) resolve(this.conn);
        else reject(new ConnectionLost("offline"));
      };
      unsubscribe = this.subscribe((state) => {
        if (this.conn || (state.status !== "connecting" && state.status !== "starting")) settle();
      });
    });
  }

  // ---------- sync ----------
  /** Pull everything after local_max_seq; one sync at a time, a signal during one causes one more. */
  sync(): Promise<void> {
    if (this.syncing) {
      this.syncAgain = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      try {
        do {
          this.syncAgain = false;
          await this.syncOnce();
        } while (this.syncAgain);
      } finally {
        this.syncing = null;
      }
    })();
    return this.syncing;
  }

  private async syncOnce(): Promise<void> {
    for (;;) {
      const resp = await this.call((c) =>
        c.request(
          Cmd.MSG_SYNC_REQ,
          pb.MsgSyncReqSchema,
          { localMaxSeq: this.timeline.localMaxSeq, limit: SYNC_PAGE, minSeq: this.notified },
          pb.MsgSyncRespSchema,
        ),
      );
      const msgs = resp.msgs.map(toMsg);
      const applied = this.timeline.apply(msgs);
      this.absorb(applied.fresh, applied.events);
      if (!resp.hasMore) {
        // what a push brought past the synced end (a seq the sync did not see yet, e.g. still being
        // written) continues the timeline now: applied at once; past a gap it waits for the next sync
        this.takeHeld();
        return;
      }
      if (!resp.msgs.length) await new Promise((r) => setTimeout(r, 200)); // a seq still being written
    }
  }

  /**
   * Messages that arrived without a sync (in a push, or this tab's own send): applied as far as they
   * continue the timeline; those past a gap are held for gapWaitMs, until the missing ones' push comes or,
   * failing that, a sync fills the gap.
   */
  private applyPushed(msgs: Msg[]): void {
    for (const m of msgs) if (m.seq > this.timeline.localMaxSeq) this.ahead.set(m.seq, m);
    this.takeHeld();
    if (!this.ahead.size || this.gapTimer) return;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = null;
      this.forgetApplied();
      if (this.ahead.size) void this.syncSoon();
    }, this.o.gapWaitMs);
  }

  /** Apply the held messages as far as they continue the timeline, and forget those it has already. */
  private takeHeld(): void {
    const run: Msg[] = [];
    for (let next = this.timeline.localMaxSeq + 1n; this.ahead.has(next); next++) {
      run.push(this.ahead.get(next) as Msg);
      this.ahead.delete(next);
    }
    if (run.length) {
      const applied = this.timeline.apply(run);
      this.absorb(applied.fresh, applied.events);
    }
    this.forgetApplied(); // what a sync applied meanwhile; with nothing held, no timer
  }

  /** Drop held messages the timeline has since (from a sync); no gap left, no timer. */
  private forgetApplied(): void {
    for (const seq of this.ahead.keys()) if (seq <= this.timeline.localMaxSeq) this.ahead.delete(seq);
    if (!this.ahead.size && this.gapTimer) {
      clearTimeout(this.gapTimer);
      this.gapTimer = null;
    }
  }

  /** New timeline entries: chat windows, outbox echoes, profiles, lists touched by notices. */
  private absorb(fresh: Msg[], events: string[]): void {
    if (!fresh.length) return;
    const chats = { ...this.state.chats };
    let outbox = this.state.outbox;
    for (const m of fresh) {
      const key = convOf(m);
      const w = chats[key];
      if (w && !w.msgs.some((x) => x.seq === m.seq)) chats[key] = { ...w, msgs: [...w.msgs, m] };
      if (m.isMine && m.clientMsgId) outbox = outbox.filter((o) => o.clientMsgId !== m.clientMsgId);
    }
    this.state = { ...this.state, chats, outbox };
    this.publishTimeline();
    this.scheduleSave();
    const ids = new Set<bigint>();
    for (const m of fresh) {
      ids.add(m.senderId);
      if (m.groupId === 0n) ids.add(m.receiverId);
    }
    for (const r of this.timeline.snapshot().joinRequests) ids.add(r.userId);
    void this.refreshProfiles([...ids]).catch(() => undefined);
    if (events.some((e) => e.startsWith("friend_"))) void this.refreshFriends().catch(() => undefined);
    if (events.some((e) => e.startsWith("group_") || e.startsWith("member_") || e === "removed_from_group")) {
      void this.refreshGroups().catch(() => undefined);
      for (const m of fresh) {
        if (m.groupId !== 0n && this.state.members[String(m.groupId)]) void this.loadMembers(m.groupId).catch(() => undefined);
      }
    }
    this.markViewedRead();
  }

  private async refreshUnread(): Promise<void> {
    for (;;) {
      const asOf = this.timeline.localMaxSeq;
      const resp = await this.call((c) =>
        c.request(Cmd.UNREAD_REQ, pb.UnreadReqSchema, {}, pb.UnreadRespSchema),
      );
      if (this.timeline.localMaxSeq !== asOf) continue; // a sync moved on meanwhile: ask again
      this.timeline.applyUnread(
        resp.conversations.map((u) => ({
          key: convKey(u.peerId, u.groupId),
          unread: u.unread,
          lastSeq: u.lastSeq,
          readSeq: u.readSeq,
        })),
        asOf,
      );
      this.publishTimeline();
      this.scheduleSave();
      return;
    }
  }

  private applyRead(key: ConvKey, readSeq: bigint): void {
    const { changed, recount } = this.timeline.markRead(key, readSeq);
    if (changed) {
      this.publishTimeline();
      this.scheduleSave();
    }
    if (recount) void this.refreshUnread().catch(() => undefined);
  }

  // ---------- reading ----------
  /** The conversations some tab shows right now (visible): their new messages are marked read. */
  setViewing(keys: Iterable<ConvKey>): void {
    this.viewing = new Set(keys);
    this.markViewedRead();
  }

  private markViewedRead(): void {
    if (!this.conn) return;
    for (const key of this.viewing) {
      const conv = this.timeline.get(key);
      if (conv && conv.unread > 0) void this.markRead(key).catch(() => undefined);
    }
  }

  /** Mark `key` read up to `upTo` (default: its last message). */
  async markRead(key: ConvKey, upTo?: bigint): Promise<void> {
    const conv = this.timeline.get(key);
    if (!conv) return;
    const seq = upTo !== undefined && upTo < conv.last.seq ? upTo : conv.last.seq;
    if (seq <= conv.readSeq) return;
    const { peerId, groupId } = parseConvKey(key);
    const resp = await this.call((c) =>
      c.request(Cmd.MSG_READ_REQ, pb.MsgReadReqSchema, { peerId, groupId, readSeq: seq }, pb.MsgReadRespSchema),
    );
    this.applyRead(key, resp.readSeq);
  }

  // ---------- chat windows and history ----------
  async openChat(key: ConvKey): Promise<void> {
    if (this.state.chats[key]) {
      if (this.conn) await this.loadNewest(key);
      return;
    }
    this.setChat(key, { key, msgs: [], hasMore: true, loading: true, error: "" });
    await this.loadNewest(key);
  }

  /** The newest page, merged into what the window holds (after a reconnect nothing is missed). */
  private async loadNewest(key: ConvKey): Promise<void> {
    try {
      const page = await this.history(key, 0n);
      const w = this.state.chats[key];
      if (!w) return;
      const known = new Set(w.msgs.map((m) => m.seq));
      const merged = [...w.msgs, ...page.msgs.filter((m) => !known.has(m.seq))].sort((a, b) =>
        a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0,
      );
      this.setChat(key, { ...w, msgs: merged, hasMore: w.msgs.length ? w.hasMore : page.hasMore, loading: false, error: "" });
    } catch (err) {
      const w = this.state.chats[key];
      if (w) this.setChat(key, { ...w, loading: false, error: err instanceof Error ? err.message : String(err) });
    }
  }

  /** Older messages (scroll-up): one page before the oldest the window holds. */
  async loadOlder(key: ConvKey): Promise<void> {
    const w = this.state.chats[key];
    if (!w || !w.hasMore || w.loading) return;
    this.setChat(key, { ...w, loading: true });
    try {
      const before = w.msgs.length ? w.msgs[0]!.seq : 0n;
      const page = await this.history(key, before);
      const cur = this.state.chats[key]!;
      const known = new Set(cur.msgs.map((m) => m.seq));
      this.setChat(key, {
        ...cur,
        msgs: [...page.msgs.filter((m) => !known.has(m.seq)), ...cur.msgs],
        hasMore: page.hasMore,
        loading: false,
        error: "",
      });
    } catch (err) {
      const cur = this.state.chats[key]!;
      this.setChat(key, { ...cur, loading: false, error: err instanceof Error ? err.message : String(err) });
    }
  }

  private async history(key: ConvKey, beforeSeq: bigint): Promise<{ msgs: Msg[]; hasMore: boolean }> {
    const { peerId, groupId } = parseConvKey(key);
    const resp = await this.call((c) =>
      c.request(
        Cmd.MSG_HISTORY_REQ,
        pb.MsgHistoryReqSchema,
        { peerId, groupId, beforeSeq, limit: HISTORY_PAGE },
        pb.MsgHistoryRespSchema,
      ),
    );
    const msgs = resp.msgs.map(toMsg);
    void this.refreshProfiles(msgs.map((m) => m.senderId)).catch(() => undefined);
    return { msgs, hasMore: resp.hasMore };
  }

  private setChat(key: ConvKey, w: ChatWindow): void {
    this.set({ chats: { ...this.state.chats, [key]: w } });
  }

  // ---------- sending ----------
  /** Shown at once; retried with the same client_msg_id until the server acks it. */
  send(key: ConvKey, content: string, type: number = MsgType.TEXT): string {
    const item: OutboxItem = {
      clientMsgId: this.o.newId(),
      key,
      type,
      content,
      createTime: Date.now(),
      status: "sending",
      error: "",
      seq: 0n,
    };
    this.set({ outbox: [...this.state.outbox, item] });
    this.scheduleSave();
    void this.flushOutbox();
    return item.clientMsgId;
  }

  retrySend(clientMsgId: string): void {
    this.updateOutbox(clientMsgId, { status: "sending", error: "" });
    void this.flushOutbox();
  }

  discardSend(clientMsgId: string): void {
    this.set({ outbox: this.state.outbox.filter((o) => o.clientMsgId !== clientMsgId) });
    this.scheduleSave();
  }

  private updateOutbox(clientMsgId: string, patch: Partial<OutboxItem>): void {
    this.set({ outbox: this.state.outbox.map((o) => (o.clientMsgId === clientMsgId ? { ...o, ...patch } : o)) });
  }

  /** Send every pending item in order; a lost connection leaves them pending for the next connect. */
  private async flushOutbox(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (;;) {
        const item = this.state.outbox.find((o) => o.status === "sending" && o.seq === 0n);
        if (!item || !this.conn) return;
        const { peerId, groupId } = parseConvKey(item.key);
        try {
          const resp = await this.call((c) =>
            c.request(
              Cmd.MSG_SEND_REQ,
              pb.MsgSendReqSchema,
              { receiverId: peerId, groupId, type: item.type, content: item.content, clientMsgId: item.clientMsgId },
              pb.MsgSendRespSchema,
            ),
          );
          this.updateOutbox(item.clientMsgId, { seq: resp.seqId });
          this.active = true;
          this.scheduleSave();
          // This device gets no push for its own message: it knows it already when it is the next seq,
          // otherwise a sync brings it (and what came before it) into the timeline.
          const own: Msg = {
            seq: resp.seqId,
            msgId: resp.msgId,
            senderId: this.session?.userId ?? 0n,
            receiverId: groupId ? 0n : peerId,
            groupId,
            type: item.type,
            content: item.content,
            createTime: Number(resp.sendTime),
            clientMsgId: item.clientMsgId,
            isMine: true,
          };
          if (resp.seqId > this.timeline.localMaxSeq) this.applyPushed([own]);
        } catch (err) {
          if (err instanceof ConnectionLost) return; // retried after the reconnect, same client_msg_id
          if (err instanceof ServerError && err.code === ERR_UNAVAILABLE) {
            await new Promise((r) => setTimeout(r, this.o.backoffInitialMs * (1 + this.o.random())));
            continue;
          }
          this.updateOutbox(item.clientMsgId, { status: "failed", error: err instanceof Error ? err.message : String(err) });
          this.scheduleSave();
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  // ---------- people ----------
  async refreshProfiles(ids: bigint[]): Promise<void> {
    const missing = [...new Set(ids.filter((id) => id !== 0n && !this.state.users[String(id)]).map(String))];
    const me = this.session?.userId;
    if (me !== undefined && !this.meKnown && !missing.includes(String(me))) missing.push(String(me));
    if (!missing.length || !this.conn) return;
    for (let i = 0; i < missing.length; i += 200) {
      const resp = await this.call((c) =>
        c.request(
          Cmd.USER_INFO_REQ,
          pb.UserInfoReqSchema,
          { userIds: missing.slice(i, i + 200).map(BigInt) },
          pb.UserInfoRespSchema,
        ),
      );
      this.remember(resp.users.map(toUser));
      if (me !== undefined && resp.users.some((u) => u.userId === me)) this.meKnown = true;
    }
  }

  private remember(users: User[]): void {
    if (!users.length) return;
    const all = { ...this.state.users };
    for (const u of users) all[String(u.userId)] = u;
    const me = this.state.me && all[String(this.state.me.userId)];
    this.set({ users: all, ...(me ? { me } : {}) });
    this.scheduleSave();
  }

  /** By exact username (UserSearchReq); by user id when the query is a number or search is not served. */
  async searchUsers(query: string): Promise<User[]> {
    const q = query.trim();
    if (!q) return [];
    let found: User[] = [];
    try {
      const resp = await this.call((c) =>
        c.request(Cmd.USER_SEARCH_REQ, pb.UserSearchReqSchema, { username: q, limit: 20 }, pb.UserSearchRespSchema),
      );
      found = resp.users.map(toUser);
    } catch (err) {
      if (!(err instanceof ServerError) || (err.code !== ERR_UNIMPLEMENTED && err.code !== ERR_NOT_FOUND)) {
        if (!/^\d+$/.test(q)) throw err;
      }
    }
    if (!found.length && /^\d{1,20}$/.test(q)) {
      const resp = await this.call((c) =>
        c.request(Cmd.USER_INFO_REQ, pb.UserInfoReqSchema, { userIds: [BigInt(q)] }, pb.UserInfoRespSchema),
      );
      found = resp.users.map(toUser);
    }
    this.remember(found);
    return found;
  }

  async applyFriend(userId: bigint, reason: string): Promise<boolean> {
    const resp = await this.call((c) =>
      c.request(
        Cmd.FRIEND_APPLY_REQ,
        pb.FriendApplyReqSchema,
        { targetUserId: userId, reason },
        pb.FriendApplyRespSchema,
      ),
    );
    if (resp.nowFriends) {
      this.timeline.settleFriendRequest(userId);
      this.publishTimeline();
      await this.refreshFriends();
    }
    return resp.nowFriends;
  }

  async handleFriend(userId: bigint, agree: boolean): Promise<void> {
    // Answering a request is reading it: its conversation is marked read up to the request.
    const request = this.timeline.snapshot().friendRequests.find((r) => r.userId === userId);
    try {
      await this.call((c) =>
        c.request(
          Cmd.FRIEND_HANDLE_REQ,
          pb.FriendHandleReqSchema,
          { requestUserId: userId, agree },
          pb.FriendHandleRespSchema,
        ),
      );
    } finally {
      this.timeline.settleFriendRequest(userId);
      this.publishTimeline();
      this.scheduleSave();
      if (request) void this.markRead(convKey(userId, 0n), request.seq).catch(() => undefined);
    }
    if (agree) await this.refreshFriends();
  }

  async deleteFriend(userId: bigint): Promise<void> {
    await this.call((c) =>
      c.request(Cmd.FRIEND_DEL_REQ, pb.FriendDelReqSchema, { friendId: userId }, pb.FriendDelRespSchema),
    );
    await this.refreshFriends();
  }

  async block(userId: bigint): Promise<void> {
    await this.call((c) =>
      c.request(Cmd.BLACKLIST_ADD_REQ, pb.BlacklistAddReqSchema, { userId }, pb.BlacklistAddRespSchema),
    );
    await this.refreshBlacklist();
  }

  async unblock(userId: bigint): Promise<void> {
    await this.call((c) =>
      c.request(Cmd.BLACKLIST_DEL_REQ, pb.BlacklistDelReqSchema, { userId }, pb.BlacklistDelRespSchema),
    );
    await this.refreshBlacklist();
  }

  async refreshFriends(): Promise<void> {
    const resp = await this.call((c) =>
      c.request(Cmd.FRIEND_LIST_REQ, pb.FriendListReqSchema, {}, pb.FriendListRespSchema),
    );
    const friends = resp.friends.map(toUser);
    this.timeline.dropRequestsFrom(friends.map((f) => f.userId));
    this.remember(friends);
    this.set({ friends });
    this.publishTimeline();
  }

  async refreshBlacklist(): Promise<void> {
    const resp = await this.call((c) =>
      c.request(Cmd.BLACKLIST_LIST_REQ, pb.BlacklistListReqSchema, {}, pb.BlacklistListRespSchema),
    );
    this.set({ blacklist: resp.users.map(toUser) });
  }

  // ---------- groups ----------
  async refreshGroups(): Promise<void> {
    const resp = await this.call((c) =>
      c.request(Cmd.GROUP_LIST_REQ, pb.GroupListReqSchema, {}, pb.GroupListRespSchema),
    );
    const groups: Group[] = resp.groups.map((g) => ({
      groupId: g.groupId,
      name: g.groupName,
      ownerId: g.ownerId,
      memberCount: g.memberCount,
    }));
    this.set({ groups });
  }

  async createGroup(name: string, memberIds: bigint[]): Promise<bigint> {
    const resp = await this.call((c) =>
      c.request(
        Cmd.GROUP_CREATE_REQ,
        pb.GroupCreateReqSchema,
        { groupName: name, memberIds },
        pb.GroupCreateRespSchema,
      ),
    );
    await this.refreshGroups();
    return resp.groupId;
  }

  async joinGroup(groupId: bigint): Promise<boolean> {
    const resp = await this.call((c) =>
      c.request(Cmd.GROUP_JOIN_REQ, pb.GroupJoinReqSchema, { groupId }, pb.GroupJoinRespSchema),
    );
    await this.refreshGroups();
    return resp.pending;
  }

  async handleJoin(groupId: bigint, userId: bigint, agree: boolean): Promise<void> {
    const request = this.timeline.snapshot().joinRequests.find((r) => r.groupId === groupId && r.userId === userId);
    try {
      await this.call((c) =>
        c.request(
          Cmd.GROUP_JOIN_HANDLE_REQ,
          pb.GroupJoinHandleReqSchema,
          { groupId, applicantId: userId, agree },
          pb.GroupJoinHandleRespSchema,
        ),
      );
    } finally {
      this.timeline.settleJoinRequest(groupId, userId);
      this.publishTimeline();
      this.scheduleSave();
      if (request) void this.markRead(convKey(userId, 0n), request.seq).catch(() => undefined);
    }
    if (this.state.members[String(groupId)]) await this.loadMembers(groupId);
  }

  async leaveGroup(groupId: bigint): Promise<void> {
    await this.call((c) =>
      c.request(Cmd.GROUP_LEAVE_REQ, pb.GroupLeaveReqSchema, { groupId }, pb.GroupLeaveRespSchema),
    );
    await this.refreshGroups();
  }

  async removeMember(groupId: bigint, userId: bigint): Promise<void> {
    await this.call((c) =>
      c.request(
        Cmd.GROUP_REMOVE_REQ,
        pb.GroupRemoveReqSchema,
        { groupId, memberId: userId },
        pb.GroupRemoveRespSchema,
      ),
    );
    await this.loadMembers(groupId);
  }

  async loadMembers(groupId: bigint): Promise<Member[]> {
    const resp = await this.call((c) =>
      c.request(Cmd.GROUP_MEMBER_REQ, pb.GroupMemberReqSchema, { groupId }, pb.GroupMemberRespSchema),
    );
    const members: Member[] = resp.memberInfos.map((m) => ({ ...toUser(m.user!), role: m.role }));
    this.remember(members.map(({ userId, username, nickname }) => ({ userId, username, nickname })));
    this.set({ members: { ...this.state.members, [String(groupId)]: members } });
    return members;
  }

  async setNickname(nickname: string): Promise<void> {
    await this.call((c) =>
      c.request(Cmd.PROFILE_UPDATE_REQ, pb.ProfileUpdateReqSchema, { nickname }, pb.ProfileUpdateRespSchema),
    );
    const me = this.state.me!;
    this.remember([{ ...me, nickname }]);
  }

  /** The current connection, for modules that speak other commands (files). */
  connection(): Connection {
    if (!this.conn) throw new ConnectionLost("offline");
    return this.conn;
  }

  get storage(): Storage {
    return this.o.storage;
  }

  get fetcher(): typeof fetch {
    return this.o.fetcher;
  }

  get userId(): bigint | null {
    return this.session?.userId ?? null;
  }

  // ---------- state ----------
  private publishTimeline(): void {
    const snap = this.timeline.snapshot();
    this.set({
      localMaxSeq: snap.localMaxSeq,
      convs: snap.convs,
      friendRequests: snap.friendRequests,
      joinRequests: snap.joinRequests,
    });
  }

  set(patch: Partial<AppState>): void {
    this.state = { ...this.state, ...patch };
    this.emit();
  }

  private emit(): void {
    if (this.emitScheduled) return;
    this.emitScheduled = true;
    queueMicrotask(() => {
      this.emitScheduled = false;
      for (const fn of this.listeners) fn(this.state);
    });
  }

  private scheduleSave(): void {
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = null;
      void this.saveNow();
    }, 200);
  }

  /** local_max_seq is stored together with the conversations it produced, never ahead of them. */
  async saveNow(): Promise<void> {
    const session = this.session;
    if (!session) return;
    await this.o.storage.saveUser(session.userId, {
      timeline: this.timeline.snapshot(),
      outbox: this.state.outbox,
      users: Object.values(this.state.users),
    });
  }
}
