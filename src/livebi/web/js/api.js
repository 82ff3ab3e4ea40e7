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

/** Revoke the session's token on the server (every session of the user ends), then forget it. */
export async function logout() {
  try {
    if (session.token) await call("POST", "/api/logout");
  } catch (err) {
    // Already expired or unreachable: forgetting the token locally is all that is left to do.
    console.warn("livebi: logout", err);
  } finally {
    session.clear();
  }
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

/**
 * A fresh single-use connection ticket (`POST /api/ticket`, valid ~30 s). The long-lived token
 * never goes in a URL: proxies and access logs keep URLs. Rejects with an ApiError (401: the
 * session is over).
 */
export async function ticket() {
  return (await call("POST", "/api/ticket")).ticket;
}

/** The WebSocket URL with a fresh ticket (called before every (re)connect). */
export async function websocketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws?ticket=${encodeURIComponent(await ticket())}`;
}

/**
 * The SSE stream URL with a fresh ticket (EventSource cannot send headers). `lastEventId`
 * resumes a dropped stream's channels (EventSource would send Last-Event-ID itself, but only
 * when it reconnects to the same URL, whose ticket is used up).
 */
export async function sseUrl(lastEventId) {
  const resume = lastEventId ? `&last_event_id=${encodeURIComponent(lastEventId)}` : "";
  return `/sse?ticket=${encodeURIComponent(await ticket())}${resume}`;
}

/** Where the HTTP fallback POSTs ops for a stream. */
export function sseOpsUrl(connId) {
  return `/sse/ops?conn=${encodeURIComponent(connId)}`;
}

/** Which transports and features the server has on (`{websocket, sse, features}`). */
export async function config() {
  return call("GET", "/api/config", { auth: false });
}

// -- dashboards (issue 8 contract: /work docs "REST") -----------------------------------------

const dashPath = (id) => `/api/dashboards/${encodeURIComponent(id)}`;

/** `[{id, title, description, owner, public, role, version, updated_at, widget_count}]` */
export async function listDashboards() {
  return (await call("GET", "/api/dashboards")).dashboards || [];
}

export async function createDashboard(title, description = "") {
  return call("POST", "/api/dashboards", { body: { title, description } });
}

/** The snapshot with the caller's `role`. */
export async function getDashboard(id) {
  return call("GET", dashPath(id));
}

export async function deleteDashboard(id) {
  return call("DELETE", dashPath(id));
}

/** `{members: [{user: {id, username}, role}], public}` */
export async function dashboardMembers(id) {
  return call("GET", `${dashPath(id)}/members`);
}

export async function setMember(id, username, role) {
  return call("PUT", `${dashPath(id)}/members/${encodeURIComponent(username)}`, { body: { role } });
}

export async function removeMember(id, username) {
  return call("DELETE", `${dashPath(id)}/members/${encodeURIComponent(username)}`);
}

export async function setPublic(id, isPublic) {
  return call("PUT", `${dashPath(id)}/sharing`, { body: { public: Boolean(isPublic) } });
}

/** The stored result of a query (the asker's or one shared with the caller). */
export async function queryResult(queryId) {
  return call("GET", `/api/queries/${encodeURIComponent(queryId)}/result`);
}
