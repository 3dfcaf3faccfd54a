import { afterEach, describe, expect, it, vi } from "vitest";
import { Session } from "../src/core/session";
import { MemoryStorage } from "../src/core/storage";
import { Cmd, pb } from "../src/proto/commands";
import { FakeServer } from "./fake-server";

const ME = 10n;
const BOB = (1n << 62n) + 7n; // an id a double cannot hold

const sessions: Session[] = [];
afterEach(() => {
  for (const s of sessions.splice(0)) s.close();
});

function setup(server = new FakeServer(ME), storage = new MemoryStorage()) {
  let n = 0;
  const session = new Session({ ...server.sessionOptions(storage), newId: () => `cm-${++n}` });
  sessions.push(session);
  return { session, server, storage };
}

const syncs = (server: FakeServer) =>
  server.requests.filter((r) => r.cmd === Cmd.MSG_SYNC_REQ).map((r) => (r.body as pb.MsgSyncReq).localMaxSeq);

/** Logged in, online, the first sync done; `before`: the sync requests so far. */
async function onlineAndSynced() {
  const { session, server } = setup();
  await session.login("me", "password1");
  await vi.waitFor(() => expect(session.state.status).toBe("online"));
  await vi.waitFor(() => expect(syncs(server).length).toBeGreaterThan(0));
  return { session, server, before: syncs(server).length };
}

describe("Session", () => {
  it("logs in, connects, syncs the timeline and builds the conversation list with exact ids", async () => {
    const { session, server } = setup();
    server.incoming(BOB, "first");
    server.incoming(BOB, "second");
    await session.login("me", "password1");
    await vi.waitFor(() => expect(session.state.convs).toHaveLength(1));
    const conv = session.state.convs[0]!;
    expect(conv.key).toBe(`u:${BOB}`);
    expect(conv.last.content).toBe("second");
    expect(conv.last.senderId).toBe(BOB);
    expect(conv.unread).toBe(2);
    expect(session.state.status).toBe("online");
    expect(session.state.localMaxSeq).toBe(2n);
  });

  it("resumes from the stored local_max_seq after a reload", async () => {
    const server = new FakeServer(ME);
    const storage = new MemoryStorage();
    const first = setup(server, storage).session;
    server.incoming(BOB, "a");
    server.incoming(BOB, "b");
    await first.login("me", "password1");
    await vi.waitFor(() => expect(first.state.localMaxSeq).toBe(2n));
    await first.saveNow();
    first.close();
    server.incoming(BOB, "c");
    server.requests = [];
    const second = setup(server, storage).session;
    await second.start(); // the stored session, no password
    await vi.waitFor(() => expect(second.state.localMaxSeq).toBe(3n));
    expect(syncs(server)[0]).toBe(2n); // asked only for what came after
    expect(second.state.convs[0]!.last.content).toBe("c");
  });

  it("syncs on a push, carrying the announced seq as min_seq", async () => {
    const { session, server } = setup();
    await session.login("me", "password1");
    await vi.waitFor(() => expect(session.state.status).toBe("online"));
    server.incoming(BOB, "pushed");
    await vi.waitFor(() => expect(session.state.convs[0]?.last.content).toBe("pushed"));
    const last = server.requests.filter((r) => r.cmd === Cmd.MSG_SYNC_REQ).at(-1)!.body as pb.MsgSyncReq;
    expect(last.minSeq).toBe(1n);
  });

  it("applies a message that rides in its push without a sync, and syncs when one is missing", async () => {
    const { session, server, before } = await onlineAndSynced();
    server.incoming(BOB, "inline", 0n, 0, { inline: true });
    await vi.waitFor(() => expect(session.state.convs[0]?.last.content).toBe("inline"));
    expect(syncs(server).length).toBe(before); // applied from the push
    server.incoming(BOB, "lost push", 0n, 0, { silent: true });
    server.incoming(BOB, "after the gap", 0n, 0, { inline: true });
    await vi.waitFor(() => expect(session.state.localMaxSeq).toBe(3n));
    expect(syncs(server)).toHaveLength(before + 1); // seq 2 was missing: one sync brought 2 and 3
    expect(session.state.convs[0]!.unread).toBe(3);
  });

  it("holds a pushed message past a gap until the missing one's push comes: in order, no sync", async () => {
    const { session, server, before } = await onlineAndSynced();
    const late = server.incoming(BOB, "paced", 0n, 0, { silent: true }); // its push is late (a paced group)
    server.incoming(BOB, "overtook it", 0n, 0, { inline: true });
    await new Promise((r) => setTimeout(r, 100));
    expect(session.state.localMaxSeq).toBe(0n); // seq 2 waits for seq 1
    server.push(Cmd.MSG_PUSH_NOTIFY, pb.MsgPushNotifySchema, { maxSeqId: late.seqId, msgs: [late] });
    await vi.waitFor(() => expect(session.state.localMaxSeq).toBe(2n));
    expect(session.state.convs[0]!.last.content).toBe("overtook it"); // applied after "paced", not before
    expect(session.state.convs[0]!.unread).toBe(2);
    await new Promise((r) => setTimeout(r, 600)); // past the gap wait: nothing left to sync
    expect(syncs(server)).toHaveLength(before);
  });

  it("syncs a gap that no push fills only after the gap wait", async () => {
    const { session, server, before } = await onlineAndSynced();
    server.incoming(BOB, "lost push", 0n, 0, { silent: true });
    server.incoming(BOB, "after the gap", 0n, 0, { inline: true });
    await new Promise((r) => setTimeout(r, 300));
    expect(syncs(server)).toHaveLength(before); // still waiting (500 ms)
    await vi.waitFor(() => expect(session.state.localMaxSeq).toBe(2n));
    expect(syncs(server)).toHaveLength(before + 1);
  });

  it("applies what it held past the end of a sync at once, not on the next push", async () => {
    const { session, server, before } = await onlineAndSynced();
    server.incoming(BOB, "lost push", 0n, 0, { silent: true });
    server.syncHides = 1; // the sync after the gap wait sees seq 1, not seq 2 yet
    server.incoming(BOB, "after the gap", 0n, 0, { inline: true });
    await vi.waitFor(() => expect(syncs(server)).toHaveLength(before + 1));
    await vi.waitFor(() => expect(session.state.localMaxSeq).toBe(2n));
    expect(session.state.convs[0]!.last.content).toBe("after the gap");
    expect(syncs(server)).toHaveLength(before + 1); // no second sync: seq 2 came from its push
  });

  it("knows its own send when it is the next seq: no sync, and the outbox empties", async () => {
    const { session, server, before } = await onlineAndSynced();
    session.send(`u:${BOB}`, "mine");
    await vi.waitFor(() => expect(session.state.localMaxSeq).toBe(1n));
    expect(session.state.outbox).toHaveLength(0);
    expect(session.state.convs[0]!.last.content).toBe("mine");
    expect(syncs(server)).toHaveLength(before);
  });

  const sent = (server: FakeServer) =>
    server.requests.filter((r) => r.cmd === Cmd.MSG_SEND_REQ).map((r) => (r.body as pb.MsgSendReq).clientMsgId);

  it("shows a send at once; when the ack is lost the resync finds it stored and nothing is sent twice", async () => {
    const { session, server } = setup();
    await session.login("me", "password1");
    await vi.waitFor(() => expect(session.state.status).toBe("online"));
    server.sendFailures = 1; // stored, then the connection drops before the ack
    session.send(`u:${BOB}`, "hello");
    expect(session.state.outbox).toMatchObject([{ content: "hello", status: "sending" }]);
    await vi.waitFor(() => expect(session.state.outbox).toHaveLength(0));
    expect(server.timeline.filter((m) => m.content === "hello")).toHaveLength(1);
    expect(session.state.convs[0]).toMatchObject({ key: `u:${BOB}`, unread: 0, last: { clientMsgId: "cm-1" } });
    expect(session.state.connects).toBe(2);
  });

  it("retries a send the server never got with the same client_msg_id", async () => {
    const { session, server } = setup();
    await session.login("me", "password1");
    await vi.waitFor(() => expect(session.state.status).toBe("online"));
    server.dropsBeforeStore = 1;
    session.send(`u:${BOB}`, "hello");
    await vi.waitFor(() => expect(session.state.outbox).toHaveLength(0));
    expect(sent(server)).toEqual(["cm-1", "cm-1"]);
    expect(server.timeline.filter((m) => m.content === "hello")).toHaveLength(1);
  });

  it("lets a request made while it starts or connects wait for the connection; offline, it fails at once", async () => {
    const server = new FakeServer(ME);
    const storage = new MemoryStorage();
    const first = setup(server, storage).session;
    await first.login("me", "password1");
    await vi.waitFor(() => expect(first.state.status).toBe("online"));
    first.close();
    const second = setup(server, storage).session; // a tab taking the stored session over
    const starting = second.start();
    expect(second.state.status).toBe("starting");
    await second.refreshGroups(); // waits for the connection instead of failing at once
    expect(server.requests.filter((r) => r.cmd === Cmd.GROUP_LIST_REQ).length).toBeGreaterThan(0);
    await starting;
    server.up = false;
    server.dropAll();
    await vi.waitFor(() => expect(second.state.status).toBe("offline"));
    await expect(second.refreshGroups()).rejects.toThrow("offline");
  });

  it("keeps sends typed while offline and sends them after the reconnect", async () => {
    const { session, server } = setup();
    await session.login("me", "password1");
    await vi.waitFor(() => expect(session.state.status).toBe("online"));
    server.up = false;
    server.dropAll();
    await vi.waitFor(() => expect(session.state.status).toBe("offline"));
    session.send(`u:${BOB}`, "while down");
    server.incoming(BOB, "missed while down"); // no socket: no push
    await new Promise((r) => setTimeout(r, 30));
    expect(session.state.outbox[0]!.status).toBe("sending");
    server.up = true;
    await vi.waitFor(() => expect(session.state.status).toBe("online"));
    await vi.waitFor(() => expect(session.state.outbox).toHaveLength(0));
    expect(server.allocations).toBeGreaterThan(0); // re-dispatched before reconnecting
    const contents = session.state.convs.map((c) => c.last.content);
    expect(contents).toEqual(["while down"]);
    expect(server.timeline.map((m) => m.content)).toEqual(["missed while down", "while down"]);
    expect(session.state.localMaxSeq).toBe(2n);
  });

  it("marks a viewed conversation read, and clears it when another device read it", async () => {
    const { session, server } = setup();
    server.incoming(BOB, "one");
    server.incoming(20n, "two");
    await session.login("me", "password1");
    await vi.waitFor(() => expect(session.state.convs.map((c) => c.unread)).toEqual([1, 1]));
    session.setViewing([`u:${BOB}`]);
    await vi.waitFor(() => expect(session.state.convs.find((c) => c.key === `u:${BOB}`)!.unread).toBe(0));
    expect(server.readMarks.get(`${BOB}:0`)).toBe(1n);
    server.push(Cmd.READ_NOTIFY, pb.ReadNotifySchema, { peerId: 20n, readSeq: 2n });
    await vi.waitFor(() => expect(session.state.convs.every((c) => c.unread === 0)).toBe(true));
  });

  it("loads history pages backwards into the chat window", async () => {
    const { session, server } = setup();
    for (let i = 0; i < 45; i++) server.incoming(BOB, `m${i}`);
    await session.login("me", "password1");
    await vi.waitFor(() => expect(session.state.localMaxSeq).toBe(45n));
    await session.openChat(`u:${BOB}`);
    await vi.waitFor(() => expect(session.state.chats[`u:${BOB}`]!.msgs).toHaveLength(30));
    expect(session.state.chats[`u:${BOB}`]!.hasMore).toBe(true);
    await session.loadOlder(`u:${BOB}`);
    const w = session.state.chats[`u:${BOB}`]!;
    expect(w.msgs.map((m) => m.content)).toEqual(Array.from({ length: 45 }, (_, i) => `m${i}`));
    expect(w.hasMore).toBe(false);
  });

  it("shows a kick and forgets the token; a revoked token on reconnect does the same", async () => {
    const { session, server, storage } = setup();
    await session.login("me", "password1");
    await vi.waitFor(() => expect(session.state.status).toBe("online"));
    server.push(Cmd.KICK_NOTIFY, pb.KickNotifySchema, { reason: "logged in again" });
    await vi.waitFor(() => expect(session.state.status).toBe("kicked"));
    expect(session.state.statusDetail).toBe("logged in again");
    expect(await storage.loadSession()).toBeNull();
    const allocations = server.allocations;
    await new Promise((r) => setTimeout(r, 50));
    expect(server.allocations).toBe(allocations); // a kicked session does not reconnect (it would kick back)
  });

  it("treats a 401 from dispatch on reconnect as the end of the session", async () => {
    const { session, server } = setup();
    await session.login("me", "password1");
    await vi.waitFor(() => expect(session.state.status).toBe("online"));
    server.tokenValid = false;
    server.dropAll();
    await vi.waitFor(() => expect(session.state.status).toBe("kicked"));
  });

  it("retries a failed sync after a push instead of waiting for the next one", async () => {
    const { session, server } = setup();
    await session.login("me", "password1");
    await vi.waitFor(() => expect(session.state.status).toBe("online"));
    server.syncErrors = 2;
    server.incoming(BOB, "only push");
    await vi.waitFor(() => expect(session.state.convs[0]?.last.content).toBe("only push"));
    expect(session.state.status).toBe("online");
  });

  it("beats as often as dispatch's client config says", async () => {
    const server = new FakeServer(ME);
    server.http.clientConfig = async () => ({ heartbeatSeconds: 0.02 });
    const session = new Session({ http: server.http, socket: server.socketFactory, storage: new MemoryStorage() });
    sessions.push(session);
    await session.login("me", "password1");
    await new Promise((r) => setTimeout(r, 150));
    expect(server.requests.filter((r) => r.cmd === Cmd.HEARTBEAT_REQ).length).toBeGreaterThanOrEqual(3);
  });

  it("while a conversation is going on, syncs once per heartbeat (a lost push waits one beat); idle, pulls nothing", async () => {
    const server = new FakeServer(ME);
    const session = new Session({
      http: server.http,
      socket: server.socketFactory,
      storage: new MemoryStorage(),
      heartbeatMs: 30,
      random: () => 0.5,
    });
    sessions.push(session);
    await session.login("me", "password1");
    await vi.waitFor(() => expect(session.state.status).toBe("online"));
    server.incoming(BOB, "pushed", 0n, 0, { inline: true }); // activity: the next beat syncs once
    server.incoming(BOB, "its push was lost", 0n, 0, { silent: true });
    await vi.waitFor(() => expect(session.state.localMaxSeq).toBe(2n), { timeout: 2000 });
    await new Promise((r) => setTimeout(r, 60)); // the beat after that catch-up
    const idle = syncs(server).length;
    await new Promise((r) => setTimeout(r, 200)); // several beats with nothing going on
    expect(syncs(server)).toHaveLength(idle);
  });

  it("falls back to a lookup by id when the server does not serve user search", async () => {
    const { session } = setup();
    await session.login("me", "password1");
    await vi.waitFor(() => expect(session.state.status).toBe("online"));
    const found = await session.searchUsers(String(BOB));
    expect(found.map((u) => u.userId)).toEqual([BOB]);
    expect(await session.searchUsers("nobody")).toEqual([]);
  });
});
