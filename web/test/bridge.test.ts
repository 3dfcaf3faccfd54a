import { afterEach, describe, expect, it, vi } from "vitest";
import { Session } from "../src/core/session";
import { MemoryStorage } from "../src/core/storage";
import { emptyState, type AppState, type Status } from "../src/core/model";
import { Bridge, shownState } from "../src/worker/bridge";
import { Host, type PortLike } from "../src/worker/host";
import { FakeServer } from "./fake-server";

vi.stubGlobal("addEventListener", () => undefined); // the Bridge says "bye" on pagehide: no page here

const ME = 10n;
const sessions: Session[] = [];
const ports: MessagePort[] = [];
afterEach(() => {
  for (const s of sessions.splice(0)) s.close();
  for (const p of ports.splice(0)) p.close();
});

function session(server: FakeServer, storage: MemoryStorage): Session {
  const s = new Session(server.sessionOptions(storage));
  sessions.push(s);
  return s;
}

/** A follower tab's port to the leader (what leaderTab hands its Bridge): the leader can change under it. */
class TabPort implements PortLike {
  onmessage: ((ev: MessageEvent) => void) | null = null;
  private to: MessagePort | null = null;

  lead(host: Host): void {
    if (this.to) this.to.onmessage = null; // the old leader is gone
    const channel = new MessageChannel();
    ports.push(channel.port1, channel.port2);
    host.attach(channel.port1);
    channel.port2.onmessage = (ev) => this.onmessage?.(ev);
    this.to = channel.port2;
  }

  postMessage(m: unknown): void {
    this.to!.postMessage(m);
  }
}

const state = (status: Status): AppState => ({ ...emptyState(), status });

describe("Bridge", () => {
  it("keeps showing the app while a tab takes over from the leader tab and resumes the session", async () => {
    const server = new FakeServer(ME);
    const storage = new MemoryStorage();
    const port = new TabPort();
    const leader = session(server, storage);
    port.lead(new Host(leader));
    void leader.start();
    const bridge = Bridge.over(port, false);
    const shown: Status[] = [];
    bridge.subscribe((s) => shown.push(s.status));
    await bridge.call("login", "me", "password1");
    await vi.waitFor(() => expect(bridge.state?.status).toBe("online"));

    // The leader tab goes; this tab takes the lock and resumes the stored session in a new one.
    leader.close();
    shown.length = 0;
    const next = session(server, storage);
    port.lead(new Host(next)); // says "starting" at once: the stored session is not read yet
    void next.start();
    await vi.waitFor(() => expect(shown).toContain("online"));
    expect(shown).not.toContain("starting"); // the app ("Loading" instead) was never torn down
    expect(shown[0], String(shown)).toBe("connecting");
    expect(bridge.state?.me?.userId).toBe(ME);
    await bridge.call("refreshGroups"); // calls go to the new session
  });

  it("shows a session's first state, and a starting one only before any other", () => {
    expect(shownState(null, state("starting")).status).toBe("starting");
    expect(shownState(state("starting"), state("loggedOut")).status).toBe("loggedOut");
    const online = { ...state("online"), statusDetail: "x", connects: 3 };
    expect(shownState(online, state("starting"))).toEqual({ ...online, status: "connecting", statusDetail: "" });
    const out = state("loggedOut");
    expect(shownState(out, state("starting"))).toBe(out); // the login form stays as typed
    const kicked = state("kicked");
    expect(shownState(kicked, state("starting"))).toBe(kicked);
    expect(shownState(online, state("offline")).status).toBe("offline");
  });
});
