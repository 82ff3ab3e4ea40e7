"""The HTTP fallback in the browser: HTTP-only servers, blocked WebSockets, probing back to the
WebSocket, the SSE transport's edge cases, and publications the UI does not know.

Fixtures (servers, chromium, pages) are in conftest.py.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

FALLBACK_SCREENSHOT = Path(os.environ.get("LIVEBI_UI_FALLBACK_SCREENSHOT", "/tmp/livebi-ui-fallback.png"))
WS_URL = re.compile(r"/ws(\?|$)")

# Records every value the progress bars of the conversation take (MutationObserver sees each
# setAttribute, even several in one task).
WATCH_PROGRESS = """() => {
  window.__progress = [];
  new MutationObserver((records) => {
    for (const r of records) {
      window.__progress.push(Number(r.oldValue));
      window.__progress.push(Number(r.target.getAttribute("aria-valuenow")));
    }
  }).observe(document.getElementById("conversation"),
             {subtree: true, attributes: true, attributeFilter: ["aria-valuenow"], attributeOldValue: true});
}"""


def _tid(page, testid: str):
    return page.get_by_test_id(testid)


def _login(page) -> None:
    from playwright.sync_api import expect

    _tid(page, "login-username").fill("demo")
    _tid(page, "login-password").fill("demo")
    _tid(page, "login-submit").click()
    expect(_tid(page, "connection-status")).to_have_attribute("data-state", "connected")


def _ask_and_expect_chart(page, question: str = "total revenue by region"):
    from playwright.sync_api import expect

    page.evaluate(WATCH_PROGRESS)
    _tid(page, "question-input").fill(question)
    _tid(page, "question-input").press("Enter")
    card = _tid(page, "query-card").last
    expect(card.get_by_test_id("result-chart").locator(".plot-container, svg").first).to_be_visible()
    expect(card.get_by_test_id("progress-percent")).to_have_text("100%")
    progress = page.evaluate("window.__progress")
    # Progress streamed: the bar went through values between 0 and 100 before the answer.
    assert any(0 < v < 100 for v in progress), progress
    return card


def test_http_only_server_streams_over_sse(open_page, http_only_server):
    from playwright.sync_api import expect

    page = open_page(http_only_server)
    websockets: list[str] = []
    page.on("websocket", lambda ws: websockets.append(ws.url))
    ops_posts: list[str] = []
    page.on("request", lambda r: ops_posts.append(r.url) if r.method == "POST" and "/sse/ops" in r.url else None)

    _login(page)
    expect(_tid(page, "transport-badge")).to_have_text("sse")
    expect(_tid(page, "connection-status")).to_contain_text("connected (HTTP)")
    # HTTP-only is the server's choice, not a degradation: no banner.
    expect(_tid(page, "degradation-banner")).to_be_hidden()

    _ask_and_expect_chart(page)
    assert ops_posts, "the ask should have been POSTed to /sse/ops"
    assert websockets == [], f"an HTTP-only server should not even be tried over WebSocket: {websockets}"
    expect(_tid(page, "transport-badge")).to_have_text("sse")


def test_blocked_websocket_falls_back_to_sse(open_page, demo_server):
    from playwright.sync_api import expect

    page = open_page(demo_server)
    attempts: list[str] = []

    def refuse(ws) -> None:  # a proxy that accepts the upgrade and drops it at once
        attempts.append(ws.url)
        ws.close()

    page.route_web_socket(WS_URL, refuse)
    _login(page)
    expect(_tid(page, "transport-badge")).to_have_text("sse")
    expect(_tid(page, "connection-status")).to_contain_text("connected (HTTP fallback)")
    banner = _tid(page, "degradation-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Live connection degraded: using HTTP fallback")
    assert len(attempts) == 3, f"expected 3 WebSocket attempts before the fallback, got {attempts}"

    card = _ask_and_expect_chart(page)
    page.screenshot(path=str(FALLBACK_SCREENSHOT), full_page=False)
    card.locator("[data-testid=view-tab][data-view=table]").click()
    assert card.get_by_test_id("result-table").locator("tbody tr").count() >= 1

    # The banner can be dismissed; the badge keeps saying how updates arrive.
    _tid(page, "degradation-dismiss").click()
    expect(banner).to_be_hidden()
    expect(_tid(page, "transport-badge")).to_have_text("sse")
    assert len(attempts) == 3  # no probe yet (every 30 s)


SETUP_CLIENT = """async ({probeMs}) => {
  const m = await import("/static/js/client.js");
  const login = await fetch("/api/login", {method: "POST", headers: {"Content-Type": "application/json"},
                                           body: JSON.stringify({username: "demo", password: "demo"})});
  const {token, user} = await login.json();
  const log = window.__log = {degradation: [], pubs: [], recovery: [], created: []};
  // Tokens stay out of URLs: every connection gets a fresh single-use ticket.
  const ticket = async () => encodeURIComponent((await (await fetch("/api/ticket",
    {method: "POST", headers: {Authorization: `Bearer ${token}`}})).json()).ticket);
  const sse = {url: async (last) => `/sse?ticket=${await ticket()}` + (last ? `&last_event_id=${encodeURIComponent(last)}` : ""),
               opsUrl: (conn) => `/sse/ops?conn=${encodeURIComponent(conn)}`, token: () => token};
  const client = window.__client = new m.LiveClient({
    url: async () => `ws://${location.host}/ws?ticket=${await ticket()}`,
    sse, fallback: true, wsProbeIntervalMs: probeMs, backoffInitialMs: 100,
    config: async () => (await fetch("/api/config")).json(),
    transportFactory: (kind, url) => {
      const t = kind === "ws" ? new m.WebSocketTransport(url) : new m.SSETransport(sse);
      log.created.push(t);
      return t;
    },
  });
  client.on("service_degradation", (e) => log.degradation.push(e));
  client.on("publication", (p) => log.pubs.push([p.channel, p.epoch, p.seq, p.type]));
  client.on("recovery", (e) => log.recovery.push([e.channel, e.recovered]));
  client.connect();
  window.__userChannel = `user:${user.id}`;
}"""

ASK = """async (question) => {
  const {channel} = await window.__client.ask({question});
  return channel;
}"""

RESULT_IN = """(channel) => window.__log.pubs.some(([c, , , type]) => c === channel && type === "result")"""


def test_probe_moves_back_to_websocket_without_duplicates(open_page, demo_server):
    page = open_page(demo_server, "/health")  # same origin, no app: the test drives its own client
    attempts: list[str] = []
    blocked = {"on": True}

    def gate(ws) -> None:
        attempts.append(ws.url)
        if blocked["on"]:
            ws.close()
        else:
            ws.connect_to_server()

    page.route_web_socket(WS_URL, gate)
    page.evaluate(SETUP_CLIENT, {"probeMs": 700})
    # Predicates as functions, not expressions: Playwright re-evaluates expression strings on
    # each poll, which the page's CSP (no 'unsafe-eval') refuses.
    page.wait_for_function("() => window.__client.transport === 'sse'")
    assert len(attempts) == 3
    page.evaluate("window.__client.subscribe(window.__userChannel)")

    # Over SSE: ask, get the result.
    first = page.evaluate(ASK, "total revenue by region")
    page.wait_for_function(RESULT_IN, arg=first)
    page.wait_for_timeout(1500)  # a probe or two fail meanwhile: still on SSE
    assert page.evaluate("window.__client.transport") == "sse"
    assert len(attempts) >= 4, "the client should keep probing the WebSocket while on SSE"

    # The WebSocket works again: the next probe moves the client back and retires the stream.
    blocked["on"] = False
    page.wait_for_function("() => window.__client.transport === 'ws'", timeout=10_000)
    page.wait_for_function("() => window.__log.created.filter((t) => t.kind === 'sse').every((t) => t.source.readyState === 2)")
    second = page.evaluate(ASK, "number of orders by month")
    page.wait_for_function(RESULT_IN, arg=second)

    log = page.evaluate("""() => ({degradation: window.__log.degradation, pubs: window.__log.pubs,
                                   recovery: window.__log.recovery, stats: window.__client.stats})""")
    assert [d["active"] for d in log["degradation"]] == [True, False], log["degradation"]
    assert log["stats"]["switchesBack"] == 1 and log["stats"]["fallbacks"] == 1, log["stats"]
    user_channel = page.evaluate("window.__userChannel")
    assert [user_channel, True] in log["recovery"], log["recovery"]
    # Every channel: each publication once, in order, no gaps.
    by_channel: dict[str, list[int]] = {}
    for channel, _epoch, seq, _type in log["pubs"]:
        by_channel.setdefault(channel, []).append(seq)
    for channel in (first, second):
        seqs = by_channel[channel]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), (channel, seqs)


SSE_EDGE_CASES = """async () => {
  const m = await import("/static/js/client.js");
  const until = async (what, fn) => {
    for (let i = 0; i < 300; i++) { if (fn()) return; await new Promise((r) => setTimeout(r, 10)); }
    throw new Error(`timed out waiting for ${what}`);
  };
  const sources = [];
  class FakeEventSource {
    constructor(url) { this.url = url; this.readyState = 0; sources.push(this); }
    close() { this.readyState = 2; }
    emit(obj, id = "") { this.readyState = 1; this.onmessage({data: JSON.stringify(obj), lastEventId: id}); }
    drop() { this.readyState = 0; this.onerror({}); }  // the browser would resume with the same URL
  }
  FakeEventSource.CLOSED = 2;
  const posts = [];
  let answer = null;  // (conn, body) -> [status, reply] overrides
  const fetchImpl = async (url, init) => {
    const conn = new URL(url, location.href).searchParams.get("conn");
    const body = JSON.parse(init.body);
    posts.push([conn, body.op, body.since || null, body.channel || null]);
    let [status, reply] = (answer && answer(conn, body)) || [200, null];
    if (!reply) {
      const data = body.op === "subscribe"
        ? {channel: body.channel, epoch: "e1", seq: body.since ? 4 : 0, recovered: body.since ? true : null}
        : {pong: true};
      reply = {id: body.id, ok: true, data};
    }
    return {ok: status === 200, status, text: async () => JSON.stringify(reply)};
  };
  const events = {status: [], degradation: [], unauthenticated: 0, pubs: [], recovery: []};
  let n = 0;  // each stream gets a fresh URL (a new ticket), a resumed one the last event id
  const url = async (last) => `/sse?ticket=t${++n}` + (last ? `&last_event_id=${last}` : "");
  const client = new m.LiveClient({
    url: "ws://unused", fallback: true, backoffInitialMs: 10, backoffMaxMs: 20,
    config: async () => ({websocket: false}),
    transportFactory: (kind) => {
      if (kind !== "sse") throw new Error("no WebSocket on an HTTP-only server");
      return new m.SSETransport({url, opsUrl: (c) => `/sse/ops?conn=${c}`, token: "t",
                                 EventSourceImpl: FakeEventSource, fetchImpl});
    },
  });
  client.on("status", (s) => events.status.push([s.state, s.transport, s.httpOnly]));
  client.on("service_degradation", (e) => events.degradation.push(e));
  client.on("unauthenticated", () => { events.unauthenticated += 1; });
  client.on("recovery", (e) => events.recovery.push([e.channel, e.recovered]));
  client.connect();
  await until("a first stream", () => sources.length === 1);

  // The open event arrives inside a batch, with a presence publication of another channel.
  sources[0].emit({type: "message_batch", messages: [
    {type: "open", conn_id: "c1", user: {id: "u"}, resumed: []},
    {channel: "system", epoch: "s", seq: 1, type: "presence", data: {event: "join", member: {}}},
  ]});
  await until("connected", () => client.transport === "sse");
  await client.subscribe("dashboard:1", (p) => events.pubs.push([p.seq, p.type]));
  sources[0].emit({type: "message_batch", messages: [
    {channel: "dashboard:1", epoch: "e1", seq: 1, type: "edit", data: {}},
    {channel: "dashboard:1", epoch: "e1", seq: 2, type: "presence", data: {event: "join"}},
    {channel: "dashboard:1", epoch: "e1", seq: 2, type: "presence", data: {event: "join"}},
    {channel: "dashboard:1", epoch: "e1", seq: 3, type: "mystery", data: 42},
    {type: "what_is_this"},
  ]}, "pos-3");

  // The server restarts: it ends the stream with a close event; a new stream, resubscribe with since.
  sources[0].emit({type: "close", code: 1012, reason: "restart"});
  const closedAtOnce = sources[0].readyState === 2;
  await until("a second stream", () => sources.length === 2);
  sources[1].emit({type: "open", conn_id: "c2", user: {id: "u"}, resumed: []});
  await until("the resubscribe", () => posts.some(([c, op]) => c === "c2" && op === "subscribe"));
  sources[1].emit({channel: "dashboard:1", epoch: "e1", seq: 3, type: "mystery", data: 42});
  sources[1].emit({channel: "dashboard:1", epoch: "e1", seq: 4, type: "edit", data: {}});

  // The stream vanished on the server (404 on POST): a third stream, the op is sent again there.
  answer = (conn, body) => (conn === "c2" && body.op === "ping" ? [404, {detail: "no such SSE stream"}] : null);
  const ping = client.request("ping");
  await until("a third stream", () => sources.length === 3);
  sources[2].emit({type: "open", conn_id: "c3", user: {id: "u"}, resumed: []});
  const pong = await ping;

  // The network drops the stream. Its ticket is spent: the transport closes the EventSource and
  // resumes on a new one with a fresh ticket and the last event id; ops wait meanwhile.
  sources[2].emit({channel: "dashboard:1", epoch: "e1", seq: 5, type: "edit", data: {}}, "pos-5");
  sources[2].drop();
  const droppedClosed = sources[2].readyState === 2;
  const postsBefore = posts.length;
  const waiting = client.request("ping");
  await until("a resumed stream", () => sources.length === 4);
  await new Promise((r) => setTimeout(r, 50));
  const postedWhilePaused = posts.length - postsBefore;
  sources[3].emit({type: "open", conn_id: "c3b", user: {id: "u"},
                   resumed: [{channel: "dashboard:1", epoch: "e1", seq: 5, recovered: true}]});
  await waiting;

  // A 401 on an op: back to the login.
  answer = () => [401, {detail: "token expired"}];
  let rejected = null;
  try { await client.request("ping"); } catch (err) { rejected = err.code; }
  await until("offline", () => client.state === "offline");
  return {closedAtOnce, pong, postedWhilePaused, rejected, posts, events, droppedClosed,
          urls: sources.map((s) => s.url), sourcesClosed: sources.map((s) => s.readyState), count: sources.length};
}"""


def test_sse_transport_edge_cases(open_page, demo_server):
    page = open_page(demo_server, "/health")  # only the module is needed; the server is faked
    out = page.evaluate(SSE_EDGE_CASES)
    events = out["events"]
    # Unknown and presence types are delivered (in order, once) and nothing breaks on them.
    assert events["pubs"] == [[1, "edit"], [2, "presence"], [3, "mystery"], [4, "edit"], [5, "edit"]], events["pubs"]
    assert out["closedAtOnce"], "a close event must shut the EventSource before the browser resumes it"
    posts = out["posts"]
    # After the forced reconnect the channel is resubscribed over POST from its position.
    assert ["c2", "subscribe", {"epoch": "e1", "seq": 3}, "dashboard:1"] in posts, posts
    assert ["dashboard:1", True] in events["recovery"], events["recovery"]
    # The op answered 404 went out again on the new stream and was answered there.
    assert ["c3", "ping", None, None] in posts and out["pong"] == {"pong": True}, posts
    # A dropped stream is not left to the browser (its ticket is spent): closed at once and
    # resumed on a new EventSource with a fresh URL carrying the last event id.
    assert out["droppedClosed"]
    assert out["urls"] == ["/sse?ticket=t1", "/sse?ticket=t2", "/sse?ticket=t3", "/sse?ticket=t4&last_event_id=pos-5"], out["urls"]
    # While the stream was resumed, no op was posted; the resumed channel needed no resubscribe.
    assert out["postedWhilePaused"] == 0
    assert not any(c == "c3b" and op == "subscribe" for c, op, _, _ in posts), posts
    assert any(c == "c3b" and op == "ping" for c, op, _, _ in posts), posts
    # 401: the op fails and the client stops (the app goes back to the login).
    assert out["rejected"] == "unauthenticated" and events["unauthenticated"] == 1
    assert out["count"] == 4 and out["sourcesClosed"] == [2, 2, 2, 2], out
    # HTTP-only: SSE from the start, reported as such, and not as a degradation.
    assert ["connected", "sse", True] in events["status"], events["status"]
    assert events["degradation"] == []


def test_unknown_publications_do_not_break_the_ui(open_page, demo_server):
    """Presence and unknown publication types on the query channel, another channel's
    publications and unknown message types are ignored by the UI."""
    from playwright.sync_api import expect

    page = open_page(demo_server)
    injected: list[str] = []

    def relay(ws) -> None:
        server = ws.connect_to_server()
        ws.on_message(lambda message: server.send(message))

        def from_server(message) -> None:
            ws.send(message)
            frame = json.loads(message)
            inner = frame.get("messages", [frame]) if frame.get("type") == "message_batch" else [frame]
            for m in inner:
                channel = (m.get("data") or {}).get("channel", "") if m.get("ok") else ""
                if channel.startswith("query:"):
                    extra = {"type": "message_batch", "batch_id": "x", "timestamp": 0, "messages": [
                        {"channel": channel, "type": "presence", "ts": 0,
                         "data": {"event": "join", "member": {"conn_id": "z", "user_id": "u", "username": "eve",
                                                              "state": None, "joined_at": 0}}},
                        {"channel": channel, "type": "hologram", "ts": 0, "data": None},
                        {"channel": "system", "epoch": "e", "seq": 1, "type": "presence", "ts": 0, "data": {}},
                        {"channel": "dashboard:7", "epoch": "e", "seq": 1, "type": "widget_moved", "ts": 0},
                        {"type": "service_notice", "text": "hello"},
                    ]}
                    ws.send(json.dumps(extra))
                    injected.append(channel)

        server.on_message(from_server)

    page.route_web_socket(WS_URL, relay)
    _login(page)
    expect(_tid(page, "transport-badge")).to_have_text("ws")
    _ask_and_expect_chart(page)
    assert injected, "the test did not manage to inject anything"
    card = _tid(page, "query-card").first
    expect(card.get_by_test_id("error-box")).to_have_count(0)
    assert not page.console_errors, page.console_errors


def test_sse_reconnects_with_a_fresh_ticket_after_the_stream_drops(open_page, tmp_path):
    """Every stream is opened with its own single-use ticket, never the token. When the stream
    drops without a close event (the server is killed), the browser's own EventSource retry
    would reuse a spent ticket: the UI fetches a new one, reconnects once the server is back,
    and answers again."""
    from urllib.parse import parse_qs, urlparse

    from playwright.sync_api import expect

    from .conftest import _demo

    env = {"LIVEBI_WEBSOCKET": "false"}
    procs: list = []
    with _demo(tmp_path, env, started=procs.append) as base:
        port = urlparse(base).port
        page = open_page(base)
        streams: list[str] = []
        page.on("request", lambda r: streams.append(r.url) if urlparse(r.url).path == "/sse" else None)
        _login(page)
        expect(_tid(page, "transport-badge")).to_have_text("sse")
        procs[0].kill()  # no close event: the stream just drops
        procs[0].wait()
        expect(_tid(page, "connection-status")).not_to_have_attribute("data-state", "connected", timeout=20_000)
    with _demo(tmp_path, env, port=port):  # same store and secret key: the session is still good
        expect(_tid(page, "connection-status")).to_have_attribute("data-state", "connected", timeout=60_000)
        _ask_and_expect_chart(page)
    queries = [parse_qs(urlparse(url).query) for url in streams]
    assert all("token" not in q for q in queries), streams
    tickets = [q["ticket"][0] for q in queries if "ticket" in q]
    assert len(tickets) >= 2 and len(set(tickets)) == len(tickets), streams


SUBSCRIBE_BEFORE_CONNECT = """async () => {
  const m = await import("/static/js/client.js");
  const login = await fetch("/api/login", {method: "POST", headers: {"Content-Type": "application/json"},
                                           body: JSON.stringify({username: "demo", password: "demo"})});
  const {token, user} = await login.json();
  const ticket = async () => encodeURIComponent((await (await fetch("/api/ticket",
    {method: "POST", headers: {Authorization: `Bearer ${token}`}})).json()).ticket);
  const client = new m.LiveClient({url: async () => `ws://${location.host}/ws?ticket=${await ticket()}`,
                                   config: async () => (await fetch("/api/config")).json()});
  const recovery = [];
  client.on("recovery", (e) => recovery.push([e.channel, e.recovered]));
  const channel = `user:${user.id}`;
  client.connect();
  const subscribed = client.subscribe(channel, () => {});  // queued: the connection is still opening
  const reply = await subscribed;
  await new Promise((resolve) => setTimeout(resolve, 300));  // a stray second reply would be here
  client.close();
  return {channel, recovery, replyChannel: reply.channel};
}"""


def test_a_subscribe_made_before_the_connection_opens_is_sent_once_and_is_no_recovery(open_page, demo_server):
    """A page subscribes while its connection is still opening (the dashboard page does, on
    load): the connection opening must not send the subscribe a second time, nor report a
    failed recovery for a channel that had nothing to recover (the page would refetch
    everything while it is still loading, and race with itself)."""
    page = open_page(demo_server, "/health")
    sent: list[dict] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(json.loads(payload))))
    out = page.evaluate(SUBSCRIBE_BEFORE_CONNECT)
    subscribes = [f for f in sent if f.get("op") == "subscribe" and f.get("channel") == out["channel"]]
    assert out["replyChannel"] == out["channel"]
    assert len(subscribes) == 1, subscribes
    assert out["recovery"] == [], out["recovery"]


def test_logging_out_drops_the_requests_still_in_flight(open_page, demo_server):
    """A request made just before logging out must not come back as a 401 of a session that is
    over (a console error, and a "session expired" flash on the login screen): logging out drops
    every request of the session, except the logout itself."""
    page = open_page(demo_server, "/health")
    out = page.evaluate("""async () => {
      const api = await import("/static/js/api.js");
      await api.login("demo", "demo");
      const pending = api.listDashboards();
      const loggedOut = api.logout();
      api.session.clear();
      let error = null;
      try { await pending; } catch (err) { error = {status: err.status, aborted: err.aborted}; }
      await loggedOut;
      const after = await fetch("/api/me", {credentials: "same-origin"});
      return {error, meAfterLogout: after.status};
    }""")
    assert out["error"] == {"status": 0, "aborted": True}, out
    assert out["meAfterLogout"] == 401  # the logout itself went through
