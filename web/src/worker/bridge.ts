// The tab's side: talk to the SharedWorker (or, where SharedWorker does not exist, to a session in this page).
import type { AppState, Status } from "../core/model";
import type { FromHost, Method, PortLike, ToHost } from "./host";

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
    if (m.type === "state") {
      const state = shownState(this.state, m.state);
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
 * Without SharedWorker (e.g. Chrome on Android): the tabs elect a leader with the Web Locks API; the leader
 * runs the one session in its page and serves the other tabs over a BroadcastChannel. When the leader
 * closes, the next tab takes the lock and resumes the stored session. Without Web Locks: a session per tab.
 */
async function leaderTab(): Promise<PortLike> {
  const { startHost } = await import("./runtime");
  if (typeof navigator.locks === "undefined" || typeof BroadcastChannel === "undefined") {
    const channel = new MessageChannel();
    startHost(location.origin).attach(channel.port1);
    return channel.port2;
  }
  const me = Math.random().toString(36).slice(2);
  const bus = new BroadcastChannel("tinyim-tabs");
  type Envelope = { to: string; from: string; m: unknown };
  const port: PortLike = {
    onmessage: null,
    postMessage: (m: unknown) => bus.postMessage({ to: "leader", from: me, m } satisfies Envelope),
  };
  let leader = false;
  const followers = new Map<string, PortLike>();
  bus.onmessage = (ev: MessageEvent<Envelope>) => {
    const { to, from, m } = ev.data;
    if (to === "leader" && leader && from !== me) {
      let follower = followers.get(from);
      if (!follower) {
        follower = { onmessage: null, postMessage: (x: unknown) => bus.postMessage({ to: from, from: me, m: x } satisfies Envelope) };
        followers.set(from, follower);
        host!.attach(follower);
      }
      follower.onmessage?.(new MessageEvent("message", { data: m }));
      if ((m as { type?: string }).type === "bye") followers.delete(from);
    } else if ((to === me || to === "*") && !leader) {
      if ((m as { type?: string }).type === "leader") port.postMessage({ type: "viewing", keys: [] }); // hello
      else port.onmessage?.(new MessageEvent("message", { data: m }));
    }
  };
  let host: ReturnType<typeof startHost> | null = null;
  const local = new MessageChannel();
  void navigator.locks.request("tinyim-leader", () => {
    leader = true;
    host = startHost(location.origin);
    host.attach(local.port1);
    // this tab now answers locally; the others say hello to the new leader
    local.port2.onmessage = (ev) => port.onmessage?.(ev);
    port.postMessage = (m: unknown) => local.port2.postMessage(m);
    bus.postMessage({ to: "*", from: me, m: { type: "leader" } } satisfies Envelope);
    return new Promise<never>(() => undefined); // held until this tab goes away
  });
  port.postMessage({ type: "viewing", keys: [] }); // hello to a leader that is there already
  return port;
}
