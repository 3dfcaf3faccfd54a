// Build the browser's one Session (IndexedDB storage, real WebSockets, dispatch on this origin).
import { Session } from "../core/session";
import type { SocketLike } from "../core/conn";
import { fetchApi } from "../core/http";
import { IdbStorage } from "../core/storage";
import { Host } from "./host";
import { resumeUploads } from "../core/files";

export function startHost(origin: string): Host {
  const session = new Session({
    http: fetchApi(origin),
    socket: (url) => new WebSocket(url) as unknown as SocketLike,
    storage: new IdbStorage(),
  });
  void session.start().then(() => resumeUploads(session));
  self.addEventListener("online", () => session.networkOnline());
  return new Host(session);
}
