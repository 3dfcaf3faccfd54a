// Dispatch's HTTP API (same origin as the app): register, login, logout, allocate a gateway.

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "HttpError";
  }
}

export interface LoginAnswer {
  userId: bigint;
  token: string;
  expiresAt: number; // Unix seconds
  wsUrl: string;
}

export interface HttpApi {
  register(username: string, password: string, nickname: string): Promise<bigint>;
  login(username: string, password: string, deviceId: string): Promise<LoginAnswer>;
  logout(token: string): Promise<void>;
  allocateGateway(token: string): Promise<string>; // ws_url
  clientConfig(): Promise<{ heartbeatSeconds: number } | null>; // null: not reachable now
}

/** JSON with the user id kept exact: the digits are captured before JSON.parse could round them. */
function parseIds(text: string): Record<string, unknown> {
  return JSON.parse(text.replace(/"(user_id)"\s*:\s*(\d+)/g, '"$1":"$2"')) as Record<string, unknown>;
}

export function fetchApi(base: string, fetcher: typeof fetch = fetch): HttpApi {
  async function call(path: string, init: RequestInit): Promise<Record<string, unknown>> {
    let resp: Response;
    try {
      resp = await fetcher(new URL(path, base), init);
    } catch (err) {
      throw new HttpError(0, "network", `cannot reach the server: ${String(err)}`);
    }
    const text = await resp.text();
    let body: Record<string, unknown> = {};
    try {
      body = text ? parseIds(text) : {};
    } catch {
      body = { message: text };
    }
    if (!resp.ok) {
      throw new HttpError(resp.status, String(body.error ?? resp.status), String(body.message ?? resp.statusText));
    }
    return body;
  }
  const json = (data: unknown): RequestInit => ({
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(data),
  });
  const bearer = (token: string, method = "GET"): RequestInit => ({
    method,
    headers: { authorization: `Bearer ${token}` },
  });
  return {
    async register(username, password, nickname) {
      const body = await call("/api/register", json({ username, password, nickname }));
      return BigInt(String(body.user_id));
    },
    async login(username, password, deviceId) {
      const body = await call("/api/login", json({ username, password, device_id: deviceId }));
      const gateway = body.gateway as { ws_url: string };
      return {
        userId: BigInt(String(body.user_id)),
        token: String(body.token),
        expiresAt: Number(body.expires_at),
        wsUrl: gateway.ws_url,
      };
    },
    async logout(token) {
      await call("/api/logout", bearer(token, "POST"));
    },
    async allocateGateway(token) {
      return String((await call("/api/allocate_gateway", bearer(token))).ws_url);
    },
    async clientConfig() {
      try {
        const body = await call("/api/client_config", { method: "GET" });
        const seconds = Number(body.heartbeat_interval_seconds);
        return seconds > 0 ? { heartbeatSeconds: seconds } : null;
      } catch {
        return null;
      }
    },
  };
}
