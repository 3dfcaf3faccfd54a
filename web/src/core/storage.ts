// What survives a reload: the session (token) and, per user, the synced timeline summary (local_max_seq,
// conversations, read marks), the outbox and unfinished uploads. IndexedDB in the browser, memory in tests.
import { openDB, type IDBPDatabase } from "idb";
import type { TimelineSnapshot } from "./timeline";
import type { OutboxItem, User } from "./model";

export interface StoredSession {
  userId: bigint;
  username: string;
  token: string;
  expiresAt: number;
  wsUrl: string;
}

export interface StoredUser {
  timeline: TimelineSnapshot;
  outbox: OutboxItem[];
  users: User[];
}

export interface StoredUpload {
  id: string; // task id
  key: string; // conversation
  file: Blob;
  name: string;
  size: number;
  md5: string;
  image: boolean;
}

export interface Storage {
  loadSession(): Promise<StoredSession | null>;
  saveSession(s: StoredSession | null): Promise<void>;
  loadUser(userId: bigint): Promise<StoredUser | null>;
  saveUser(userId: bigint, data: StoredUser): Promise<void>;
  loadUploads(userId: bigint): Promise<StoredUpload[]>;
  saveUpload(userId: bigint, u: StoredUpload): Promise<void>;
  deleteUpload(userId: bigint, id: string): Promise<void>;
}

export class MemoryStorage implements Storage {
  session: StoredSession | null = null;
  users = new Map<bigint, StoredUser>();
  uploads = new Map<string, StoredUpload>();
  async loadSession() {
    return this.session ? structuredClone(this.session) : null;
  }
  async saveSession(s: StoredSession | null) {
    this.session = s ? structuredClone(s) : null;
  }
  async loadUser(userId: bigint) {
    const u = this.users.get(userId);
    return u ? structuredClone(u) : null;
  }
  async saveUser(userId: bigint, data: StoredUser) {
    this.users.set(userId, structuredClone(data));
  }
  async loadUploads(userId: bigint) {
    return [...this.uploads.entries()].filter(([k]) => k.startsWith(`${userId}:`)).map(([, v]) => v);
  }
  async saveUpload(userId: bigint, u: StoredUpload) {
    this.uploads.set(`${userId}:${u.id}`, u);
  }
  async deleteUpload(userId: bigint, id: string) {
    this.uploads.delete(`${userId}:${id}`);
  }
}

export class IdbStorage implements Storage {
  private db: Promise<IDBPDatabase>;
  constructor(name = "tinyim") {
    this.db = openDB(name, 1, {
      upgrade(db) {
        db.createObjectStore("kv");
        db.createObjectStore("uploads");
      },
    });
  }
  async loadSession() {
    return ((await (await this.db).get("kv", "session")) as StoredSession | undefined) ?? null;
  }
  async saveSession(s: StoredSession | null) {
    const db = await this.db;
    if (s) await db.put("kv", s, "session");
    else await db.delete("kv", "session");
  }
  async loadUser(userId: bigint) {
    return ((await (await this.db).get("kv", `user:${userId}`)) as StoredUser | undefined) ?? null;
  }
  async saveUser(userId: bigint, data: StoredUser) {
    await (await this.db).put("kv", data, `user:${userId}`);
  }
  async loadUploads(userId: bigint) {
    const range = IDBKeyRange.bound(`${userId}:`, `${userId}:\uffff`);
    return (await (await this.db).getAll("uploads", range)) as StoredUpload[];
  }
  async saveUpload(userId: bigint, u: StoredUpload) {
    await (await this.db).put("uploads", u, `${userId}:${u.id}`);
  }
  async deleteUpload(userId: bigint, id: string) {
    await (await this.db).delete("uploads", `${userId}:${id}`);
  }
}
