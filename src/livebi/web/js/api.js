// REST calls and the login session. A server that sets the session cookie on login (HttpOnly,
// SameSite=Strict) keeps the browser's login there: scripts never hold the token, every tab and
// a reload share the login, and state-changing requests carry the CSRF cookie's value in
// X-CSRF-Token. An older server without the cookie gets the bearer token, kept in
// sessionStorage (one tab, gone when it closes).

const TOKEN_KEY = "livebi.token";
const USER_KEY = "livebi.user";
const CSRF_COOKIE = "livebi_csrf";
const CSRF_HEADER = "X-CSRF-Token";
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** The CSRF cookie's value (readable by design), or "". */
export function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(rest.join("="));
  }
  return "";
}

/** Headers that authenticate a state-changing request made with the session cookie. */
export function csrfHeaders() {
  const token = csrfToken();
  return token ? { [CSRF_HEADER]: token } : {};
}

/** Error for a non-2xx REST answer; `status` 401 means the session is over. */
export class ApiError extends Error {
  constructor(status, message, { aborted = false } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.aborted = aborted; // dropped at logout: nobody is waiting for it any more
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
  /** After login: with the session cookie set, only the user is kept (not the token). */
  save(token, user) {
    if (token && !csrfToken()) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.setItem(USER_KEY, JSON.stringify(user || {}));
  },
  /** Logged in by the cookie (found by `GET /api/me` after a reload or in a new tab). */
  adopt(user) {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.setItem(USER_KEY, JSON.stringify(user || {}));
  },
  /** Logged out: forget the login and drop every request still in flight with it (its answer,
   * a 401 once the server revoked the token, belongs to a session that is over). */
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(USER_KEY);
    inflight.abort();
    inflight = new AbortController();
  },
};

let inflight = new AbortController(); // the requests of the current login

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

async function call(method, path, { body, auth = true, detached = false } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth && session.token) headers.Authorization = `Bearer ${session.token}`;
  else if (!SAFE_METHODS.has(method)) Object.assign(headers, csrfHeaders());
  let response;
  const signal = detached ? undefined : inflight.signal;
  try {
    response = await fetch(path, {
      method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body), signal,
    });
  } catch {
    if (signal && signal.aborted) throw new ApiError(0, "Logged out before the server answered.", { aborted: true });
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

/** Revoke the session's token on the server (every session of the user ends; the server also
 * clears the cookies), then forget it. */
export async function logout() {
  try {
    if (session.token || csrfToken()) await call("POST", "/api/logout", { detached: true }); // outlives the session's clear
  } catch (err) {
    // Already expired or unreachable: forgetting the token locally is all that is left to do.
    console.warn("livebi: logout", err);
  } finally {
    session.clear();
  }
}

/** Who the session cookie (or token) belongs to: `{user}`; rejects with 401 when logged out. */
export async function me() {
  return call("GET", "/api/me");
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

let websocketPort = null;

/**
 * The WebSocket URL with a fresh ticket (called before every (re)connect): `/ws` on this
 * page's host and port, or on the port `GET /api/config` names (`websocket_port`: the server
 * runs the websockets library's own server there, `ws_server = "websockets"`).
 */
export async function websocketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  if (websocketPort === null) {
    websocketPort = config().then((c) => c.websocket_port || 0, () => 0);
  }
  const port = await websocketPort;
  const host = port ? `${location.hostname}:${port}` : location.host;
  return `${scheme}//${host}/ws?ticket=${encodeURIComponent(await ticket())}`;
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

/**
 * `{live, active, widgets: {widget_id: latest dashboard_refresh}}`: whether the server refreshes
 * the dashboard's widgets (live dashboards on) and each widget's latest result (docs/live.md).
 */
export async function dashboardLive(id) {
  return call("GET", `${dashPath(id)}/live`);
}

/** The stored result of a query (the asker's or one shared with the caller). */
export async function queryResult(queryId) {
  return call("GET", `/api/queries/${encodeURIComponent(queryId)}/result`);
}

// -- alerts (issue 9): conditions on a widget's value that notify me -------------------------

/** My alerts: `[{id, dashboard_id, widget_id, column, aggregate, op, threshold, label, state,
 * condition, created_at, last_fired_at, dashboard_title, widget_title, status}]` */
export async function listAlerts() {
  return (await call("GET", "/api/alerts")).alerts || [];
}

/** `{dashboard_id, widget_id, op, threshold, column?, aggregate?, label?}` -> the alert. */
export async function createAlert(alert) {
  return call("POST", "/api/alerts", { body: alert });
}

export async function deleteAlert(id) {
  return call("DELETE", `/api/alerts/${encodeURIComponent(id)}`);
}
