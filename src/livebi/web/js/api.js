// REST calls and the login session. The login lives in an HttpOnly session cookie that scripts
// cannot read (so an injected script cannot carry it away) and that survives a reload or a new
// tab; state-changing requests send the readable CSRF cookie's value in X-CSRF-Token.

const USER_KEY = "livebi.user";
const CSRF_COOKIE = "livebi_csrf";

/** Error for a non-2xx REST answer; `status` 401 means the session is over. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

export const session = {
  get user() {
    try {
      return JSON.parse(sessionStorage.getItem(USER_KEY) || "null");
    } catch {
      return null;
    }
  },
  save(user) {
    sessionStorage.setItem(USER_KEY, JSON.stringify(user || {}));
  },
  clear() {
    sessionStorage.removeItem(USER_KEY);
  },
};

/** The header that proves a cookie-authenticated request comes from our own page. */
export function csrfHeaders() {
  const match = document.cookie.split("; ").find((c) => c.startsWith(`${CSRF_COOKIE}=`));
  return match ? { "X-CSRF-Token": decodeURIComponent(match.slice(CSRF_COOKIE.length + 1)) } : {};
}

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

async function call(method, path, { body } = {}) {
  const headers = { Accept: "application/json", ...(method === "GET" ? {} : csrfHeaders()) };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "The server cannot be reached. Check your connection and try again.");
  }
  if (!response.ok) throw new ApiError(response.status, await detailOf(response));
  return response.status === 204 ? {} : response.json();
}

export async function login(username, password) {
  const data = await call("POST", "/api/login", { body: { username, password } });
  session.save(data.user); // the token stays in the HttpOnly cookie the answer set
  return data;
}

/** The logged-in user from the session cookie (reload, new tab), or null when there is none. */
export async function restore() {
  // The CSRF cookie lives and dies with the session cookie, and scripts can read it: without
  // it there is no session to ask about (and no 401 to log in the console).
  if (!csrfHeaders()["X-CSRF-Token"]) {
    session.clear();
    return null;
  }
  try {
    const { user } = await call("GET", "/api/me");
    session.save(user);
    return user;
  } catch (err) {
    if (err.status !== 401) console.warn("livebi: restoring the session", err);
    session.clear();
    return null;
  }
}

/** Revoke the session on the server (every session of the user ends; the cookies are cleared). */
export async function logout() {
  try {
    await call("POST", "/api/logout");
  } catch (err) {
    // Already expired or unreachable: forgetting the user locally is all that is left to do.
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

/** A finished question's stored result (the `result` data as published); 404 when it is gone. */
export async function queryResult(queryId) {
  return call("GET", `/api/queries/${encodeURIComponent(queryId)}/result`);
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
  return call("GET", "/api/config");
}
