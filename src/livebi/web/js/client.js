// livebi protocol client: ops with replies matched by id, publications dispatched by channel,
// reconnection with exponential backoff + jitter and recovery through `since`.
//
// No DOM dependency: it runs in a browser, a worker or Node (pass `WebSocketImpl`). The transport
// is isolated behind a three-method interface so an SSE + POST fallback can plug in later:
//
//   transport = transportFactory(url)
//   transport.open({onOpen(), onMessage(text), onClose({code, reason})})
//   transport.send(text)          // only called after onOpen
//   transport.close(code, reason) // onClose still fires (once)

/** Close codes the server uses (see livebi.protocol.CloseCode). */
export const CLOSE = Object.freeze({
  normal: 1000,
  messageTooBig: 1009,
  serviceRestart: 1012,
  unauthenticated: 4001,
  featureDisabled: 4003,
  slowConsumer: 4008,
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

/** The WebSocket transport: one socket per `open`, text frames only. */
export class WebSocketTransport {
  constructor(url, { WebSocketImpl = globalThis.WebSocket } = {}) {
    this.url = url;
    this.WebSocketImpl = WebSocketImpl;
    this.socket = null;
  }

  open({ onOpen, onMessage, onClose }) {
    let closed = false;
    const finish = (code, reason) => {
      if (closed) return;
      closed = true;
      onClose({ code, reason });
    };
    let socket;
    try {
      socket = new this.WebSocketImpl(this.url);
    } catch (err) {
      // A malformed URL throws synchronously; report it as an abnormal close, asynchronously.
      Promise.resolve().then(() => finish(1006, String(err && err.message)));
      return;
    }
    this.socket = socket;
    socket.onopen = () => onOpen();
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
 * Events (`client.on(name, fn)`):
 *  - `status`       {state: connecting|connected|reconnecting|offline, attempt, retryAt, code, reason}
 *  - `publication`  every publication, after de-duplication
 *  - `recovery`     {channel, recovered} after a resubscribe with `since` following a reconnect
 *  - `unauthenticated` the server closed with 4001: the token is no good, the client stops
 *  - `transport_disabled` the server closed with 4003 (WebSocket off: an SSE fallback should take over)
 */
export class LiveClient extends Emitter {
  /**
   * @param {object} options
   * @param {string|function():string} options.url  WebSocket URL, or a function returning it
   *   (called on every (re)connect so a refreshed token is picked up).
   * @param {function(string):object} [options.transportFactory]  builds a transport for a URL.
   */
  constructor({
    url,
    transportFactory = (u) => new WebSocketTransport(u),
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
    this._transportFactory = transportFactory;
    this._opts = { pingIntervalMs, pingTimeoutMs, opTimeoutMs, backoffInitialMs, backoffMaxMs,
      backoffFactor, backoffJitter, stableAfterMs };
    this._now = now;
    this._random = random;

    this._nextId = 1;
    this._pending = new Map(); // id -> {resolve, reject, timer, frame, sent}
    this._queue = []; // ids of ops waiting for an open transport, in order
    this._channels = new Map(); // channel -> Set(handler): channels we want after a reconnect
    this._positions = new Map(); // channel -> {epoch, seq} of the last publication seen

    this._transport = null;
    this._open = false;
    this._wanted = false; // the user wants a connection (connect() called, close() not)
    this._attempt = 0;
    this._retryTimer = null;
    this._pingTimer = null;
    this._stableTimer = null;
    this.state = "offline";
  }

  // -- lifecycle ------------------------------------------------------------------------------

  /** Start connecting (idempotent). Reconnects automatically until `close()`. */
  connect() {
    this._wanted = true;
    if (!this._transport && !this._retryTimer) this._dial();
  }

  /** Skip the remaining backoff delay and dial now (e.g. when the browser comes back online). */
  reconnectNow() {
    if (!this._wanted || this._transport) return;
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._dial();
  }

  /** Close for good: no reconnect, pending ops are rejected. */
  close() {
    this._wanted = false;
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    const transport = this._transport;
    this._teardown();
    if (transport) transport.close(CLOSE.normal, "client closed");
    this._failPending("closed", "the connection was closed");
    this._setStatus({ state: "offline" });
  }

  _dial() {
    this._retryTimer = null;
    this._setStatus({ state: this._attempt === 0 ? "connecting" : "reconnecting", attempt: this._attempt });
    const url = typeof this._url === "function" ? this._url() : this._url;
    const transport = this._transportFactory(url);
    this._transport = transport;
    transport.open({
      onOpen: () => transport === this._transport && this._onOpen(),
      onMessage: (text) => transport === this._transport && this._onFrame(text),
      onClose: (info) => transport === this._transport && this._onClose(info),
    });
  }

  _onOpen() {
    this._open = true;
    this._setStatus({ state: "connected" });
    // Reset the backoff only once the connection has proved stable, so a server that accepts
    // and immediately drops us is not hammered.
    this._stableTimer = setTimeout(() => { this._attempt = 0; }, this._opts.stableAfterMs);
    this._pingTimer = setInterval(() => this._ping(), this._opts.pingIntervalMs);
    // Resubscribe first so missed publications are replayed before any new ask is answered.
    for (const channel of this._channels.keys()) this._resubscribe(channel);
    const queued = this._queue.splice(0);
    for (const id of queued) this._sendPending(id);
  }

  _onClose({ code, reason }) {
    this._teardown();
    if (code === CLOSE.unauthenticated || code === CLOSE.featureDisabled) {
      // Retrying cannot help: a bad token stays bad, a disabled transport stays disabled.
      this._wanted = false;
      this._failPending(code === CLOSE.unauthenticated ? "unauthenticated" : "feature_disabled",
        reason || "the server refused the connection");
      this._setStatus({ state: "offline", code, reason });
      this.emit(code === CLOSE.unauthenticated ? "unauthenticated" : "transport_disabled", { code, reason });
      return;
    }
    this._failPending("disconnected", "the connection was lost before the server replied");
    if (!this._wanted) return;
    this._attempt += 1; // reset to 0 once a connection has stayed up for stableAfterMs
    const delay = this.backoffDelay(this._attempt);
    this._retryTimer = setTimeout(() => this._dial(), delay);
    this._setStatus({ state: "reconnecting", attempt: this._attempt, retryAt: this._now() + delay, code, reason });
  }

  _teardown() {
    this._open = false;
    this._transport = null;
    clearInterval(this._pingTimer);
    clearTimeout(this._stableTimer);
    this._pingTimer = null;
    this._stableTimer = null;
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
    this.emit("status", status);
  }

  _ping() {
    this.request("ping", {}, { timeoutMs: this._opts.pingTimeoutMs }).catch((err) => {
      // A silent connection (half-open TCP) is only noticed by a missing pong: drop and redial.
      if (err.code === "timeout" && this._transport) this._transport.close(4000, "ping timeout");
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
      this._pending.set(id, { resolve, reject, timer, frame, sent: false, op });
      if (this._open) this._sendPending(id);
      else if (this._wanted) this._queue.push(id);
      else this._settle(id, null, { code: "offline", message: "not connected" });
    });
  }

  _sendPending(id) {
    const entry = this._pending.get(id);
    if (!entry) return;
    entry.sent = true;
    try {
      this._transport.send(entry.frame);
    } catch (err) {
      this._settle(id, null, { code: "send_failed", message: String(err && err.message) });
    }
  }

  _failPending(code, message) {
    // Ops already on the wire lost their reply; ops still queued keep waiting for the next
    // connection (unless the client is closing for good).
    for (const [id, entry] of [...this._pending]) {
      if (entry.sent || !this._wanted) this._settle(id, null, { code, message });
    }
    if (!this._wanted) this._queue.length = 0;
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
    this.request("subscribe", since ? { channel, since } : { channel })
      .then((data) => {
        this._replay(data);
        this.emit("recovery", { channel, recovered: since ? data.recovered !== false : false, data });
      })
      .catch((err) => this.emit("recovery", { channel, recovered: false, error: err }));
  }

  /** Some servers put replayed publications in the subscribe reply: dispatch them too. */
  _replay(data) {
    const messages = data && (data.messages || data.publications);
    if (Array.isArray(messages)) for (const message of messages) this._onMessage(message);
  }

  // -- incoming ------------------------------------------------------------------------------

  _onFrame(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      console.warn("livebi client: ignored a frame that is not JSON");
      return;
    }
    this._onMessage(message);
  }

  _onMessage(message) {
    if (!message || typeof message !== "object") return;
    if (message.type === "message_batch" && Array.isArray(message.messages)) {
      for (const inner of message.messages) this._onMessage(inner);
      return;
    }
    if ("ok" in message && "id" in message) {
      if (message.ok) this._settle(message.id, message.data, null);
      else this._settle(message.id, null, message.error || { code: "error", message: "request failed" });
      return;
    }
    if (typeof message.channel === "string") this._onPublication(message);
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
