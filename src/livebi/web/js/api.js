// REST calls and the login session (token kept in sessionStorage: one tab, gone when it closes).

const TOKEN_KEY = "livebi.token";
const USER_KEY = "livebi.user";

/** Error for a non-2xx REST answer; `status` 401 means the session is over. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  get user() {
    try {
      return JSON.parse(sessionStorage.getItem(USER_KEY) || "null");
    } catch {
      return null;
    }
  },
  save(token, user) {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(USER_KEY, JSON.stringify(user || {}));
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(USER_KEY);
  },
};

async function detailOf(response) {
  try {
    const body = await response.json();
    const detail = body && (body.detail ?? body.error?.message ?? body.message);
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) return detail.map((d) => d.msg || String(d)).join("; ");
  } catch {
    // not JSON: fall through to the status text
  }
  return `${response.status} ${response.statusText || "error"}`.trim();
}

async function call(method, path, { body, auth = true } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth && session.token) headers.Authorization = `Bearer ${session.token}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "The server cannot be reached. Check your connection and try again.");
  }
  if (!response.ok) throw new ApiError(response.status, await detailOf(response));
  return response.status === 204 ? {} : response.json();
}

export async function login(username, password) {
  const data = await call("POST", "/api/login", { body: { username, password }, auth: false });
  session.save(data.token, data.user);
  return data;
}

export async function warehouses() {
  return (await call("GET", "/api/warehouses")).warehouses || [];
}

export async function examples(warehouse) {
  const query = warehouse ? `?warehouse=${encodeURIComponent(warehouse)}` : "";
  return (await call("GET", `/api/examples${query}`)).questions || [];
}

export async function history() {
  return (await call("GET", "/api/history")).queries || [];
}

/** The WebSocket URL for the current page and token (called on every reconnect). */
export function websocketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws?token=${encodeURIComponent(session.token || "")}`;
}

/** The SSE stream URL (EventSource cannot send headers: the token rides in the query). */
export function sseUrl() {
  return `/sse?token=${encodeURIComponent(session.token || "")}`;
}

/** Where the HTTP fallback POSTs ops for a stream. */
export function sseOpsUrl(connId) {
  return `/sse/ops?conn=${encodeURIComponent(connId)}`;
}

/** Which transports and features the server has on (`{websocket, sse, features}`). */
export async function config() {
  return call("GET", "/api/config", { auth: false });
}
