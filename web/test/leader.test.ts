import { afterEach, describe, expect, it, vi } from "vitest";
import { emptyState } from "../src/core/model";
import { Bridge, RemoteError } from "../src/worker/bridge";
import type { FromHost, PortLike, ToHost } from "../src/worker/host";
import { ElectedTab, type HostLike, type RequestLock } from "../src/worker/leader";

vi.stubGlobal("addEventListener", () => undefined); // the Bridge says "bye" on pagehide: no page here

const channels: BroadcastChannel[] = [];
afterEach(() => {
  for (const c of channels.splice(0)) c.close();
});

/** navigator.locks for one lock: the first asker holds it; `release()` passes it to the next. */
class FakeLock {
  private queue: (() => Promise<never>)[] = [];
  request: RequestLock = (held) => {
    this.queue.push(held);
    if (this.queue.length === 1) void held();
  };
  release(): void {
    this.queue.shift();
    void this.queue[0]?.();
  }
}

/** A session host that answers "refreshGroups" with its name and never answers "loadOlder". */
class FakeHost implements HostLike {
  calls: string[] = [];
  constructor(readonly name: string) {}
  attach(port: PortLike): void {
    port.postMessage({ type: "state", state: { ...emptyState(), status: "online" } } satisfies FromHost);
    port.onmessage = (ev: MessageEvent) => {
      const m = ev.data as ToHost;
      if (m.type !== "call") return;
      this.calls.push(m.method);
      if (m.method === "refreshGroups") port.postMessage({ type: "result", id: m.id, ok: true, value: this.name });
    };
  }
}

class Tab {
  readonly bus = new BroadcastChannel("tinyim-tabs-test");
  readonly elected: ElectedTab;
  readonly bridge: Bridge;
  readonly host: FakeHost;
  constructor(name: string, lock: FakeLock) {
    channels.push(this.bus);
    this.host = new FakeHost(name);
    this.elected = new ElectedTab(this.bus as unknown as ConstructorParameters<typeof ElectedTab>[0], lock.request, () => this.host, name);
    this.bridge = Bridge.over(this.elected.port, false);
  }
}

describe("tabs without SharedWorker", () => {
  it("send a call made while no tab leads to the next leader, and show connecting meanwhile", async () => {
    const lock = new FakeLock();
    const a = new Tab("A", lock);
    const b = new Tab("B", lock);
    const c = new Tab("C", lock);
    await vi.waitFor(() => expect(c.bridge.state?.status).toBe("online"));
    expect(await c.bridge.call("refreshGroups")).toBe("A");

    a.elected.leaving();
    a.bus.close(); // A is gone, and B has not taken the lock yet
    await vi.waitFor(() => expect(c.bridge.state?.status).toBe("connecting")); // not A's last "online"
    const answer = c.bridge.call("refreshGroups"); // reaches nobody for now
    await new Promise((r) => setTimeout(r, 20));
    lock.release(); // B takes over
    expect(await answer).toBe("B");
    expect(b.host.calls).toEqual(["refreshGroups"]);
    await vi.waitFor(() => expect(c.bridge.state?.status).toBe("online"));
  });

  it("send a follower's unseen call to the new leader and fail one the old leader saw", async () => {
    const lock = new FakeLock();
    const a = new Tab("A", lock);
    const b = new Tab("B", lock);
    const c = new Tab("C", lock);
    await vi.waitFor(() => expect(c.bridge.state?.status).toBe("online"));

    const seen = c.bridge.call("loadOlder").catch((e: unknown) => e); // A receives it and never answers
    await vi.waitFor(() => expect(a.host.calls).toEqual(["loadOlder"]));
    a.elected.leaving();
    a.bus.close();
    const unseen = c.bridge.call("refreshGroups"); // posted after A went
    lock.release(); // B takes over
    expect(await unseen).toBe("B");
    const error = await seen;
    expect(error).toBeInstanceOf(RemoteError);
    expect((error as RemoteError).code).toBe("leader_gone");
    expect(b.host.calls).toEqual(["refreshGroups"]); // "loadOlder" did not run twice
    await vi.waitFor(() => expect(c.bridge.state?.status).toBe("online"));
  });

  it("run the new leader's own unseen calls in its own session", async () => {
    const lock = new FakeLock();
    const a = new Tab("A", lock);
    const b = new Tab("B", lock);
    await vi.waitFor(() => expect(b.bridge.state?.status).toBe("online"));
    a.bus.close(); // A dies without a word (a crash): B's call goes nowhere
    const answer = b.bridge.call("refreshGroups");
    await new Promise((r) => setTimeout(r, 20));
    lock.release();
    expect(await answer).toBe("B");
    expect(b.elected.leader).toBe(true);
    expect(a.host.calls).toEqual([]);
  });
});
