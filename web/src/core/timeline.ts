// The synced timeline as the app sees it: local_max_seq, one summary per conversation (last message,
// unread count, read mark), and the pending friend / join requests that arrived as timeline messages.
// Pure logic, no I/O: the session feeds it sync pages, unread answers and read marks.
import {
  convOf,
  MsgType,
  noticeId,
  parseNotice,
  type ConvKey,
  type ConvSummary,
  type FriendRequest,
  type JoinRequest,
  type Msg,
} from "./model";

export interface TimelineSnapshot {
  localMaxSeq: bigint;
  convs: ConvSummary[];
  friendRequests: FriendRequest[];
  joinRequests: JoinRequest[];
}

export interface Applied {
  fresh: Msg[]; // entries above the old local_max_seq, in seq order
  events: string[]; // notice events among them (friend_accepted, member_joined, …)
}

export class Timeline {
  localMaxSeq = 0n;
  private convs = new Map<ConvKey, ConvSummary>();
  private friendReqs = new Map<string, FriendRequest>();
  private joinReqs = new Map<string, JoinRequest>();

  constructor(snapshot?: TimelineSnapshot) {
    if (snapshot) {
      this.localMaxSeq = snapshot.localMaxSeq;
      for (const c of snapshot.convs) this.convs.set(c.key, { ...c });
      for (const r of snapshot.friendRequests) this.friendReqs.set(String(r.userId), r);
      for (const r of snapshot.joinRequests) this.joinReqs.set(`${r.groupId}:${r.userId}`, r);
    }
  }

  snapshot(): TimelineSnapshot {
    return {
      localMaxSeq: this.localMaxSeq,
      convs: this.list(),
      friendRequests: [...this.friendReqs.values()],
      joinRequests: [...this.joinReqs.values()],
    };
  }

  /** Conversations, the most recent first. */
  list(): ConvSummary[] {
    return [...this.convs.values()].sort((a, b) =>
      b.last.createTime !== a.last.createTime ? b.last.createTime - a.last.createTime : Number(b.last.seq - a.last.seq),
    );
  }

  get(key: ConvKey): ConvSummary | undefined {
    return this.convs.get(key);
  }

  /** Apply one sync page (ascending seq). Entries at or below local_max_seq are ignored (replays). */
  apply(msgs: Iterable<Msg>): Applied {
    const fresh: Msg[] = [];
    const events: string[] = [];
    for (const m of msgs) {
      if (m.seq <= this.localMaxSeq) continue;
      this.localMaxSeq = m.seq;
      fresh.push(m);
      const key = convOf(m);
      const conv = this.convs.get(key) ?? { key, last: m, unread: 0, readSeq: 0n };
      conv.last = m;
      if (!m.isMine && m.seq > conv.readSeq) conv.unread += 1;
      this.convs.set(key, conv);
      if (m.type === MsgType.FRIEND_REQ || m.type === MsgType.SYSTEM) {
        const n = parseNotice(m.content);
        if (n) {
          events.push(n.event);
          this.notice(m, n.event, n);
        }
      }
    }
    return { fresh, events };
  }

  private notice(m: Msg, event: string, n: ReturnType<typeof parseNotice> & object): void {
    if (event === "friend_request") {
      const uid = noticeId(n, "request_uid") || m.senderId;
      this.friendReqs.set(String(uid), { userId: uid, reason: String(n.reason ?? ""), seq: m.seq });
    } else if (event === "friend_accepted" || event === "friend_added") {
      this.friendReqs.delete(String(noticeId(n, "user_id") || m.senderId));
    } else if (event === "group_join_request") {
      const gid = noticeId(n, "group_id");
      const uid = noticeId(n, "user_id") || m.senderId;
      this.joinReqs.set(`${gid}:${uid}`, { groupId: gid, userId: uid, seq: m.seq });
    } else if (event === "member_joined") {
      this.joinReqs.delete(`${noticeId(n, "group_id") || m.groupId}:${noticeId(n, "user_id")}`);
    }
  }

  /** A friend request was answered (here or elsewhere): it leaves the pending list. */
  settleFriendRequest(userId: bigint): void {
    this.friendReqs.delete(String(userId));
  }

  settleJoinRequest(groupId: bigint, userId: bigint): void {
    this.joinReqs.delete(`${groupId}:${userId}`);
  }

  /** Pending requests from people who are friends already are settled (answered on another device). */
  dropRequestsFrom(friendIds: Iterable<bigint>): void {
    for (const id of friendIds) this.friendReqs.delete(String(id));
  }

  /**
   * A read mark (mine, or from another device through ReadNotify). Messages up to `readSeq` are read;
   * the unread count goes to 0 when it covers the last message, else `recount` is true (ask the server).
   */
  markRead(key: ConvKey, readSeq: bigint): { changed: boolean; recount: boolean } {
    const conv = this.convs.get(key);
    if (!conv || readSeq <= conv.readSeq) return { changed: false, recount: false };
    conv.readSeq = readSeq;
    if (readSeq >= conv.last.seq) {
      const changed = conv.unread !== 0;
      conv.unread = 0;
      return { changed: true, recount: false };
    }
    return { changed: true, recount: conv.unread !== 0 };
  }

  /**
   * The server's unread answer (UnreadResp: conversations with unread messages only), asked for while the
   * local timeline stood at `asOfSeq` (the session asks again if a sync moved it meanwhile): listed
   * conversations take its counts and marks, the others are fully read.
   */
  applyUnread(
    list: Iterable<{ key: ConvKey; unread: number; lastSeq: bigint; readSeq: bigint }>,
    asOfSeq: bigint,
  ): void {
    const listed = new Set<ConvKey>();
    for (const u of list) {
      listed.add(u.key);
      const conv = this.convs.get(u.key);
      if (!conv) continue; // not synced yet: the sync that brings it counts it
      conv.readSeq = u.readSeq > conv.readSeq ? u.readSeq : conv.readSeq;
      conv.unread = u.unread;
    }
    for (const conv of this.convs.values()) {
      if (listed.has(conv.key) || conv.last.seq > asOfSeq) continue;
      conv.unread = 0;
      if (conv.readSeq < conv.last.seq) conv.readSeq = conv.last.seq;
    }
  }

  unreadTotal(): number {
    let n = 0;
    for (const c of this.convs.values()) n += c.unread;
    return n;
  }
}
