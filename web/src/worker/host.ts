// The session's side of the tab <-> session channel: one Session, any number of tabs (MessagePorts).
// Tabs call whitelisted methods and get the whole state after every change (structured clone keeps BigInt).
import { Session } from "../core/session";
import type { ConvKey } from "../core/model";
import { ServerError } from "../core/conn";
import { HttpError } from "../core/http";
import { downloadUrl, sendFile } from "../core/files";

export const METHODS = [
  "register",
  "login",
  "logout",
  "reconnectNow",
  "dropConnection",
  "openChat",
  "loadOlder",
  "markRead",
  "send",
  "retrySend",
  "discardSend",
  "searchUsers",
  "applyFriend",
  "handleFriend",
  "deleteFriend",
  "block",
  "unblock",
  "refreshFriends",
  "refreshGroups",
  "createGroup",
  "joinGroup",
  "handleJoin",
  "leaveGroup",
  "removeMember",
  "loadMembers",
  "setNickname",
] as const;
export type Method = (typeof METHODS)[number] | "sendFile" | "downloadUrl";

export type ToHost =
  | { type: "call"; id: number; method: Method; args: unknown[] }
  | { type: "viewing"; keys: ConvKey[] }
  | { type: "bye" };

export type FromHost =
  | { type: "state"; state: Session["state"] }
  | { type: "leaderGone" } // from the tab election (./leader.ts), not a Host: the leader tab closed
  | { type: "result"; id: number; ok: true; value: unknown }
  | { type: "result"; id: number; ok: false; error: { name: string; message: string; code: string | number } };

export interface PortLike {
  postMessage(m: unknown): void;
  onmessage: ((ev: MessageEvent) => void) | null;
  start?(): void;
}

export class Host {
  private viewing = new Map<PortLike, ConvKey[]>();

  constructor(private readonly session: Session) {}

  attach(port: PortLike): void {
    const unsubscribe = this.session.subscribe((state) => port.postMessage({ type: "state", state } satisfies FromHost));
    port.onmessage = (ev: MessageEvent) => {
      const m = ev.data as ToHost;
      if (m.type === "viewing") {
        this.viewing.set(port, m.keys);
        this.session.setViewing([...this.viewing.values()].flat());
      } else if (m.type === "bye") {
        unsubscribe();
        this.viewing.delete(port);
        this.session.setViewing([...this.viewing.values()].flat());
      } else if (m.type === "call") {
        void this.call(port, m);
      }
    };
    port.start?.();
  }

  private async call(port: PortLike, m: Extract<ToHost, { type: "call" }>): Promise<void> {
    try {
      let value: unknown;
      if (m.method === "sendFile") {
        value = await sendFile(this.session, ...(m.args as [ConvKey, File]));
      } else if (m.method === "downloadUrl") {
        value = await downloadUrl(this.session, m.args[0] as string);
      } else {
        if (!(METHODS as readonly string[]).includes(m.method)) throw new Error(`no method ${m.method}`);
        const fn = (this.session as unknown as Record<string, (...a: unknown[]) => unknown>)[m.method]!;
        value = await fn.apply(this.session, m.args);
      }
      port.postMessage({ type: "result", id: m.id, ok: true, value } satisfies FromHost);
    } catch (err) {
      const e = err as Error;
      const code = err instanceof ServerError ? err.code : err instanceof HttpError ? err.code : "";
      port.postMessage({
        type: "result",
        id: m.id,
        ok: false,
        error: { name: e?.name ?? "Error", message: e?.message ?? String(err), code },
      } satisfies FromHost);
    }
  }
}
