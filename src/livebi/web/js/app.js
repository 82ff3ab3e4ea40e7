// The analyst workspace: login, header (warehouse, connection status, user), the conversation of
// query cards, the composer and the history sidebar.

import * as api from "./api.js";
import { LiveClient } from "./client.js";
import { QueryCard } from "./card.js";
import { h, replaceChildren, timeAgo } from "./dom.js";
import { startRouter, navigate } from "./router.js";
import { DashboardList } from "./dashlist.js";
import { DashboardPage } from "./dashboard.js";
import { Notifications } from "./notify.js";
import { pinDialog, shareDialog } from "./pin.js";
import * as widgetcache from "./widgetcache.js";

const $ = (id) => document.getElementById(id);
const WAREHOUSE_KEY = "livebi.warehouse";
const EARLY_PUBLICATION_TTL_MS = 30_000;
const RESTORED_ANSWERS = 5;

const ui = {
  loginView: $("login-view"), loginForm: $("login-form"), loginUser: $("login-username"),
  loginPassword: $("login-password"), loginError: $("login-error"), loginSubmit: $("login-submit"),
  mainView: $("main-view"), warehouse: $("warehouse-select"), status: $("connection-status"),
  userName: $("user-name"), logout: $("logout"), conversation: $("conversation"),
  emptyState: $("empty-state"), examples: $("examples"), composer: $("composer"),
  input: $("question-input"), askButton: $("ask-button"), historyList: $("history-list"),
  historyEmpty: $("history-empty"), historyRefresh: $("history-refresh"),
  historyToggle: $("history-toggle"), historyPanel: $("history-panel"),
  transportBadge: $("transport-badge"), banner: $("degradation-banner"),
  bannerDismiss: $("degradation-dismiss"),
  layout: document.querySelector(".layout"), dashView: $("dashboards-view"),
  navAsk: $("nav-ask"), navDashboards: $("nav-dashboards"), toasts: $("toasts"),
  bell: $("bell"), bellBadge: $("bell-badge"), notifPanel: $("notif-panel"),
};

/** What is degraded now: "connection" (this browser's HTTP fallback) and the server's own
 * notices by component, each with its message. */
const degradations = new Map();
const CONNECTION_TEXT = ui.banner.querySelector(".banner-text").textContent;
const CONNECTION_DETAIL = ui.banner.querySelector(".banner-detail").textContent;

let client = null;
const cards = new Map(); // query_id -> QueryCard
const early = new Map(); // query_id -> {pubs: [], timer}: publications that beat the ask reply
let statusTimer = null;
let historyTimer = null;
let page = null; // the dashboards list or a dashboard page on screen (null: the conversation)
let stopRouter = null;
let userChannel = null;
let restored = true; // nothing (more) to restore from the history in this page

const notifications = new Notifications({
  bell: ui.bell, badge: ui.bellBadge, panel: ui.notifPanel, toasts: ui.toasts,
  onOpen: (shared) => openShared(shared),
});

// -- login / logout ---------------------------------------------------------------------------

function showLogin(message = "") {
  ui.mainView.hidden = true;
  ui.loginView.hidden = false;
  setLoginError(message);
  ui.loginSubmit.disabled = false;
  ui.loginSubmit.textContent = "Log in";
  (ui.loginUser.value ? ui.loginPassword : ui.loginUser).focus();
}

function setLoginError(message) {
  ui.loginError.textContent = message;
  ui.loginError.hidden = !message;
}

ui.loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const username = ui.loginUser.value.trim();
  const password = ui.loginPassword.value;
  if (!username || !password) {
    setLoginError("Enter your username and password.");
    return;
  }
  ui.loginSubmit.disabled = true;
  ui.loginSubmit.textContent = "Logging in…";
  try {
    await api.login(username, password);
    ui.loginPassword.value = "";
    setLoginError("");
    showMain();
  } catch (err) {
    setLoginError(err.status === 401 ? (err.message || "Wrong username or password.") : err.message);
    ui.loginPassword.select();
  } finally {
    ui.loginSubmit.disabled = false;
    ui.loginSubmit.textContent = "Log in";
  }
});

function logout(message = "") {
  leavePage();
  if (stopRouter) stopRouter();
  stopRouter = null;
  userChannel = null;
  notifications.clear();
  if (client) client.close();
  client = null;
  api.session.clear();
  widgetcache.clearAll(); // the next user of this browser sees none of my widgets' last results
  for (const entry of early.values()) clearTimeout(entry.timer);
  early.clear();
  cards.clear();
  for (const card of ui.conversation.querySelectorAll("[data-testid=query-card]")) card.remove();
  ui.emptyState.hidden = false;
  replaceChildren(ui.historyList);
  clearInterval(statusTimer);
  degradations.clear();
  showDegradation(false);
  setStatus("offline", "offline");
  showLogin(message);
}

ui.logout.addEventListener("click", () => {
  api.logout(); // revoke the token server side (fire and forget: the UI logs out at once)
  logout();
});

/** REST failures: a 401 ends the session, anything else is reported to the caller's UI. */
function handleApiError(err) {
  if (err && err.aborted) return true; // dropped at logout
  if (err && err.status === 401) {
    logout("Your session has expired. Please log in again.");
    return true;
  }
  console.warn("livebi:", err);
  return false;
}

// -- main view --------------------------------------------------------------------------------

/**
 * The workspace. `restore`: the page opened on an existing session (a reload, a new tab), so
 * the conversation comes back; after logging in with the form it starts empty.
 */
function showMain({ restore = false } = {}) {
  restored = !restore;
  const user = api.session.user || {};
  ui.loginView.hidden = true;
  ui.mainView.hidden = false;
  ui.userName.textContent = user.username || "";
  connect();
  loadWarehouses();
  refreshHistory();
  stopRouter = startRouter(showRoute);
}

// -- routes -----------------------------------------------------------------------------------

function me() {
  const user = api.session.user || {};
  return { id: user.id, username: user.username };
}

function leavePage() {
  if (page && page.destroy) page.destroy();
  page = null;
}

/** Show the view a route names: the conversation, the dashboards list or one dashboard. */
function showRoute(route) {
  if (!client) return;
  leavePage();
  const conversation = route.name === "conversation";
  ui.layout.hidden = !conversation;
  ui.composer.hidden = !conversation;
  ui.dashView.hidden = conversation;
  ui.historyToggle.hidden = !conversation; // the history drawer belongs to the conversation
  const current = route.name === "conversation" ? ui.navAsk : ui.navDashboards;
  for (const link of [ui.navAsk, ui.navDashboards]) {
    if (link === current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (conversation) {
    document.title = "livebi — ask your data";
    replaceChildren(ui.dashView);
    ui.input.focus();
    return;
  }
  if (route.name === "dashboards") {
    page = new DashboardList({ me: me(), onError: handleApiError });
    page.mount(ui.dashView);
  } else {
    page = new DashboardPage({
      id: route.id, client, me: me(), runQuery,
      askInConversation: (request) => {
        navigate({ name: "conversation" });
        ask(request);
      },
      onGone: (message) => {
        navigate({ name: "dashboards" });
        toast(message);
      },
    });
    page.mount(ui.dashView);
  }
  ui.dashView.focus({ preventScroll: true });
}

/** A short message at the bottom of the screen. */
function toast(message) {
  const el = h("div", { class: "toast", role: "status", testid: "toast-message" }, message);
  ui.toasts.append(el);
  setTimeout(() => el.remove(), 5000);
}

// The skip link goes to whatever content is on screen.
for (const link of document.querySelectorAll('.skip-link[href="#page-content"]')) {
  link.addEventListener("click", (event) => {
    event.preventDefault();
    // The latest answer's view tabs, the first widget of a dashboard, else the view itself.
    const target = ui.dashView.hidden ? ui.conversation : ui.dashView;
    const answers = target.querySelectorAll("[data-testid=query-card]");
    const last = answers[answers.length - 1];
    const first = (last && (last.querySelector('[role=tab][tabindex="0"]') || last))
      || target.querySelector("[data-testid=widget]");
    if (first && first.tabIndex < 0 && !first.hasAttribute("tabindex")) first.setAttribute("tabindex", "-1");
    (first || target).focus();
  });
}

function connect() {
  client = new LiveClient({
    url: api.websocketUrl,
    // The HTTP fallback: used when the WebSocket keeps failing, or at once on an HTTP-only server.
    sse: { url: api.sseUrl, opsUrl: api.sseOpsUrl, token: () => api.session.token, headers: api.csrfHeaders },
    config: api.config,
  });
  client.on("status", renderStatus);
  client.on("service_degradation", ({ active }) => showDegradation(active));
  client.on("publication", routePublication);
  client.on("recovery", ({ channel, recovered }) => {
    if (recovered || !channel.startsWith("query:")) return;
    const card = cards.get(channel.slice("query:".length));
    if (card) card.markLost();
  });
  client.on("unauthenticated", () => logout("Your session has expired. Please log in again."));
  client.on("transport_disabled", () => setStatus("offline", "offline (live updates are switched off)"));
  client.connect();
  subscribeUserChannel();
  subscribeSystemChannel();
}

/** The server says on `system` when a part it depends on degrades or recovers (a remote agent
 * reached over HTTP, Redis away...): shown in the same banner as the browser's own fallback. */
function subscribeSystemChannel() {
  if (!client) return;
  client.subscribe("system", (pub) => {
    if (pub.type !== "service_degradation") return;
    const data = pub.data || {};
    showDegradation(Boolean(data.active), `server:${data.component}`, data.message || "");
  }).catch((err) => console.warn("livebi: service notices unavailable", err));
}

/** Answers shared with me and my alerts arrive on my user channel. */
function subscribeUserChannel() {
  const { id } = me();
  if (!id || !client) return;
  userChannel = `user:${id}`;
  client.subscribe(userChannel, (pub) => {
    if (pub.type === "shared_query_result") notifications.add(pub.data || {});
    else if (pub.type === "notification") notifications.addAlert(pub.data || {});
  }).catch((err) => console.warn("livebi: notifications unavailable", err));
}

window.addEventListener("online", () => client && client.reconnectNow());

function setStatus(state, text, { transport = null, degraded = false } = {}) {
  ui.status.dataset.state = state;
  ui.status.dataset.degraded = String(Boolean(degraded));
  ui.status.querySelector(".status-text").textContent = text;
  // The badge says which transport carries live updates (while connected).
  ui.transportBadge.hidden = !(state === "connected" && transport);
  ui.transportBadge.textContent = transport || "";
  ui.transportBadge.dataset.transport = transport || "";
  ui.transportBadge.title = transport === "sse" ? "Live updates over HTTP (Server-Sent Events)"
    : transport === "ws" ? "Live updates over a WebSocket" : "";
}

/** The "degraded" banner: shown while something is degraded, until dismissed or fixed. */
function showDegradation(active, key = "connection", message = "") {
  if (active) degradations.set(key, message);
  else degradations.delete(key);
  const server = [...degradations].filter(([k]) => k !== "connection").map(([, m]) => m).filter(Boolean);
  const own = degradations.has("connection");
  ui.banner.querySelector(".banner-text").textContent = own ? CONNECTION_TEXT : "Service degraded";
  ui.banner.querySelector(".banner-detail").textContent = [own ? CONNECTION_DETAIL : "", ...server].join(" ").trim();
  ui.banner.hidden = degradations.size === 0;
}

ui.bannerDismiss.addEventListener("click", () => { ui.banner.hidden = true; });

function renderStatus(status) {
  clearInterval(statusTimer);
  if (status.state === "connected") {
    const text = status.transport !== "sse" ? "connected"
      : status.httpOnly ? "connected (HTTP)" : "connected (HTTP fallback)";
    setStatus("connected", text, { transport: status.transport, degraded: status.degraded });
  }
  else if (status.state === "connecting") setStatus("connecting", "connecting…");
  else if (status.state === "offline") setStatus("offline", "offline");
  else if (status.retryAt) {
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((status.retryAt - Date.now()) / 1000));
      setStatus("reconnecting", seconds > 0 ? `reconnecting in ${seconds}s` : "reconnecting…");
    };
    tick();
    statusTimer = setInterval(tick, 1000);
  } else setStatus("reconnecting", "reconnecting…");
}

async function loadWarehouses() {
  try {
    const list = await api.warehouses();
    const saved = sessionStorage.getItem(WAREHOUSE_KEY);
    const chosen = list.find((w) => w.name === saved) || list.find((w) => w.default) || list[0];
    replaceChildren(ui.warehouse, list.map((w) =>
      h("option", { value: w.name, selected: chosen && w.name === chosen.name }, `${w.name} (${w.dialect})`)));
    if (chosen) ui.warehouse.value = chosen.name;
  } catch (err) {
    if (handleApiError(err)) return;
  }
  loadExamples();
}

ui.warehouse.addEventListener("change", () => {
  sessionStorage.setItem(WAREHOUSE_KEY, ui.warehouse.value);
  loadExamples();
});

async function loadExamples() {
  let questions = [];
  try {
    questions = await api.examples(ui.warehouse.value || undefined);
  } catch (err) {
    if (handleApiError(err)) return;
  }
  replaceChildren(ui.examples, questions.map((q) =>
    h("button", { type: "button", class: "chip", testid: "example-chip", on: { click: () => ask({ question: q }) } }, q)));
}

// -- asking -----------------------------------------------------------------------------------

/** Ask a question (`{question}`) or run SQL (`{sql}`); each becomes a new card. */
function ask({ question, sql, warehouse, chart }) {
  if (!client) return;
  const text = (question || "").trim();
  if (!text && !sql) return;
  warehouse = warehouse || ui.warehouse.value || undefined;
  const card = conversationCard({ question: text || null, sql, warehouse });
  ui.emptyState.hidden = true;
  ui.conversation.append(card.el);
  scrollToBottom(true);
  startQuery({ question: text || undefined, sql, warehouse, chart }, card)
    .catch((err) => {
      if (err.code === "unauthenticated") return; // logout() is already on its way
      card.failRequest(err);
    });
}

/** A card for the conversation: it can ask follow-ups, be pinned and be shared. */
function conversationCard({ question, sql, warehouse }) {
  return new QueryCard({
    question, sql, warehouse,
    onAsk: ask,
    onCancel: (queryId) => client.cancel(queryId),
    onFinished: finished,
    onPin: (c) => pinDialog({
      card: c, client,
      onPinned: (dashboard) => toast(`Pinned to "${dashboard.title}".`),
    }),
    onShare: (c) => shareDialog({
      card: c, client,
      onShared: (names) => toast(`Shared with ${names.join(", ")}.`),
    }),
  });
}

/** Send the ask for `card` and route its publications to it; resolves once the server named the query. */
function startQuery(request, card) {
  return client.ask(request).then(({ query_id: queryId }) => {
    card.setQueryId(queryId);
    cards.set(queryId, card);
    const buffered = early.get(queryId);
    if (buffered) {
      clearTimeout(buffered.timer);
      early.delete(queryId);
      for (const pub of buffered.pubs) card.handle(pub);
    }
    if (card.finished) finished(card);
    else scheduleHistoryRefresh(); // shows the question as running
  });
}

/** A dashboard widget's query: resolves when it finished (the widget's slot is free again). */
function runQuery(request, card) {
  return new Promise((resolve, reject) => {
    card.onFinished = (c) => {
      finished(c);
      if (c.queryId) cards.delete(c.queryId);
      resolve();
    };
    startQuery(request, card).catch(reject);
  });
}

/** Open an answer someone shared with me as a card in the conversation. */
async function openShared(shared) {
  navigate({ name: "conversation" });
  const card = new QueryCard({
    question: shared.question || null, sql: shared.question ? null : (shared.result && shared.result.sql) || "(shared SQL)",
    warehouse: shared.warehouse,
    onAsk: ask,
    onCancel: () => Promise.resolve(),
    onPin: (c) => pinDialog({ card: c, client, onPinned: (dashboard) => toast(`Pinned to "${dashboard.title}".`) }),
  });
  card.el.classList.add("shared");
  card.el.dataset.sharedBy = (shared.shared_by && shared.shared_by.username) || "";
  card.metaEl.textContent = `shared by ${card.el.dataset.sharedBy || "someone"}${shared.warehouse ? ` · on ${shared.warehouse}` : ""}`;
  card.setQueryId(shared.query_id);
  ui.emptyState.hidden = true;
  ui.conversation.append(card.el);
  scrollToBottom(true);
  try {
    const result = shared.result || await api.queryResult(shared.query_id);
    card.showResult(result.result || result);
  } catch (err) {
    if (!handleApiError(err)) card.failRequest({ code: "not_found", message: `The shared answer could not be opened: ${err.message}` });
  }
}

function routePublication(pub) {
  if (!pub.channel.startsWith("query:")) return;
  const queryId = (pub.data && pub.data.query_id) || pub.channel.slice("query:".length);
  const card = cards.get(queryId);
  if (card) {
    const pinned = nearBottom();
    card.handle(pub);
    if (pinned) scrollToBottom();
    return;
  }
  // The ask reply has not arrived yet: keep the publication until it does (or give up).
  let entry = early.get(queryId);
  if (!entry) {
    entry = { pubs: [], timer: setTimeout(() => early.delete(queryId), EARLY_PUBLICATION_TTL_MS) };
    early.set(queryId, entry);
  }
  entry.pubs.push(pub);
}

function finished(card) {
  if (!card.queryId || card.unsubscribed) return; // ask reply not in yet: called again then
  card.unsubscribed = true;
  if (client) client.unsubscribe(`query:${card.queryId}`);
  scheduleHistoryRefresh();
}

function nearBottom() {
  const c = ui.conversation;
  return c.scrollHeight - c.scrollTop - c.clientHeight < 120;
}

function scrollToBottom(smooth = false) {
  requestAnimationFrame(() => ui.conversation.scrollTo({ top: ui.conversation.scrollHeight, behavior: smooth ? "smooth" : "auto" }));
}

// -- composer ---------------------------------------------------------------------------------

function submitQuestion() {
  const text = ui.input.value.trim();
  if (!text) {
    ui.input.focus();
    return;
  }
  ui.input.value = "";
  autoGrow();
  ask({ question: text });
}

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  submitQuestion();
});

ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submitQuestion();
  }
});

function autoGrow() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 200)}px`;
}
ui.input.addEventListener("input", autoGrow);

// -- history ----------------------------------------------------------------------------------

function scheduleHistoryRefresh() {
  clearTimeout(historyTimer);
  historyTimer = setTimeout(refreshHistory, 300);
}

async function refreshHistory() {
  let queries;
  try {
    queries = await api.history();
  } catch (err) {
    handleApiError(err);
    return;
  }
  ui.historyEmpty.hidden = queries.length > 0;
  replaceChildren(ui.historyList, queries.map(historyItem));
  if (!restored) {
    restored = true;
    restoreConversation(queries);
  }
}

/**
 * After a reload or in a new tab, the conversation comes back: the latest answers whose results
 * the server stored (`has_result` in the history) are shown again as cards, oldest first.
 */
function restoreConversation(queries) {
  if (cards.size || ui.conversation.querySelector("[data-testid=query-card]")) return;
  const latest = queries.filter((q) => q.has_result && q.status === "done").slice(0, RESTORED_ANSWERS).reverse();
  for (const q of latest) {
    const card = conversationCard({ question: q.question || null, sql: q.question ? null : q.sql, warehouse: q.warehouse });
    card.el.dataset.restored = "true";
    card.setQueryId(q.query_id);
    ui.emptyState.hidden = true;
    ui.conversation.append(card.el);
    api.queryResult(q.query_id)
      .then((result) => card.showResult(result.result || result))
      .catch((err) => {
        if (!handleApiError(err)) card.failRequest({ code: "not_found", message: `This earlier answer is gone: ${err.message}` });
      });
  }
  if (latest.length) scrollToBottom();
}

function historyItem(q) {
  const label = q.question || q.sql || "(empty)";
  const meta = [q.status, q.row_count != null && q.status === "done" ? `${Number(q.row_count).toLocaleString()} rows` : null,
    q.warehouse, timeAgo(q.created_at)].filter(Boolean).join(" · ");
  return h("li", {},
    h("button", {
      type: "button", class: `history-item status-${q.status || "unknown"}`, testid: "history-item",
      dataset: { queryId: q.query_id || "" }, title: `Ask again: ${label}`,
      on: { click: () => { closeHistoryOnNarrow(); ask(q.question ? { question: q.question, warehouse: q.warehouse } : { sql: q.sql, warehouse: q.warehouse }); } },
    },
      h("span", { class: `history-text${q.question ? "" : " mono"}` }, label),
      h("span", { class: "history-meta" }, h("span", { class: "status-pip", "aria-hidden": "true" }), meta)));
}

ui.historyRefresh.addEventListener("click", refreshHistory);

ui.historyToggle.addEventListener("click", () => {
  const open = !ui.historyPanel.classList.contains("open");
  ui.historyPanel.classList.toggle("open", open);
  ui.historyToggle.setAttribute("aria-expanded", String(open));
});

function closeHistoryOnNarrow() {
  ui.historyPanel.classList.remove("open");
  ui.historyToggle.setAttribute("aria-expanded", "false");
}

// -- start ------------------------------------------------------------------------------------

/** Start: a token of this tab, else the session cookie (a reload or a new tab), else log in. */
async function start() {
  if (api.session.token) {
    showMain({ restore: true });
    return;
  }
  if (!api.csrfToken()) {
    // No session cookie either (its readable CSRF twin comes and goes with it): no need to
    // ask the server and log a 401.
    api.session.clear();
    showLogin();
    return;
  }
  try {
    const { user } = await api.me();
    api.session.adopt(user);
    showMain({ restore: true });
  } catch (err) {
    if (err.status !== 401) console.warn("livebi: session check", err);
    api.session.clear();
    showLogin();
  }
}

start();
