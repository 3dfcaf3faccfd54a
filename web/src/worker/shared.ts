// SharedWorker entry: every tab of this browser (same origin) shares one session and one WebSocket,
// so a second tab never kicks the first.
/// <reference lib="webworker" />
import { startHost } from "./runtime";

declare const self: SharedWorkerGlobalScope;
const host = startHost(self.location.origin);
self.onconnect = (ev: MessageEvent) => {
  host.attach(ev.ports[0]!);
};
