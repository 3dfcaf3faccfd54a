// The tab's side: talk to the SharedWorker (or, where SharedWorker does not exist, to a session in this page).
import type { AppState } from "../core/model";
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
    const { startHost } = await import("./runtime");
    const channel = new MessageChannel();
    startHost(location.origin).attach(channel.port1);
    return new Bridge(channel.port2, false);
  }

  call<T = unknown>(method: Method, ...args: unknown[]): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
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
      this.state = m.state;
      for (const fn of this.listeners) fn(m.state);
      return;
    }
    const w = this.waiting.get(m.id);
    if (!w) return;
    this.waiting.delete(m.id);
    if (m.ok) w.resolve(m.value);
    else w.reject(new RemoteError(m.error.name, m.error.message, m.error.code));
  }
}
