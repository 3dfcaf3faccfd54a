// The tab's side: talk to the SharedWorker (or, where SharedWorker does not exist, to a session in this page).
import type { AppState, Status } from "../core/model";
import type { FromHost, Method, PortLike, ToHost } from "./host";
import { ElectedTab } from "./leader";

export class RemoteError extends Error {
  constructor(
    name: string,
    message: string,
    readonly code: string | number,
  ) {
    super(message);
    this.name = name;
  }
}

export class Bridge {
  private nextId = 1;
  private waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private listeners = new Set<(s: AppState) => void>();
  state: AppState | null = null;
  readonly shared: boolean;

  private constructor(
    private readonly port: PortLike,
    shared: boolean,
  ) {
    this.shared = shared;
    port.onmessage = (ev: MessageEvent) => this.receive(ev.data as FromHost);
    port.start?.();
    addEventListener("pagehide", () => this.post({ type: "bye" }));
  }

  static async connect(): Promise<Bridge> {
    if (typeof SharedWorker !== "undefined" && !new URLSearchParams(location.search).has("noshared")) {
      const worker = new SharedWorker(new URL("./shared.ts", import.meta.url), { type: "module", name: "tinyim" });
      return new Bridge(worker.port, true);
    }
    return new Bridge(await leaderTab(), false);
  }

  /** A Bridge over any port (the tests give it a MessageChannel's). */
  static over(port: PortLike, shared: boolean): Bridge {
    return new Bridge(port, shared);
  }

  call<T = unknown>(method: Method, ...args: unknown[]): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      // A call the session never answers (its leader tab went away mid-call) fails instead of hanging;
      // uploads take as long as they take.
      const timer =
        method === "sendFile"
          ? undefined
          : setTimeout(() => {
              this.waiting.delete(id);
              reject(new RemoteError("Timeout", "no answer from the session; try again", "timeout"));
            }, 60_000);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          (resolve as (v: unknown) => void)(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.post({ type: "call", id, method, args });
    });
  }

  viewing(keys: string[]): void {
    this.post({ type: "viewing", keys });
  }

  subscribe(fn: (s: AppState) => void): () => void {
    this.listeners.add(fn);
    if (this.state) fn(this.state);
    return () => this.listeners.delete(fn);
  }

  private post(m: ToHost): void {
    this.port.postMessage(m);
  }

  private receive(m: FromHost): void {
    if (m.type === "state" || m.type === "leaderGone") {
      // leaderGone: the tab that ran the session closed; this one shows what a new session would say first
      const next = m.type === "state" ? m.state : this.state && { ...this.state, status: "starting" as const };
      if (!next) return;
      const state = shownState(this.state, next);
      this.state = state;
      for (const fn of this.listeners) fn(state);
      return;
    }
    const w = this.waiting.get(m.id);
    if (!w) return;
    this.waiting.delete(m.id);
    if (m.ok) w.resolve(m.value);
    else w.reject(new RemoteError(m.error.name, m.error.message, m.error.code));
  }
}

const SIGNED_IN: readonly Status[] = ["connecting", "online", "offline"];

/**
 * What a tab shows when its session says `next`. "starting" is a session that has not read the stored one yet:
 * without SharedWorker, when the leader tab goes away the tab that takes over starts a new session, and every
 * tab hears "starting" from it before it resumes. Shown, it would replace the whole app by "Loading" and back
 * (the page's tab, its open chat, what was typed, all lost, and an element being used gone from the DOM):
 * the tab keeps what it shows, signed in as connecting, until the new session says where it is.
 */
export function shownState(shown: AppState | null, next: AppState): AppState {
  if (next.status !== "starting" || !shown || shown.status === "starting") return next;
  return SIGNED_IN.includes(shown.status) ? { ...shown, status: "connecting", statusDetail: "", retryAt: 0 } : shown;
}

/**
 * Without SharedWorker: the tabs elect a leader (Web Locks) that runs the one session and serves the others over
 * a BroadcastChannel (./leader.ts). Without Web Locks: a session per tab.
 */
async function leaderTab(): Promise<PortLike> {
  const { startHost } = await import("./runtime");
  if (typeof navigator.locks === "undefined" || typeof BroadcastChannel === "undefined") {
    const channel = new MessageChannel();
    startHost(location.origin).attach(channel.port1);
    return channel.port2;
  }
  const tab = new ElectedTab(
    new BroadcastChannel("tinyim-tabs"),
    (held) => void navigator.locks.request("tinyim-leader", held),
    () => startHost(location.origin),
  );
  addEventListener("pagehide", () => tab.leaving());
  return tab.port;
}
