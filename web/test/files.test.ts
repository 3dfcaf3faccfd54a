import { afterEach, describe, expect, it, vi } from "vitest";
import "fake-indexeddb/auto";
import { Session } from "../src/core/session";
import { IdbStorage, MemoryStorage } from "../src/core/storage";
import { fileBody, md5Of, resumeUploads, sendFile } from "../src/core/files";
import { Cmd, pb } from "../src/proto/commands";
import { FakeServer } from "./fake-server";

const ME = 10n;
const BOB = 11n;
const sessions: Session[] = [];
afterEach(() => {
  for (const s of sessions.splice(0)) s.close();
});

async function online(server = new FakeServer(ME), storage = new MemoryStorage()) {
  const session = new Session({
    http: server.http,
    socket: server.socketFactory,
    storage,
    fetcher: server.fetcher,
    heartbeatMs: 60_000,
    backoffInitialMs: 5,
  });
  sessions.push(session);
  await session.login("me", "password1");
  await vi.waitFor(() => expect(session.state.status).toBe("online"));
  return { session, server, storage };
}

const bytes = (n: number) => new Uint8Array(Array.from({ length: n }, (_, i) => (i * 7) % 256));

describe("files", () => {
  it("hashes like everyone else (MD5, hex)", async () => {
    expect(await md5Of(new Blob([new TextEncoder().encode("hello")]))).toBe("5d41402abc4b2a76b9719d911017c592");
  });

  it("uploads in chunks of the gateway's size and sends a FILE message naming the task", async () => {
    const { session, server } = await online();
    const file = new File([bytes(10)], "notes.txt", { type: "text/plain" });
    const taskId = await sendFile(session, `u:${BOB}`, file);
    expect(server.puts.map((p) => [p.offset, p.length])).toEqual([[0, 4], [4, 4], [8, 2]]);
    expect(server.files.get(taskId)!.bytes).toEqual([...bytes(10)]);
    await vi.waitFor(() => expect(server.timeline.at(-1)?.type).toBe(pb.MsgType.FILE));
    expect(fileBody(server.timeline.at(-1)!.content)).toEqual({ task_id: taskId, file_name: "notes.txt", size: 10 });
    const req = server.requests.find((r) => r.cmd === Cmd.FILE_UPLOAD_REQ)!.body as pb.FileUploadReq;
    expect(req.md5).toBe(await md5Of(file));
    expect(req.receiverId).toBe(BOB);
  });

  it("sends images as IMAGE messages", async () => {
    const { session, server } = await online();
    await sendFile(session, `g:5`, new File([bytes(3)], "cat.png", { type: "image/png" }));
    await vi.waitFor(() => expect(server.timeline.at(-1)?.type).toBe(pb.MsgType.IMAGE));
    expect(server.timeline.at(-1)!.groupId).toBe(5n);
  });

  it("resumes a stored upload from the offset the gateway holds (after a reload)", async () => {
    const server = new FakeServer(ME);
    const storage = new MemoryStorage();
    const file = new File([bytes(10)], "big.bin");
    const md5 = await md5Of(file);
    server.files.set("task-9", { id: "task-9", size: 10, md5, bytes: [...bytes(6)], done: false });
    await storage.saveUpload(ME, { id: "task-9", key: `u:${BOB}`, file, name: "big.bin", size: 10, md5, image: false });
    const { session } = await online(server, storage);
    await resumeUploads(session);
    expect(server.puts).toEqual([{ task: "task-9", offset: 6, length: 4 }]); // only what was missing
    expect(server.files.get("task-9")!.bytes).toEqual([...bytes(10)]);
    expect(await storage.loadUploads(ME)).toEqual([]);
    await vi.waitFor(() => expect(fileBody(server.timeline.at(-1)?.content ?? "")?.task_id).toBe("task-9"));
  });

  it("follows the gateway's offset when it holds another one (409)", async () => {
    const { session, server } = await online();
    server.beforePut = (task) => {
      server.beforePut = undefined;
      task.bytes.push(...bytes(4)); // bytes from an earlier attempt the client did not hear about
    };
    const id = await sendFile(session, `u:${BOB}`, new File([bytes(8)], "x.bin"));
    expect(server.files.get(id)!.bytes).toEqual([...bytes(8)]);
    expect(server.puts.map((p) => p.offset)).toEqual([4]);
  });

  it("proves possession of a known file instead of uploading it (instant upload)", async () => {
    const { session, server } = await online();
    const content = bytes(9);
    const md5 = await md5Of(new Blob([content]));
    server.files.set("old", { id: "old", size: 9, md5, bytes: [...content], done: true });
    const expected = await md5Of(new Blob([content.slice(2, 5)])); // the range the fake server picks
    server.proofMd5 = (known) => (known.id === "old" ? expected : "");
    await sendFile(session, `u:${BOB}`, new File([content], "same.bin"));
    expect(server.puts).toEqual([]);
    const followUp = server.requests.filter((r) => r.cmd === Cmd.FILE_UPLOAD_REQ).at(-1)!.body as pb.FileUploadReq;
    expect(followUp.proof).toBe(expected);
  });
});

describe("IndexedDB storage", () => {
  it("keeps the session, the timeline summary with BigInt ids, and uploads with their file", async () => {
    const db = new IdbStorage(`test-${Math.random()}`);
    await db.saveSession({ userId: 1n << 60n, username: "a", token: "t", expiresAt: 1, wsUrl: "ws://x" });
    expect((await db.loadSession())!.userId).toBe(1n << 60n);
    await db.saveUser(7n, { timeline: { localMaxSeq: 99n, convs: [], friendRequests: [], joinRequests: [] }, outbox: [], users: [] });
    expect((await db.loadUser(7n))!.timeline.localMaxSeq).toBe(99n);
    await db.saveUpload(7n, { id: "t", key: "u:1", file: new Blob(["abc"]), name: "n", size: 3, md5: "m", image: false });
    expect((await db.loadUploads(7n)).map((u) => u.id)).toEqual(["t"]);
    expect(await db.loadUploads(8n)).toEqual([]);
    await db.deleteUpload(7n, "t");
    await db.saveSession(null);
    expect(await db.loadSession()).toBeNull();
    expect(await db.loadUploads(7n)).toEqual([]);
  });
});

describe("reachable", () => {
  it("keeps the page's loopback name for the same server, other gateways as they are", async () => {
    const { reachable } = await import("../src/core/files");
    expect(reachable("http://127.0.0.1:8080", "http://localhost:8080")).toBe("http://localhost:8080");
    expect(reachable("http://127.0.0.1:8090/", "http://localhost:8080")).toBe("http://127.0.0.1:8090");
    expect(reachable("https://files.example.com/", "https://chat.example.com")).toBe("https://files.example.com");
    expect(reachable("http://127.0.0.1:8080", undefined)).toBe("http://127.0.0.1:8080");
  });
});
