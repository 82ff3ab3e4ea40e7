// livebi protocol client: ops with replies matched by id, publications dispatched by channel,
// reconnection with exponential backoff + jitter and recovery through `since`, and graceful
// degradation from the WebSocket to the HTTP fallback (SSE stream + POSTed ops).
//
// No DOM dependency: it runs in a browser, a worker or Node (pass `WebSocketImpl`,
// `EventSourceImpl`, `fetchImpl`). Both transports sit behind the same small interface:
//
//   transport.kind                // "ws" or "sse"
//   transport.open({onOpen(info), onMessage(textOrObject), onClose({code, reason, notApplied}), onPause()})
//   transport.send(text)          // one op; only called after onOpen
//   transport.close(code, reason) // onClose still fires (once)
//   transport.idle()              // (optional) resolves once no op is queued or in flight
//
// `onOpen(info)`: the WebSocket passes nothing; SSE passes the stream's `open` event
// (`{conn_id, user, resumed}`, `resumedStream: true` when a dropped stream was resumed on a new
// EventSource from the last event id). `notApplied`: ids of ops the server certainly did not apply
// (they are sent again on the next connection). `onPause`: the stream dropped and the browser is
// resuming it; ops wait until it is back.

/** Close codes the server uses (see livebi.protocol.CloseCode). */
export const CLOSE = Object.freeze({
  normal: 1000,
  goingAway: 1001,
  abnormal: 1006,
  messageTooBig: 1009,
  serviceRestart: 1012,
  tryAgainLater: 1013,
  clientTimeout: 4000,
  unauthenticated: 4001,
  featureDisabled: 4003,
  slowConsumer: 4008,
  tooManyConnections: 4009,
});

/** Error raised for `ok: false` replies and for ops that could not complete. */
export class LiveError extends Error {
  constructor(code, message, details) {
    super(message);
    this.name = "LiveError";
    this.code = code;
    this.details = details;
  }
}

const resolveValue = (value, ...args) => (typeof value === "function" ? value(...args) : value);

/**
 * The close code for a URL that could not be made (fetching a ticket failed): a 401 means the
 * session is over (4001), 429/503 mean later (1013), anything else is a network failure (1006).
 */
function urlFailure(err) {
  const status = err && err.status;
  const code = status === 401 ? CLOSE.unauthenticated
    : status === 429 || status === 503 ? CLOSE.tryAgainLater : CLOSE.abnormal;
  return [code, String((err && err.message) || "could not get a connection ticket")];
}
const isReply = (message) => message && typeof message === "object" && "ok" in message && "id" in message;

/** Every message of a frame in order, `message_batch` frames (even nested ones) unwrapped. */
export function unwrapBatches(message, out = []) {
  if (message && message.type === "message_batch" && Array.isArray(message.messages)) {
    for (const inner of message.messages) unwrapBatches(inner, out);
  } else if (message && typeof message === "object") {
    out.push(message);
  }
  return out;
}

/**
 * The WebSocket transport: one socket per `open`, text frames only. `url` is a string or a
 * function returning one or a Promise of one (e.g. with a fresh single-use ticket), resolved
 * on `open`.
 */
export class WebSocketTransport {
  constructor(url, { WebSocketImpl = globalThis.WebSocket } = {}) {
    this.kind = "ws";
    this.url = url;
    this.WebSocketImpl = WebSocketImpl;
    this.socket = null;
    this._finish = null;
  }

  open({ onOpen, onMessage, onClose }) {
    let closed = false;
    const finish = (code, reason) => {
      if (closed) return;
      closed = true;
      onClose({ code, reason });
    };
    this._finish = finish;
    Promise.resolve()
      .then(() => resolveValue(this.url))
      .then((url) => {
        if (!closed) this._connect(url, { onOpen, onMessage, finish });
      }, (err) => finish(...urlFailure(err)));
  }

  _connect(url, { onOpen, onMessage, finish }) {
    let socket;
    try {
      socket = new this.WebSocketImpl(url);
    } catch (err) {
      finish(CLOSE.abnormal, String(err && err.message)); // a malformed URL throws synchronously
      return;
    }
    this.socket = socket;
    socket.onopen = () => onOpen({});
    socket.onmessage = (event) => {
      if (typeof event.data === "string") onMessage(event.data);
    };
    socket.onerror = () => {}; // onclose follows with the code; nothing more to learn here
    socket.onclose = (event) => finish(event.code, event.reason);
  }

  send(text) {
    this.socket.send(text);
  }

  close(code = CLOSE.normal, reason = "") {
    if (this.socket && this.socket.readyState <= 1) this.socket.close(code, reason);
    else if (!this.socket && this._finish) this._finish(code, reason); // still fetching the URL
  }
}

/**
 * The HTTP fallback: an EventSource on the stream URL for publications, ops POSTed one at a
 * time (in order, like frames on a socket) to `opsUrl(connId)`; each POST's body is the op's
 * reply and is handed to `onMessage` like a frame.
 *
 * - The stream's first event `{"type": "open", "conn_id", "user", "resumed"}` (possibly inside a
 *   `message_batch`) opens the transport.
 * - `{"type": "close", "code", "reason"}` (slow consumer 4008, restart 1012) closes it: the
 *   EventSource is shut before the browser can resume it, and `onClose` carries the code; the
 *   client reconnects with a new stream and resubscribes with `since`.
 * - A stream that drops after opening is resumed: the browser would reconnect by itself with
 *   the same URL, whose single-use ticket is spent, so the EventSource is closed at once and a
 *   new one opened with a fresh URL (`url(lastEventId)`: a new ticket, and the last event id so
 *   the server resubscribes every channel from its position): `onPause`, then `onOpen` again
 *   with `resumedStream: true`. Ops wait meanwhile. If it is not back within
 *   `resumeTimeoutMs`, or the new stream fails, the transport closes.
 * - POST answers: 401 closes with 4001 (log in again); 404/403 mean the stream is gone: close
 *   with 1006 (the op was not applied and is listed in `notApplied`); other statuses and network
 *   errors become an error reply for that op.
 * - When the stream cannot be opened, one plain GET (with a fresh URL) tells the status
 *   EventSource hides: 401 -> 4001, 429 -> 4009, 503 -> 1013, anything else 1006. A URL that
 *   cannot be made (the ticket request failed) closes the same way (see `urlFailure`).
 */
export class SSETransport {
  /**
   * @param {object} o
   * @param {string|function(string=):(string|Promise<string>)} o.url  the stream URL, or a
   *   function of the last event id returning it (`/sse?ticket=…&last_event_id=…`); called for
   *   every stream, since a ticket is good for one
   * @param {function(string):string} o.opsUrl  the ops URL for a connection id
   * @param {string|function():string} o.token  the bearer token for POSTs (empty: none, the
   *   browser's session cookie authenticates them)
   * @param {function():object} [o.headers]  more headers for POSTs (e.g. the CSRF token)
   */
  constructor({
    url, opsUrl, token, headers = () => ({}),
    EventSourceImpl = globalThis.EventSource,
    fetchImpl = (...args) => globalThis.fetch(...args),
    opTimeoutMs = 30_000,
    resumeTimeoutMs = 10_000,
    statusCheckTimeoutMs = 5_000,
  } = {}) {
    this.kind = "sse";
    // POST replies still arrive after the stream closed: the client must not fail those ops.
    this.repliesSurviveClose = true;
    this.url = url;
    this.opsUrl = opsUrl;
    this.token = token;
    this.headers = headers;
    this.EventSourceImpl = EventSourceImpl;
    this.fetchImpl = fetchImpl;
    this.opTimeoutMs = opTimeoutMs;
    this.resumeTimeoutMs = resumeTimeoutMs;
    this.statusCheckTimeoutMs = statusCheckTimeoutMs;
    this.connId = null;
    this.lastEventId = null;
    this.source = null;
    this._callbacks = null;
    this._outbox = []; // [{text, id}] ops waiting for their turn (or for the stream)
    this._posting = false;
    this._idleWaiters = [];
    this._opened = false; // the stream's open event came at least once
    this._streamUp = false; // the current EventSource's open event came
    this._paused = false; // the browser is resuming the stream
    this._closed = false;
    this._finished = false;
    this._resumeTimer = null;
  }

  open(callbacks) {
    this._callbacks = callbacks;
    this._openSource();
  }

  /** A new EventSource on a fresh URL (a ticket is good for one stream). */
  async _openSource() {
    let url;
    try {
      url = await resolveValue(this.url, this.lastEventId || undefined);
    } catch (err) {
      this._fail(...urlFailure(err));
      return;
    }
    if (this._closed) return;
    let source;
    try {
      source = new this.EventSourceImpl(url);
    } catch (err) {
      this._fail(CLOSE.abnormal, String(err && err.message));
      return;
    }
    this.source = source;
    this._streamUp = false; // this source's open event has not come yet
    source.onmessage = (event) => {
      if (this.source === source) this._onEvent(event);
    };
    source.onerror = () => {
      if (this.source === source) this._onError();
    };
  }

  send(text) {
    let id = null;
    try {
      id = JSON.parse(text).id ?? null;
    } catch {
      // the server answers bad JSON with an error reply; nothing to match it to here
    }
    this._outbox.push({ text, id });
    this._pump();
  }

  close(code = CLOSE.normal, reason = "") {
    if (this._closed) return;
    this._shutStream();
    Promise.resolve().then(() => this._finish(code, reason));
  }

  /** Resolves once no op is waiting or in flight (used before retiring the stream). */
  idle() {
    if (!this._posting && this._outbox.length === 0) return Promise.resolve();
    return new Promise((resolve) => this._idleWaiters.push(resolve));
  }

  // -- the stream ------------------------------------------------------------------------------

  _onEvent(event) {
    if (this._closed) return;
    if (event.lastEventId) this.lastEventId = event.lastEventId;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      console.warn("livebi client: ignored an SSE event that is not JSON");
      return;
    }
    // The open event may share a batch with replayed publications, the close event may end one:
    // unwrap first, then handle each message in order.
    for (const message of unwrapBatches(frame)) {
      if (this._closed) return;
      const control = !("channel" in message) && !("ok" in message);
      if (control && message.type === "open" && typeof message.conn_id === "string") this._onStreamOpen(message);
      else if (control && message.type === "close") {
        this._fail(Number(message.code) || CLOSE.abnormal, String(message.reason || "the server ended the stream"));
        return;
      } else this._callbacks.onMessage(message);
    }
  }

  _onStreamOpen(message) {
    const resumedStream = this._opened;
    this._opened = true;
    this._streamUp = true;
    this._paused = false;
    clearTimeout(this._resumeTimer);
    this._resumeTimer = null;
    this.connId = message.conn_id;
    this._callbacks.onOpen({
      connId: message.conn_id,
      user: message.user,
      resumed: Array.isArray(message.resumed) ? message.resumed : [],
      resumedStream,
    });
    this._pump();
  }

  _onError() {
    if (this._closed) return;
    if (!this._streamUp) {
      // This stream never opened (a first attempt, or a resume): find out why.
      this._shutStream();
      this._statusCode().then(([code, reason]) => this._finish(code, reason));
      return;
    }
    // The stream dropped. The browser would reconnect by itself with the same URL, whose ticket
    // is spent: close this EventSource and resume on a new one, from the last event id.
    this.source.onerror = null;
    this.source.onmessage = null;
    this.source.close();
    this._streamUp = false;
    this._paused = true;
    this.connId = null;
    clearTimeout(this._resumeTimer);
    this._resumeTimer = setTimeout(
      () => this._fail(CLOSE.abnormal, "the event stream did not come back"), this.resumeTimeoutMs);
    if (this._callbacks.onPause) this._callbacks.onPause();
    this._openSource();
  }

  /** EventSource hides the HTTP status of a failed stream: ask once with fetch (then drop it). */
  async _statusCode() {
    let url;
    try {
      url = await resolveValue(this.url);
    } catch (err) {
      return urlFailure(err);
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.statusCheckTimeoutMs);
    try {
      const response = await this.fetchImpl(url, {
        headers: { Accept: "text/event-stream" }, cache: "no-store", signal: controller.signal,
      });
      const code = { 401: CLOSE.unauthenticated, 429: CLOSE.tooManyConnections, 503: CLOSE.tryAgainLater }[response.status];
      return [code || CLOSE.abnormal, `the event stream failed (HTTP ${response.status})`];
    } catch (err) {
      return [CLOSE.abnormal, `the event stream failed (${(err && err.message) || "network error"})`];
    } finally {
      clearTimeout(timer);
      controller.abort(); // a 200 here opened a stream we do not want
    }
  }

  _shutStream() {
    this._closed = true;
    this.connId = null;
    clearTimeout(this._resumeTimer);
    this._resumeTimer = null;
    if (this.source) this.source.close();
  }

  _fail(code, reason) {
    if (this._closed) return;
    this._shutStream();
    this._finish(code, reason);
  }

  _finish(code, reason) {
    if (this._finished) return;
    this._finished = true;
    // Ops still waiting never reached the server: the client sends them again elsewhere.
    const notApplied = this._outbox.splice(0).map((item) => item.id).filter((id) => id != null);
    this._wakeIdle();
    if (this._callbacks) this._callbacks.onClose({ code, reason, notApplied });
  }

  // -- ops ---------------------------------------------------------------------------------------

  _wakeIdle() {
    if (this._posting && !this._finished) return;
    for (const resolve of this._idleWaiters.splice(0)) resolve();
  }

  _pump() {
    if (this._posting) return;
    if (this._closed || this._paused || !this.connId || this._outbox.length === 0) {
      if (this._outbox.length === 0) this._wakeIdle();
      return;
    }
    const item = this._outbox.shift();
    this._posting = true;
    this._post(item, this.connId)
      .catch((err) => console.error("livebi client: POST failed", err))
      .finally(() => {
        this._posting = false;
        this._pump();
      });
  }

  _headers() {
    const token = resolveValue(this.token);
    return { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}), ...this.headers() };
  }

  async _post(item, connId) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.opTimeoutMs);
    let response;
    let body = "";
    try {
      response = await this.fetchImpl(this.opsUrl(connId), {
        method: "POST",
        headers: this._headers(),
        body: item.text,
        cache: "no-store",
        signal: controller.signal,
      });
      body = await response.text();
    } catch (err) {
      // The op may or may not have been applied: say so for this op only. The stream, if the
      // network is really gone, notices by itself.
      const timedOut = controller.signal.aborted;
      this._reply(item.id, timedOut ? "timeout" : "disconnected",
        timedOut ? "no reply from the server in time" : "the reply was lost on the way");
      return;
    } finally {
      clearTimeout(timer);
    }
    if (response.ok) {
      let reply;
      try {
        reply = JSON.parse(body);
      } catch {
        this._reply(item.id, "bad_reply", "the server's reply is not JSON");
        return;
      }
      // Replies are matched by id: deliver them even if the stream closed meanwhile.
      for (const message of unwrapBatches(reply)) this._callbacks.onMessage(message);
      return;
    }
    if (response.status === 401) {
      this._outbox.unshift(item);
      this._fail(CLOSE.unauthenticated, detailOf(body) || "the session expired");
      return;
    }
    if (response.status === 404 || response.status === 403) {
      // The server looked the stream up before applying anything: safe to send again.
      this._outbox.unshift(item);
      if (this._paused || this.connId !== connId) return; // the resumed stream takes it
      this._fail(CLOSE.abnormal, detailOf(body) || "the event stream is gone");
      return;
    }
    const code = { 413: "too_large", 429: "too_many_connections", 503: "unavailable" }[response.status] || "http_error";
    this._reply(item.id, code, detailOf(body) || `the server answered HTTP ${response.status}`);
  }

  _reply(id, code, message) {
    if (id != null && this._callbacks) this._callbacks.onMessage({ id, ok: false, error: { code, message } });
  }
}

function detailOf(body) {
  try {
    const parsed = JSON.parse(body);
    const detail = parsed && (parsed.detail ?? (parsed.error && parsed.error.message));
    return typeof detail === "string" ? detail : "";
  } catch {
    return "";
  }
}

/** Tiny event emitter (EventTarget would tie us to DOM-like environments in older runtimes). */
class Emitter {
  constructor() {
    this._listeners = new Map();
  }
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }
  off(event, fn) {
    const set = this._listeners.get(event);
    if (set) set.delete(fn);
  }
  emit(event, payload) {
    for (const fn of [...(this._listeners.get(event) || [])]) {
      try {
        fn(payload);
      } catch (err) {
        console.error(`livebi client: ${event} listener failed`, err);
      }
    }
  }
}

/**
 * The protocol client.
 *
 * Transports: the WebSocket first. A WebSocket attempt fails when it does not open or closes
 * before the server answered a first `ping`; after `wsFailuresBeforeFallback` failures in a row
 * the client switches to the HTTP fallback (when `sse` options are given) and, while on it,
 * probes the WebSocket every `wsProbeIntervalMs`: when a probe's ping is answered the channels
 * move back to the WebSocket (resubscribed with `since`) and the SSE stream is retired. With
 * `config` returning `{websocket: false}` (HTTP-only server) or a 4003 close, SSE is used
 * straight away and nothing is probed.
 *
 * Positions (`{epoch, seq}`) are kept per channel by the client, not the transport, so
 * publications are de-duplicated by (channel, seq) across reconnects and transport switches.
 *
 * Events (`client.on(name, fn)`):
 *  - `status`       {state: connecting|connected|reconnecting|offline, transport: ws|sse,
 *                    degraded, httpOnly, attempt, retryAt, code, reason}
 *  - `publication`  every publication, after de-duplication
 *  - `recovery`     {channel, recovered} after a resubscribe following a reconnect
 *  - `service_degradation` {active: true, transport: "sse", reason} when the WebSocket gave out
 *                    and the HTTP fallback took over; {active: false, transport: "ws"} when back
 *  - `unauthenticated` the server refused the token (4001 / HTTP 401): the client stops
 *  - `transport_disabled` the WebSocket is off (4003) and no fallback was configured
 */
export class LiveClient extends Emitter {
  /**
   * @param {object} options
   * @param {string|function():(string|Promise<string>)} options.url  WebSocket URL, or a
   *   function returning it or a Promise of it, called on every (re)connect (so each gets a
   *   fresh single-use ticket).
   * @param {object} [options.sse]  SSETransport options (`{url, opsUrl, token}`): enables the
   *   HTTP fallback.
   * @param {function():Promise<object>} [options.config]  asked once before connecting
   *   (`GET /api/config`); `websocket: false` means HTTP-only.
   * @param {function(string, *):object} [options.transportFactory]  `(kind, wsUrl)` ->
   *   transport, for tests and other runtimes (`wsUrl` is `options.url`, unresolved).
   */
  constructor({
    url,
    sse = null,
    config = null,
    transportFactory = null,
    fallback = Boolean(sse),
    wsFailuresBeforeFallback = 3,
    wsProbeIntervalMs = 30_000,
    wsConfirmTimeoutMs = 8_000,
    // Timers
    pingIntervalMs = 20_000,
    pingTimeoutMs = 10_000,
    opTimeoutMs = 30_000,
    // Backoff
    backoffInitialMs = 500,
    backoffMaxMs = 30_000,
    backoffFactor = 2,
    backoffJitter = 0.5,
    stableAfterMs = 5_000,
    // Environment
    now = () => Date.now(),
    random = Math.random,
  } = {}) {
    super();
    this._url = url;
    this._sse = sse;
    this._config = config;
    this._transportFactory = transportFactory;
    this._fallback = fallback;
    this._opts = { pingIntervalMs, pingTimeoutMs, opTimeoutMs, backoffInitialMs, backoffMaxMs,
      backoffFactor, backoffJitter, stableAfterMs, wsFailuresBeforeFallback, wsProbeIntervalMs,
      wsConfirmTimeoutMs };
    this._now = now;
    this._random = random;

    this._nextId = 1;
    this._pending = new Map(); // id -> {resolve, reject, timer, frame, sent, transport}
    this._queue = []; // ids of ops waiting for an open transport, in order
    this._channels = new Map(); // channel -> Set(handler): channels we want after a reconnect
    this._positions = new Map(); // channel -> {epoch, seq} of the last publication seen

    this._transport = null;
    this._kind = null; // "ws" | "sse": the kind of _transport
    this._open = false;
    this._confirmed = false; // _transport proved usable (ws: first reply; sse: open event)
    this._draining = null; // an SSE transport being retired after the switch back to WS
    this._probe = null; // a WebSocket being tried while on SSE
    this._probeTimer = null;
    this._probeGiveUp = null;
    this._wsFailures = 0; // consecutive failed WebSocket attempts
    this._wsDisabled = false; // the server has no WebSocket: HTTP-only
    this._degraded = false;
    this._configured = !config;
    this._configuring = false;
    this._wanted = false; // the user wants a connection (connect() called, close() not)
    this._attempt = 0;
    this._retryTimer = null;
    this._confirmTimer = null;
    this._pingTimer = null;
    this._stableTimer = null;
    this.state = "offline";
    this.transport = null; // "ws" | "sse" while connected
    this.serverConfig = null;
    this.stats = { wsAttempts: 0, wsFailures: 0, sseConnects: 0, fallbacks: 0, probes: 0, switchesBack: 0 };
  }

  // -- lifecycle ------------------------------------------------------------------------------

  /** Start connecting (idempotent). Reconnects automatically until `close()`. */
  connect() {
    this._wanted = true;
    if (!this._transport && !this._retryTimer && !this._configuring) this._dial();
  }

  /** Skip the remaining backoff delay and dial now (e.g. when the browser comes back online). */
  reconnectNow() {
    if (!this._wanted || this._transport || this._configuring) return;
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._dial();
  }

  /** Close for good: no reconnect, pending ops are rejected. */
  close() {
    this._wanted = false;
    clearTimeout(this._retryTimer);
    clearTimeout(this._probeTimer);
    this._retryTimer = null;
    this._probeTimer = null;
    const transports = [this._transport, this._draining, this._probe].filter(Boolean);
    this._teardown();
    this._draining = null;
    this._probe = null;
    this._degraded = false;
    for (const transport of transports) transport.close(CLOSE.normal, "client closed");
    this._failPending("closed", "the connection was closed");
    this._setStatus({ state: "offline" });
  }

  /** The kind of transport the next connection uses. */
  _nextKind() {
    if (!this._fallback) return "ws";
    if (this._wsDisabled) return "sse";
    return this._wsFailures >= this._opts.wsFailuresBeforeFallback ? "sse" : "ws";
  }

  _makeTransport(kind) {
    const wsUrl = kind === "ws" ? this._url : null; // resolved by the transport on open
    const transport = this._transportFactory
      ? this._transportFactory(kind, wsUrl)
      : kind === "ws" ? new WebSocketTransport(wsUrl)
        : new SSETransport({ opTimeoutMs: this._opts.opTimeoutMs, ...this._sse });
    if (!transport.kind) transport.kind = kind;
    return transport;
  }

  async _loadConfig() {
    this._configuring = true;
    try {
      this.serverConfig = (await this._config()) || {};
      if (this.serverConfig.websocket === false) this._wsDisabled = true;
    } catch (err) {
      // Not fatal: the WebSocket is tried and the fallback still kicks in when it fails.
      console.warn("livebi client: could not read the server configuration", err);
    } finally {
      this._configuring = false;
      this._configured = true;
    }
  }

  _dial() {
    this._retryTimer = null;
    if (!this._configured) {
      this._setStatus({ state: "connecting", attempt: 0 });
      this._loadConfig().then(() => {
        if (this._wanted && !this._transport && !this._retryTimer) this._dial();
      });
      return;
    }
    const kind = this._nextKind();
    if (kind === "ws") this.stats.wsAttempts += 1;
    const transport = this._makeTransport(kind);
    this._transport = transport;
    this._kind = kind;
    this._confirmed = false;
    this._setStatus({ state: this._attempt === 0 && this.stats.sseConnects + this.stats.wsAttempts <= 1
      ? "connecting" : "reconnecting", attempt: this._attempt });
    if (kind === "ws") {
      // A socket that neither opens nor answers (a proxy swallowing it) counts as failed.
      this._confirmTimer = setTimeout(() => {
        if (this._transport === transport && !this._confirmed) transport.close(CLOSE.clientTimeout, "no answer");
      }, this._opts.wsConfirmTimeoutMs);
    } else if (!this._wsDisabled) {
      this._scheduleProbe();
    }
    this._openTransport(transport);
  }

  _openTransport(transport) {
    transport.open({
      onOpen: (info) => this._onTransportOpen(transport, info || {}),
      onMessage: (message) => this._onTransportMessage(transport, message),
      onClose: (info) => this._onTransportClose(transport, info || {}),
      onPause: () => {
        if (transport === this._transport) this._setStatus({ state: "reconnecting" });
      },
    });
  }

  _onTransportOpen(transport, info) {
    if (transport === this._probe) {
      this._confirmWebSocket(transport).then(() => this._promote(transport), () => {
        transport.close(CLOSE.clientTimeout, "probe failed");
      });
      return;
    }
    if (transport !== this._transport) return;
    if (transport.kind === "ws") {
      // Open is not enough (a proxy may accept the upgrade and drop it): wait for a first reply.
      this._confirmWebSocket(transport).then(() => {
        if (this._transport === transport) this._onReady(transport, {});
      }, () => {
        if (this._transport === transport) transport.close(CLOSE.clientTimeout, "no reply to the first ping");
      });
    } else {
      this._onReady(transport, info);
    }
  }

  _confirmWebSocket(transport) {
    return this._rawRequest(transport, "ping", {}, this._opts.wsConfirmTimeoutMs);
  }

  /** The transport works: resubscribe (unless the stream resumed it), send what waited. */
  _onReady(transport, info) {
    const wasOpen = this._open;
    this._open = true;
    this._confirmed = true;
    clearTimeout(this._confirmTimer);
    this._confirmTimer = null;
    this.transport = transport.kind;
    if (transport.kind === "ws") {
      this._wsFailures = 0;
      clearTimeout(this._probeTimer);
      this._probeTimer = null;
    } else if (!info.resumedStream) {
      this.stats.sseConnects += 1;
    }
    if (!wasOpen) {
      // Reset the backoff only once the connection has proved stable, so a server that accepts
      // and immediately drops us is not hammered.
      this._stableTimer = setTimeout(() => { this._attempt = 0; }, this._opts.stableAfterMs);
      this._pingTimer = setInterval(() => this._ping(), this._opts.pingIntervalMs);
    }
    this._updateDegradation(transport.kind);
    this._setStatus({ state: "connected" });
    // Resubscribe first so missed publications are replayed before any new ask is answered.
    const resumed = this._applyResumed(info.resumed);
    // A subscribe still waiting in the queue goes out below, answered to its own caller:
    // resubscribing its channel too would subscribe twice and report a "recovery" of a
    // channel that had nothing to recover.
    const queued = new Set();
    for (const id of this._queue) {
      const entry = this._pending.get(id);
      if (entry && entry.op === "subscribe") queued.add(entry.channel);
    }
    const resubscribes = [];
    for (const channel of this._channels.keys()) {
      if (!resumed.has(channel) && !queued.has(channel)) resubscribes.push(this._resubscribe(channel));
    }
    this._flushQueue();
    return Promise.allSettled(resubscribes);
  }

  /** Channels an SSE stream resumed from Last-Event-ID: no resubscribe needed. */
  _applyResumed(list) {
    const done = new Set();
    for (const item of Array.isArray(list) ? list : []) {
      if (!item || typeof item.channel !== "string" || item.error) continue;
      if (!this._channels.has(item.channel)) {
        // Left while the stream was down: the server put us back, leave again.
        this.request("unsubscribe", { channel: item.channel }).catch(() => {});
        continue;
      }
      done.add(item.channel);
      this._adoptPosition(item);
      this.emit("recovery", { channel: item.channel, recovered: item.recovered !== false, data: item });
    }
    return done;
  }

  _updateDegradation(kind) {
    const degraded = kind === "sse" && !this._wsDisabled;
    if (degraded === this._degraded) return;
    this._degraded = degraded;
    if (degraded) {
      this.stats.fallbacks += 1;
      this.emit("service_degradation", {
        active: true, transport: "sse",
        reason: "The WebSocket could not be used; live updates arrive over HTTP (SSE) instead.",
      });
    } else {
      this.emit("service_degradation", { active: false, transport: kind });
    }
  }

  _onTransportMessage(transport, raw) {
    let message = raw;
    if (typeof raw === "string") {
      try {
        message = JSON.parse(raw);
      } catch {
        console.warn("livebi client: ignored a frame that is not JSON");
        return;
      }
    }
    if (transport === this._transport || transport === this._draining) {
      this._onMessage(message);
      return;
    }
    // A probe or a transport we left: only replies matter (matched by id); its publications
    // could carry a position from before a reconnect.
    for (const inner of unwrapBatches(message)) if (isReply(inner)) this._onMessage(inner);
  }

  _onTransportClose(transport, { code, reason, notApplied }) {
    // Ops the server never saw go out again on the next connection.
    this._requeue(transport, notApplied);
    if (!transport.repliesSurviveClose) this._failSent(transport, "disconnected", "the connection was lost before the server replied");
    if (transport === this._probe) {
      this._probe = null;
      this._scheduleProbe();
      return;
    }
    if (transport === this._draining) {
      this._draining = null;
      if (this._open) this._flushQueue();
      return;
    }
    if (transport !== this._transport) return;
    const kind = transport.kind;
    const confirmed = this._confirmed;
    this._teardown();
    if (code === CLOSE.unauthenticated || (code === CLOSE.featureDisabled && !this._fallback)) {
      // Retrying cannot help: a bad token stays bad, a disabled transport stays disabled.
      this._wanted = false;
      clearTimeout(this._probeTimer);
      this._probeTimer = null;
      this._failPending(code === CLOSE.unauthenticated ? "unauthenticated" : "feature_disabled",
        reason || "the server refused the connection");
      this._setStatus({ state: "offline", code, reason });
      this.emit(code === CLOSE.unauthenticated ? "unauthenticated" : "transport_disabled", { code, reason });
      return;
    }
    if (!this._wanted) return;
    if (kind === "ws" && code === CLOSE.featureDisabled) {
      this._wsDisabled = true; // the server is HTTP-only: SSE from now on, nothing to probe
      this._attempt = 0;
      this._dial();
      return;
    }
    if (kind === "ws" && !confirmed) {
      this._wsFailures += 1;
      this.stats.wsFailures += 1;
      if (this._nextKind() === "sse") {
        this._attempt = 0; // falling back: a different path, no reason to wait
        this._dial();
        return;
      }
    }
    this._attempt += 1; // reset to 0 once a connection has stayed up for stableAfterMs
    const delay = this.backoffDelay(this._attempt);
    this._retryTimer = setTimeout(() => this._dial(), delay);
    this._setStatus({ state: "reconnecting", attempt: this._attempt, retryAt: this._now() + delay, code, reason });
  }

  _teardown() {
    this._open = false;
    this._confirmed = false;
    this._transport = null;
    this.transport = null;
    clearInterval(this._pingTimer);
    clearTimeout(this._stableTimer);
    clearTimeout(this._confirmTimer);
    this._pingTimer = null;
    this._stableTimer = null;
    this._confirmTimer = null;
  }

  // -- probing the WebSocket while on SSE --------------------------------------------------------

  _scheduleProbe() {
    if (!this._fallback || this._wsDisabled || !this._wanted || this._probeTimer || this._probe) return;
    this._probeTimer = setTimeout(() => {
      this._probeTimer = null;
      this._runProbe();
    }, this._opts.wsProbeIntervalMs);
  }

  _runProbe() {
    if (!this._wanted || this._wsDisabled || this._kind === "ws") return;
    this.stats.probes += 1;
    const probe = this._makeTransport("ws");
    this._probe = probe;
    this._probeGiveUp = setTimeout(() => {
      if (this._probe === probe) probe.close(CLOSE.clientTimeout, "probe timed out");
    }, this._opts.wsConfirmTimeoutMs);
    this._openTransport(probe);
  }

  /** A probe's ping was answered: move to the WebSocket, then retire the SSE stream. */
  _promote(probe, waited = 0) {
    if (this._probe !== probe) return;
    clearTimeout(this._probeGiveUp);
    // A channel without a position yet (an ask whose first publication is still on the way)
    // could only be resubscribed without `since`; wait briefly until the stream delivered it.
    const unplaced = [...this._channels.keys()].some((channel) => !this._positions.has(channel));
    if (unplaced && this._transport && waited < 10) {
      setTimeout(() => this._promote(probe, waited + 1), 200);
      return;
    }
    this._probe = null;
    if (!this._wanted) {
      probe.close(CLOSE.normal, "client closed");
      return;
    }
    const old = this._transport;
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._transport = probe;
    this._kind = "ws";
    this._attempt = 0;
    this.stats.switchesBack += 1;
    if (old) this._draining = old; // its publications still count until the WebSocket caught up
    this._onReady(probe, {})
      .then(() => (old && old.idle ? old.idle() : null))
      .then(() => {
        if (old) old.close(CLOSE.normal, "switched to the WebSocket");
      });
  }

  /** Delay before reconnect attempt `attempt` (1-based): exponential, capped, with jitter. */
  backoffDelay(attempt) {
    const { backoffInitialMs, backoffMaxMs, backoffFactor, backoffJitter } = this._opts;
    const base = Math.min(backoffMaxMs, backoffInitialMs * backoffFactor ** Math.max(0, attempt - 1));
    // "Equal jitter": keep part of the delay, randomize the rest, so clients spread out after a
    // server restart without ever retrying immediately.
    return Math.round(base * (1 - backoffJitter) + base * backoffJitter * this._random());
  }

  _setStatus(status) {
    this.state = status.state;
    this.emit("status", {
      transport: this._kind, degraded: this._degraded, httpOnly: this._wsDisabled, ...status,
    });
  }

  _ping() {
    const transport = this._transport;
    this.request("ping", {}, { timeoutMs: this._opts.pingTimeoutMs }).catch((err) => {
      // A silent connection (half-open TCP) is only noticed by a missing pong: drop and redial.
      if (err.code === "timeout" && transport && transport === this._transport) transport.close(CLOSE.clientTimeout, "ping timeout");
    });
  }

  // -- ops -----------------------------------------------------------------------------------

  /**
   * Send an op and resolve with the reply's `data` (reject with a LiveError on `ok: false`).
   * Ops made while disconnected wait for the connection (up to the op timeout).
   */
  request(op, fields = {}, { timeoutMs = this._opts.opTimeoutMs } = {}) {
    const id = this._nextId++;
    const frame = JSON.stringify({ ...fields, id, op });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        const index = this._queue.indexOf(id);
        if (index >= 0) this._queue.splice(index, 1);
        reject(new LiveError("timeout", `no reply to ${op} within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, timer, frame, sent: false, op, channel: fields.channel, transport: null });
      if (this._open) this._sendPending(id);
      else if (this._wanted) this._queue.push(id);
      else this._settle(id, null, { code: "offline", message: "not connected" });
    });
  }

  /** An op on one given transport, bypassing the queue (confirming or probing a WebSocket). */
  _rawRequest(transport, op, fields, timeoutMs) {
    const id = this._nextId++;
    const frame = JSON.stringify({ ...fields, id, op });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new LiveError("timeout", `no reply to ${op}`));
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, timer, frame, sent: true, op, transport });
      try {
        transport.send(frame);
      } catch (err) {
        this._settle(id, null, { code: "send_failed", message: String(err && err.message) });
      }
    });
  }

  _sendPending(id) {
    const entry = this._pending.get(id);
    if (!entry) return;
    entry.sent = true;
    entry.transport = this._transport;
    try {
      this._transport.send(entry.frame);
    } catch (err) {
      this._settle(id, null, { code: "send_failed", message: String(err && err.message) });
    }
  }

  _flushQueue() {
    const queued = this._queue.splice(0);
    for (const id of queued) this._sendPending(id);
  }

  _requeue(transport, ids) {
    const again = [];
    for (const id of ids || []) {
      const entry = this._pending.get(id);
      if (!entry || entry.transport !== transport) continue;
      entry.sent = false;
      entry.transport = null;
      again.push(id);
    }
    if (again.length) this._queue.unshift(...again);
  }

  /** Ops sent on `transport` lost their reply with it. */
  _failSent(transport, code, message) {
    for (const [id, entry] of [...this._pending]) {
      if (entry.sent && entry.transport === transport) this._settle(id, null, { code, message });
    }
  }

  /** Every op, sent or queued (the client is closing for good). */
  _failPending(code, message) {
    for (const id of [...this._pending.keys()]) this._settle(id, null, { code, message });
    this._queue.length = 0;
  }

  _settle(id, data, error) {
    const entry = this._pending.get(id);
    if (!entry) return;
    this._pending.delete(id);
    clearTimeout(entry.timer);
    if (error) entry.reject(new LiveError(error.code || "error", error.message || "request failed", error.details));
    else entry.resolve(data || {});
  }

  /**
   * Ask a question (`{question}`) or run SQL (`{sql}`). Resolves with `{query_id, channel}`.
   * The server has already subscribed us to the channel; we only remember it so a reconnect
   * resubscribes with `since`. Publications may precede the reply: listen to `publication`.
   */
  async ask({ question, sql, warehouse, chart } = {}) {
    const fields = {};
    if (question != null) fields.question = question;
    if (sql != null) fields.sql = sql;
    if (warehouse) fields.warehouse = warehouse;
    if (chart) fields.chart = chart;
    const data = await this.request("ask", fields);
    const channel = data.channel || `query:${data.query_id}`;
    if (!this._channels.has(channel)) this._channels.set(channel, new Set());
    return { ...data, channel };
  }

  cancel(queryId) {
    return this.request("cancel", { query_id: queryId });
  }

  /** Subscribe to a channel; `handler(publication)` gets its publications. Returns the reply data. */
  async subscribe(channel, handler) {
    const isNew = !this._channels.has(channel);
    if (isNew) this._channels.set(channel, new Set());
    if (handler) this._channels.get(channel).add(handler);
    if (!isNew && !handler) return { recovered: true };
    const since = this._positions.get(channel);
    const data = await this.request("subscribe", since ? { channel, since } : { channel });
    this._adoptPosition(data);
    this._replay(data);
    return data;
  }

  /** Stop following a channel (also forgets its position). */
  async unsubscribe(channel) {
    const known = this._channels.delete(channel);
    this._positions.delete(channel);
    if (!known || !this._open) return {};
    try {
      return await this.request("unsubscribe", { channel });
    } catch {
      return {}; // the channel is forgotten locally either way
    }
  }

  _resubscribe(channel) {
    const since = this._positions.get(channel);
    return this.request("subscribe", since ? { channel, since } : { channel })
      .then((data) => {
        if (!this._channels.has(channel)) return;
        this._adoptPosition(data);
        this._replay(data);
        this.emit("recovery", { channel, recovered: since ? data.recovered !== false : false, data });
      })
      .catch((err) => {
        if (this._channels.has(channel)) this.emit("recovery", { channel, recovered: false, error: err });
      });
  }

  /**
   * After a subscribe that did not recover (or had no `since`), the server's position is ours:
   * nothing before it will come. When it recovered, the missed publications follow the reply
   * (over SSE they may even come first), so the position is left to them.
   */
  _adoptPosition(data) {
    if (!data || typeof data.channel !== "string" || data.recovered === true) return;
    if (typeof data.epoch !== "string" || typeof data.seq !== "number") return;
    const last = this._positions.get(data.channel);
    if (!last || last.epoch !== data.epoch || last.seq < data.seq) {
      this._positions.set(data.channel, { epoch: data.epoch, seq: data.seq });
    }
  }

  /** Some servers put replayed publications in the subscribe reply: dispatch them too. */
  _replay(data) {
    const messages = data && (data.messages || data.publications);
    if (Array.isArray(messages)) for (const message of messages) this._onMessage(message);
  }

  // -- incoming ------------------------------------------------------------------------------

  _onMessage(message) {
    for (const inner of unwrapBatches(message)) {
      if (isReply(inner)) {
        if (inner.ok) this._settle(inner.id, inner.data, null);
        else this._settle(inner.id, null, inner.error || { code: "error", message: "request failed" });
      } else if (typeof inner.channel === "string") {
        this._onPublication(inner);
      }
      // Anything else (a message type this client does not know) is ignored.
    }
  }

  _onPublication(pub) {
    const last = this._positions.get(pub.channel);
    if (last && last.epoch === pub.epoch && typeof pub.seq === "number" && pub.seq <= last.seq) return;
    if (typeof pub.seq === "number") this._positions.set(pub.channel, { epoch: pub.epoch, seq: pub.seq });
    this.emit("publication", pub);
    const handlers = this._channels.get(pub.channel);
    if (handlers) {
      for (const handler of [...handlers]) {
        try {
          handler(pub);
        } catch (err) {
          console.error("livebi client: channel handler failed", err);
        }
      }
    }
  }

  /** The position (`{epoch, seq}`) of the last publication seen on a channel, if any. */
  position(channel) {
    return this._positions.get(channel) || null;
  }
}
