// Files and images over the HTTP contract of the file gateway (contracts.md): FileUploadReq over the
// WebSocket gives a task, a short-lived upload token and the gateway's HTTP base; the bytes go as PUTs of at
// most chunk_size from the offset the gateway holds (so a cut or a reload resumes); the message names the task.
import { createMD5 } from "hash-wasm";
import { Cmd, pb } from "../proto/commands";
import { MsgType, parseConvKey, type ConvKey, type Upload } from "./model";
import type { Session } from "./session";
import type { StoredUpload } from "./storage";

const HASH_SLICE = 4 << 20;

export async function md5Of(blob: Blob, onProgress?: (done: number) => void): Promise<string> {
  const md5 = await createMD5();
  md5.init();
  for (let at = 0; at < blob.size; at += HASH_SLICE) {
    md5.update(new Uint8Array(await blob.slice(at, at + HASH_SLICE).arrayBuffer()));
    onProgress?.(Math.min(blob.size, at + HASH_SLICE));
  }
  return md5.digest("hex");
}

/** The JSON body of a FILE / IMAGE message. */
export interface FileBody {
  task_id: string;
  file_name: string;
  size: number;
}

export function fileBody(content: string): FileBody | null {
  try {
    const v = JSON.parse(content) as FileBody;
    return typeof v.task_id === "string" ? v : null;
  } catch {
    return null;
  }
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

/**
 * The upload base as this page can reach it: a one-process server names itself http://127.0.0.1:8080 even
 * when the page was opened as http://localhost:8080, which would make every PUT cross-origin.
 */
export function reachable(httpUrl: string, here: string | undefined = globalThis.location?.origin): string {
  if (!here) return httpUrl;
  const target = new URL(httpUrl);
  const page = new URL(here);
  if (target.port === page.port && target.protocol === page.protocol && LOOPBACK.has(target.hostname) && LOOPBACK.has(page.hostname)) {
    return page.origin + target.pathname.replace(/\/$/, "");
  }
  return httpUrl.replace(/\/$/, "");
}

function patch(session: Session, id: string, change: Partial<Upload>): void {
  session.set({ uploads: session.state.uploads.map((u) => (u.id === id ? { ...u, ...change } : u)) });
}

/** Upload `file` and send it into conversation `key` as an IMAGE (image/*) or FILE message. */
export async function sendFile(session: Session, key: ConvKey, file: File): Promise<string> {
  const localId = `local-${Date.now()}-${Math.random().toString(16).slice(2)}`;
  session.set({
    uploads: [
      ...session.state.uploads,
      { id: localId, key, name: file.name, size: file.size, done: 0, status: "hashing", error: "" },
    ],
  });
  try {
    const md5 = await md5Of(file);
    const stored: StoredUpload = {
      id: "",
      key,
      file,
      name: file.name,
      size: file.size,
      md5,
      image: file.type.startsWith("image/"),
    };
    return await upload(session, stored, localId);
  } catch (err) {
    patch(session, localId, { status: "failed", error: err instanceof Error ? err.message : String(err) });
    throw err;
  }
}

/** Unfinished uploads stored before a reload continue from the offset the gateway holds. */
export async function resumeUploads(session: Session): Promise<void> {
  const me = session.userId;
  const storage = session.storage;
  if (me === null) return;
  for (const u of await storage.loadUploads(me)) {
    session.set({
      uploads: [
        ...session.state.uploads,
        { id: u.id, key: u.key, name: u.name, size: u.size, done: 0, status: "uploading", error: "" },
      ],
    });
    await waitOnline(session);
    await upload(session, u, u.id).catch((err) =>
      patch(session, u.id, { status: "failed", error: err instanceof Error ? err.message : String(err) }),
    );
  }
}

async function waitOnline(session: Session): Promise<void> {
  while (session.state.status !== "online") {
    if (session.state.status === "loggedOut" || session.state.status === "kicked") throw new Error("logged out");
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function upload(session: Session, u: StoredUpload, localId: string): Promise<string> {
  const storage = session.storage;
  const me = session.userId!;
  const { peerId } = parseConvKey(u.key);
  const ask = (init: { taskId?: string; proof?: string }) =>
    session
      .connection()
      .request(
        Cmd.FILE_UPLOAD_REQ,
        pb.FileUploadReqSchema,
        { fileName: u.name, fileSize: BigInt(u.size), md5: u.md5, receiverId: peerId, ...init },
        pb.FileUploadRespSchema,
      );
  let ticket = await ask(u.id ? { taskId: u.id } : {});
  if (!u.id) {
    u.id = ticket.taskId;
    patch(session, localId, { id: ticket.taskId, status: "uploading" });
    localId = ticket.taskId;
    await storage.saveUpload(me, u);
  }
  if (ticket.proofRequired) {
    const start = Number(ticket.proofOffset);
    const proof = await md5Of(u.file.slice(start, start + Number(ticket.proofLength)));
    ticket = await ask({ taskId: u.id, proof });
  }
  if (!ticket.isInstant) {
    let offset = Number(ticket.offset);
    const chunk = ticket.chunkSize || 1 << 20;
    const url = `${reachable(ticket.httpUrl)}/files/uploads/${encodeURIComponent(u.id)}`;
    let failures = 0;
    while (offset < u.size) {
      patch(session, localId, { done: offset, status: "uploading" });
      let resp: Response;
      try {
        resp = await session.fetcher(url, {
          method: "PUT",
          headers: { authorization: `Bearer ${ticket.uploadToken}`, "upload-offset": String(offset) },
          body: u.file.slice(offset, offset + chunk),
        });
      } catch (err) {
        // Network cut: wait for the session to be back, then ask again (fresh token, the held offset).
        if (++failures > 8) throw err;
        await new Promise((r) => setTimeout(r, Math.min(8000, 250 * 2 ** failures)));
        await waitOnline(session);
        ticket = await ask({ taskId: u.id });
        offset = Number(ticket.offset);
        continue;
      }
      const body = (await resp.json().catch(() => ({}))) as { offset?: number; error?: string };
      if (resp.status === 200 || resp.status === 409) {
        offset = Number(body.offset ?? offset);
      } else if (resp.status === 401 || resp.status === 403) {
        ticket = await ask({ taskId: u.id });
        offset = Number(ticket.offset);
      } else {
        throw new Error(body.error ?? `upload failed (HTTP ${resp.status})`);
      }
    }
  }
  patch(session, localId, { done: u.size, status: "finished" });
  await storage.deleteUpload(me, u.id);
  const content = JSON.stringify({ task_id: u.id, file_name: u.name, size: u.size } satisfies FileBody);
  session.send(u.key, content, u.image ? MsgType.IMAGE : MsgType.FILE);
  setTimeout(() => session.set({ uploads: session.state.uploads.filter((x) => x.id !== localId) }), 1500);
  return u.id;
}

/** A download URL for a FILE / IMAGE message (it carries a short-lived token: usable as <img src>). */
export async function downloadUrl(session: Session, taskId: string): Promise<string> {
  const resp = await session
    .connection()
    .request(Cmd.FILE_DOWNLOAD_REQ, pb.FileDownloadReqSchema, { taskId }, pb.FileDownloadRespSchema);
  return resp.httpUrl;
}
