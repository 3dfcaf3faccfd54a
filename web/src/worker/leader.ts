// Without SharedWorker (e.g. Chrome on Android): the tabs of one browser elect a leader with a lock; the
// leader runs the one session in its page and serves the other tabs over a broadcast channel. When it closes,
// the next tab takes the lock and resumes the stored session.
//
// The leader can go at any moment, so a follower keeps every call until its answer comes back. The leader
// acknowledges each call on receipt; when a new leader appears, calls the old one never received are sent to
// it again, and calls it received but never answered fail ("try again": they may have run). Nothing hangs
// until the bridge's timeout, and nothing runs twice.
import type { FromHost, PortLike, ToHost } from "./host";

/** A BroadcastChannel, or what the tests give instead. */
export interface Bus {
  postMessage(m: unknown): void;
  onmessage: ((ev: MessageEvent) => void) | null;
}

/** Ask for the leader lock: `held` runs once this tab has it, and keeps it as long as its promise is pending. */
export type RequestLock = (held: () => Promise<never>) => void;

export interface HostLike {
  attach(port: PortLike): void;
}

type Envelope = { to: string; from: string; m: unknown };
type Control = { type: "leader" } | { type: "leaderGone" } | { type: "received"; id: number };

export const LEADER_GONE_ERROR = {
  name: "LeaderGone",
  message: "the tab that held the session closed during this call; check whether it happened, then try again",
  code: "leader_gone",
} as const;

export class ElectedTab {
  /** The port this tab's Bridge talks through, whoever leads. */
  readonly port: PortLike;
  leader = false;
  private host: HostLike | null = null;
  private readonly followers = new Map<string, PortLike>();
  private readonly unanswered = new Map<number, { call: ToHost; received: boolean }>();
  private route: (m: unknown) => void;

  constructor(
    private readonly bus: Bus,
    requestLock: RequestLock,
    private readonly startHost: () => HostLike,
    private readonly me: string = Math.random().toString(36).slice(2),
  ) {
    this.route = (m) => this.toLeader(m);
    this.port = {
      onmessage: null,
      postMessage: (m: unknown) => {
        const call = m as ToHost;
        if (call.type === "call") this.unanswered.set(call.id, { call, received: false });
        this.route(m);
      },
    };
    bus.onmessage = (ev: MessageEvent<Envelope>) => this.heard(ev.data);
    requestLock(() => this.lead());
    this.toLeader({ type: "viewing", keys: [] }); // hello to a leader that is there already
  }

  /** This page is going away: if it leads, the others show "connecting" until one of them takes over. */
  leaving(): void {
    if (this.leader) this.bus.postMessage({ to: "*", from: this.me, m: { type: "leaderGone" } } satisfies Envelope);
  }

  private lead(): Promise<never> {
    this.leader = true;
    const host = (this.host = this.startHost());
    const local = new MessageChannel();
    host.attach(local.port1);
    local.port2.onmessage = (ev) => this.answered(ev.data);
    this.route = (m) => local.port2.postMessage(m);
    this.takeOver(); // our own calls the old leader left: to our session now
    this.bus.postMessage({ to: "*", from: this.me, m: { type: "leader" } satisfies Control } satisfies Envelope);
    return new Promise<never>(() => undefined); // held until this tab goes away
  }

  private heard({ to, from, m }: Envelope): void {
    if (from === this.me) return;
    if (to === "leader") {
      if (this.leader) this.serve(from, m as ToHost);
      return;
    }
    if (this.leader || (to !== this.me && to !== "*")) return;
    const control = m as Control;
    if (control.type === "leader") {
      this.takeOver();
      this.toLeader({ type: "viewing", keys: [] }); // hello: the new leader sends its state
    } else if (control.type === "received") {
      const pending = this.unanswered.get(control.id);
      if (pending) pending.received = true;
    } else {
      this.answered(m); // a result, the state, or leaderGone (the Bridge shows "connecting")
    }
  }

  /** The leader's side: a follower's message for the session, acknowledged first if it is a call. */
  private serve(from: string, m: ToHost): void {
    let follower = this.followers.get(from);
    if (!follower) {
      follower = { onmessage: null, postMessage: (x: unknown) => this.bus.postMessage({ to: from, from: this.me, m: x }) };
      this.followers.set(from, follower);
      this.host!.attach(follower);
    }
    if (m.type === "call") {
      this.bus.postMessage({ to: from, from: this.me, m: { type: "received", id: m.id } } satisfies Envelope);
    }
    follower.onmessage?.(new MessageEvent("message", { data: m }));
    if (m.type === "bye") this.followers.delete(from);
  }

  /** A new leader: it gets the calls the old one never saw; those it saw and never answered fail. */
  private takeOver(): void {
    for (const [id, { call, received }] of [...this.unanswered]) {
      if (received) {
        this.answered({ type: "result", id, ok: false, error: { ...LEADER_GONE_ERROR } } satisfies FromHost);
      } else {
        this.route(call);
      }
    }
  }

  private answered(m: unknown): void {
    const result = m as FromHost;
    if (result.type === "result") this.unanswered.delete(result.id);
    this.port.onmessage?.(new MessageEvent("message", { data: m }));
  }

  private toLeader(m: unknown): void {
    this.bus.postMessage({ to: "leader", from: this.me, m } satisfies Envelope);
  }
}
