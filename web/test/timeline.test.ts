import { describe, expect, it } from "vitest";
import { Timeline } from "../src/core/timeline";
import { convOf, parseNotice, noticeId, type Msg } from "../src/core/model";

const ME = 1n;
let nextSeq = 1n;
function msg(p: Partial<Msg>): Msg {
  const seq = p.seq ?? nextSeq++;
  return {
    seq,
    msgId: 1000n + seq,
    senderId: 2n,
    receiverId: ME,
    groupId: 0n,
    type: 0,
    content: "x",
    createTime: Number(seq) * 1000,
    clientMsgId: "",
    isMine: false,
    ...p,
  };
}

describe("Timeline", () => {
  it("keys conversations by the peer (both directions) or the group", () => {
    expect(convOf(msg({ senderId: 2n, receiverId: ME }))).toBe("u:2");
    expect(convOf(msg({ senderId: ME, receiverId: 2n, isMine: true }))).toBe("u:2");
    expect(convOf(msg({ groupId: 9n }))).toBe("g:9");
  });

  it("advances local_max_seq, ignores replays, counts unread from others only", () => {
    const t = new Timeline();
    const a = msg({ seq: 1n });
    const b = msg({ seq: 2n, senderId: ME, receiverId: 2n, isMine: true });
    const c = msg({ seq: 3n });
    expect(t.apply([a, b, c]).fresh).toHaveLength(3);
    expect(t.apply([a, b, c]).fresh).toHaveLength(0); // a replayed page changes nothing
    expect(t.localMaxSeq).toBe(3n);
    expect(t.get("u:2")).toMatchObject({ unread: 2, last: { seq: 3n } });
  });

  it("lists the most recent conversation first", () => {
    const t = new Timeline();
    t.apply([msg({ seq: 1n, senderId: 2n }), msg({ seq: 2n, senderId: 3n }), msg({ seq: 3n, groupId: 7n })]);
    expect(t.list().map((c) => c.key)).toEqual(["g:7", "u:3", "u:2"]);
    t.apply([msg({ seq: 4n, senderId: 2n })]);
    expect(t.list()[0]!.key).toBe("u:2");
  });

  it("clears unread on a read mark covering the last message; a partial one asks for a recount", () => {
    const t = new Timeline();
    t.apply([msg({ seq: 1n }), msg({ seq: 2n }), msg({ seq: 3n })]);
    expect(t.markRead("u:2", 1n)).toEqual({ changed: true, recount: true });
    expect(t.markRead("u:2", 1n)).toEqual({ changed: false, recount: false }); // never goes back
    expect(t.markRead("u:2", 3n)).toEqual({ changed: true, recount: false });
    expect(t.get("u:2")!.unread).toBe(0);
    t.apply([msg({ seq: 4n })]);
    expect(t.get("u:2")!.unread).toBe(1);
  });

  it("takes the server's unread answer; conversations it does not list are read", () => {
    const t = new Timeline();
    t.apply([msg({ seq: 1n }), msg({ seq: 2n, senderId: 3n }), msg({ seq: 3n, senderId: 3n })]);
    t.applyUnread([{ key: "u:3", unread: 1, lastSeq: 3n, readSeq: 2n }], 3n);
    expect(t.get("u:2")).toMatchObject({ unread: 0, readSeq: 1n });
    expect(t.get("u:3")).toMatchObject({ unread: 1, readSeq: 2n });
    expect(t.unreadTotal()).toBe(1);
  });

  it("survives a snapshot round trip (what is stored across reloads)", () => {
    const t = new Timeline();
    t.apply([msg({ seq: 1n }), msg({ seq: 2n, groupId: 5n })]);
    const copy = new Timeline(structuredClone(t.snapshot()));
    expect(copy.localMaxSeq).toBe(2n);
    expect(copy.list()).toEqual(t.list());
  });

  it("tracks friend and join requests that arrive as timeline messages until they are settled", () => {
    const t = new Timeline();
    t.apply([
      msg({ seq: 1n, senderId: 4n, type: 4, content: '{"event":"friend_request","request_uid":4,"reason":"hi"}' }),
      msg({ seq: 2n, senderId: 5n, type: 3, content: '{"event":"group_join_request","group_id":9,"user_id":5}' }),
    ]);
    expect(t.snapshot().friendRequests).toEqual([{ userId: 4n, reason: "hi", seq: 1n }]);
    expect(t.snapshot().joinRequests).toEqual([{ groupId: 9n, userId: 5n, seq: 2n }]);
    t.apply([msg({ seq: 3n, groupId: 9n, type: 3, content: '{"event":"member_joined","group_id":9,"user_id":5}' })]);
    expect(t.snapshot().joinRequests).toEqual([]);
    t.dropRequestsFrom([4n]);
    expect(t.snapshot().friendRequests).toEqual([]);
  });

  it("reads notice ids past 2^53 exactly", () => {
    const n = parseNotice('{"event":"member_left","group_id":9007199254740993,"user_id":3}')!;
    expect(noticeId(n, "group_id")).toBe(9007199254740993n);
    expect(noticeId(n, "user_id")).toBe(3n);
    expect(parseNotice("plain text")).toBeNull();
  });
});
