// One dashboard page: the grid of widgets, moved and resized by pointer and keyboard, titles
// edited inline, every change sent as an `edit` op; other people's changes arrive as
// `dashboard_update` publications and are applied in version order (dashstate.js); presence
// avatars and "editing" outlines; undo; members.
//
// Where the widgets' answers come from depends on the server (`GET /api/dashboards/{id}/live`):
// - live (the default): the server refreshes the dashboard once for every viewer and publishes
//   each widget's refresh as `dashboard_refresh` (docs/live.md); the page shows those
//   (livewidget.js) and never asks a widget's question itself. "Refresh" asks the server.
// - not live (`live_dashboards=false`): each widget runs its question or SQL for this viewer,
//   with its own progress, showing its last result meanwhile (widgetcache.js).

import * as api from "./api.js";
import { h, replaceChildren } from "./dom.js";
import { QueryCard } from "./card.js";
import { DashboardModel, UndoHistory, wireOp } from "./dashstate.js";
import { clampRect, describeRect, dragRect, freeSpot, keyStep, placement, readingOrder, sameRect } from "./grid.js";
import { inlineText } from "./inline.js";
import { PresenceRoster, avatar, colorFor } from "./presence.js";
import { openDialog } from "./dialogs.js";
import { openMembersDialog } from "./members.js";
import { alertAction } from "./alerts.js";
import { resizeFigure } from "./chart.js";
import * as widgetcache from "./widgetcache.js";
import { LiveWidget, ServerClock } from "./livewidget.js";
import { refreshFields, sameRefresh } from "./refreshform.js";

const ROW_HEIGHT_PX = 72; // one grid row; keep in step with --dash-row in style.css
const GAP_PX = 12;
const WIDGET_QUERIES_AT_ONCE = 3; // the server runs 4 questions per user; leave one for the conversation
const GAP_REFETCH_MS = 400;
const NARROW = "(max-width: 700px)";
const TICK_MS = 1000; // "updated N s ago"
// A widget the server said nothing about this long after opening (no latest result kept, and
// its refresh started before this page subscribed): ask the server to refresh it.
const NUDGE_MS = 5000;
const LIVE_STATUS = {
  live: ["live", "Live: the server refreshes these widgets for everyone watching"],
  reconnecting: ["reconnecting…", "The connection dropped: updates resume when it is back"],
  offline: ["offline", "Not connected: the widgets show what came before the connection ended"],
  off: ["not live", "Live dashboards are off on this server: each widget ran its query when you opened the page"],
};

/** Runs at most `limit` widget queries at once; the rest wait their turn. */
class Slots {
  constructor(limit) {
    this.limit = limit;
    this.busy = 0;
    this.waiting = [];
  }

  run(task) {
    return new Promise((resolve, reject) => {
      this.waiting.push({ task, resolve, reject });
      this._next();
    });
  }

  _next() {
    while (this.busy < this.limit && this.waiting.length) {
      const { task, resolve, reject } = this.waiting.shift();
      this.busy += 1;
      Promise.resolve().then(task).then(resolve, reject).finally(() => {
        this.busy -= 1;
        this._next();
      });
    }
  }
}

export class DashboardPage {
  /**
   * @param {object} o
   * @param {string} o.id  the dashboard id
   * @param {import("./client.js").LiveClient} o.client
   * @param {{id: string, username: string}} o.me
   * @param {function(object, QueryCard):Promise} o.runQuery  ask ({question|sql, warehouse, chart})
   *   for a card; resolves when the query finished
   * @param {function(object):void} o.askInConversation  a suggestion chip's question
   * @param {function(string):void} o.onGone  the dashboard was deleted or access lost (message)
   */
  constructor({ id, client, me, runQuery, askInConversation, onGone }) {
    this.id = id;
    this.channel = `dashboard:${id}`;
    this.client = client;
    this.me = me;
    this.runQuery = runQuery;
    this.askInConversation = askInConversation;
    this.onGone = onGone;
    this.model = null;
    this.undo = new UndoHistory();
    this.roster = new PresenceRoster();
    this.widgetViews = new Map(); // widget id -> {el, card, title, rect}
    this.inflight = new Map(); // widget id -> edits in flight (local rect shown meanwhile)
    this.early = []; // publications that arrived before the snapshot
    this.slots = new Slots(WIDGET_QUERIES_AT_ONCE);
    this.live = null; // null until GET …/live answered; then whether the server refreshes widgets
    this.lostWhileMounting = false; // publications were lost before the page had loaded
    this.liveWidgets = new Map(); // widget id -> LiveWidget (live mode; kept across view rebuilds)
    this.clock = new ServerClock();
    this.myEditing = null;
    this.drag = null;
    this.destroyed = false;
    this.el = this._build();
    this._onPublication = (pub) => this._publication(pub);
    this._onRecovery = ({ channel, recovered }) => {
      if (channel !== this.channel) return;
      if (this.live === null) {
        // Still loading: the snapshot being fetched may predate what was lost; mount() starts
        // over once it has what it asked for (refetching now would race with it).
        if (!recovered) this.lostWhileMounting = true;
        return;
      }
      if (!recovered) {
        this.refetch();
        this.reloadLive(); // refreshes published while we were away are lost: the latest are kept
      }
      // A new connection joined afresh: who is here (and what I was editing) must be said again.
      this._loadPresence();
    };
    this._onKey = (event) => this._globalKey(event);
    this._onStatus = (status) => this._renderLiveStatus(status.state);
    // A widget's chart follows its box: resized here, by someone else, or by the window.
    this.resizeObserver = new ResizeObserver((entries) => {
      for (const entry of entries) {
        for (const figure of entry.target.querySelectorAll(".figure.js-plotly-plot")) resizeFigure(figure);
      }
    });
  }

  // -- lifecycle --------------------------------------------------------------------------------

  async mount(container) {
    replaceChildren(container, this.el);
    this.client.on("recovery", this._onRecovery);
    this.client.on("status", this._onStatus);
    document.addEventListener("keydown", this._onKey);
    this.narrowQuery = window.matchMedia(NARROW); // one column: no dragging
    try {
      // Subscribe first and buffer: an edit made between the snapshot and the subscription
      // would otherwise be lost (the buffer is applied by version after the snapshot). The
      // same for refreshes: the latest kept ones come with /live, newer ones are buffered.
      await this.client.subscribe(this.channel, this._onPublication);
      const [snapshot, answer] = await Promise.all([api.getDashboard(this.id), this._fetchLive()]);
      if (this.destroyed) return;
      // No answer (e.g. an older server without live dashboards): run the widgets here, as before.
      const live = answer || { live: false, widgets: {} };
      this.live = live.live === true;
      this.model = new DashboardModel(snapshot);
      this._renderAll();
      if (this.live) this._applyLive(live);
      for (const pub of this.early.splice(0)) this._publication(pub);
      this._renderLiveStatus(this.client.state);
      this._loadPresence();
      if (this.lostWhileMounting) {
        this.lostWhileMounting = false;
        this.refetch();
        this.reloadLive();
      }
    } catch (err) {
      if (this.destroyed) return;
      this._fail(err);
    }
  }

  destroy() {
    this.destroyed = true;
    clearTimeout(this.gapTimer);
    clearTimeout(this.nudgeTimer);
    clearInterval(this.ticker);
    this.client.off("recovery", this._onRecovery);
    this.client.off("status", this._onStatus);
    document.removeEventListener("keydown", this._onKey);
    for (const view of this.widgetViews.values()) if (view.card) view.card.dispose();
    this.widgetViews.clear();
    for (const live of this.liveWidgets.values()) live.dispose();
    this.liveWidgets.clear();
    this.resizeObserver.disconnect();
    this.client.unsubscribe(this.channel);
  }

  _fail(err) {
    const status = err && (err.status || err.code);
    const message = status === 403 || status === "forbidden" ? "You do not have access to this dashboard."
      : status === 404 || status === "not_found" ? "This dashboard does not exist (any more)."
        : `The dashboard could not be loaded: ${(err && err.message) || err}`;
    replaceChildren(this.el, h("div", { class: "dash-empty", testid: "dashboard-error", role: "alert" },
      h("p", {}, message), h("a", { href: "#/dashboards", class: "btn btn-ghost btn-small" }, "All dashboards")));
  }

  // -- building ---------------------------------------------------------------------------------

  _build() {
    this.titleSlot = h("h1", { class: "dash-title" });
    this.descriptionSlot = h("div", { class: "dash-description" });
    this.roleBadge = h("span", { class: "badge", testid: "dashboard-role" });
    this.presenceEl = h("div", { class: "presence", testid: "presence-list", role: "list", "aria-label": "People here" });
    this.undoBtn = h("button", { type: "button", class: "btn btn-ghost btn-small", testid: "undo-button", disabled: true,
      title: "Undo your last change (Ctrl+Z)", on: { click: () => this.undoLast() } }, "Undo");
    this.addBtn = h("button", { type: "button", class: "btn btn-primary btn-small", testid: "add-widget",
      on: { click: () => this._addWidgetDialog() } }, "Add widget");
    this.membersBtn = h("button", { type: "button", class: "btn btn-ghost btn-small", testid: "members-button",
      on: { click: () => this._members() } }, "Members");
    this.liveText = h("span", { class: "live-text" });
    this.liveBadge = h("span", { class: "live-status", testid: "live-status", role: "status", hidden: true },
      h("span", { class: "live-dot", "aria-hidden": "true" }), this.liveText);
    this.refreshAllBtn = h("button", { type: "button", class: "btn btn-ghost btn-small", testid: "refresh-all", hidden: true,
      title: "Refresh every widget now, for everyone watching", on: { click: () => this.refreshNow() } }, "Refresh all");
    this.notice = h("p", { class: "dash-notice", testid: "dashboard-notice", role: "status", hidden: true });
    this.announcer = h("div", { class: "visually-hidden", testid: "grid-announcer", "aria-live": "assertive", "aria-atomic": "true" });
    this.grid = h("div", { class: "dash-grid", testid: "dashboard-grid", role: "list", "aria-label": "Widgets", tabindex: "-1" });
    this.grid.addEventListener("focusout", (event) => {
      if (this.reorderLater && !this.grid.contains(event.relatedTarget)) requestAnimationFrame(() => this._orderDom());
    });
    this.emptyEl = h("p", { class: "dash-empty muted", hidden: true },
      "No widgets yet. Pin an answer from the conversation, or add one here.");
    this.helpEl = h("p", { class: "dash-help muted small", id: `dash-help-${this.id}` },
      "Focus a widget: arrow keys move it, Shift+arrows resize it. Ctrl+Z undoes your last change.");
    return h("section", { class: "dash", testid: "dashboard-page", "aria-labelledby": `dash-title-${this.id}` },
      h("header", { class: "dash-head" },
        h("div", { class: "dash-titles" },
          h("a", { href: "#/dashboards", class: "back-link small" }, "← Dashboards"),
          this.titleSlot, this.descriptionSlot),
        h("div", { class: "dash-side" },
          this.presenceEl,
          h("div", { class: "dash-actions" }, this.liveBadge, this.roleBadge, this.refreshAllBtn, this.undoBtn,
            this.membersBtn, this.addBtn))),
      this.notice, this.announcer, this.helpEl, this.emptyEl, this.grid);
  }

  _renderAll() {
    const model = this.model;
    const d = model.dashboard;
    this.titleSlot.id = `dash-title-${this.id}`;
    this.title = inlineText({
      value: d.title, label: "Dashboard title", editable: model.canEdit, testid: "dashboard-title", maxLength: 200,
      onCommit: (text) => this.edit([{ type: "update_dashboard", fields: { title: text } }], "rename dashboard"),
    });
    this.description = inlineText({
      value: d.description, label: "Dashboard description", placeholder: model.canEdit ? "Add a description" : "",
      editable: model.canEdit, multiline: true, maxLength: 2000, testid: "dashboard-description",
      onCommit: (text) => this.edit([{ type: "update_dashboard", fields: { description: text } }], "describe dashboard"),
    });
    replaceChildren(this.titleSlot, this.title.el);
    replaceChildren(this.descriptionSlot, this.description.el);
    this.roleBadge.textContent = model.role;
    this.addBtn.hidden = !model.canEdit;
    this.helpEl.hidden = !model.canEdit;
    this.grid.classList.toggle("readonly", !model.canEdit);
    document.title = `${d.title} — livebi`;
    for (const view of this.widgetViews.values()) {
      if (view.card) view.card.dispose();
      view.el.remove();
    }
    this.widgetViews.clear();
    for (const widget of model.widgets) this._addWidgetView(widget);
    this._orderDom();
    this._renderPresence();
  }

  _addWidgetView(widget) {
    const canEdit = this.model.canEdit;
    const view = { id: widget.id, widget };
    view.title = inlineText({
      value: widget.title, label: "Widget title", editable: canEdit, testid: "widget-title", className: "widget-title",
      onCommit: (text) => this.edit([{ type: "update_widget", widget_id: view.id, fields: { title: text } }], "rename widget"),
      // Focus inside the widget counts as editing it too (arrow keys move it).
      onEditing: (on) => this._setEditing(on || view.el.contains(document.activeElement) ? view.id : null),
    });
    view.body = h("div", { class: "widget-body" });
    view.badge = h("div", { class: "editing-badge", testid: "editing-badge", hidden: true });
    view.handle = canEdit ? h("span", { class: "drag-handle", "aria-hidden": "true", title: "Drag to move" }, "⠿") : null;
    view.resizer = canEdit ? h("span", { class: "resize-handle", testid: "widget-resize", "aria-hidden": "true", title: "Drag to resize" }) : null;
    view.el = h("article", {
      class: "widget", testid: "widget", tabindex: "0", role: "listitem", dataset: { widgetId: widget.id },
      "aria-roledescription": canEdit ? "movable widget" : "widget", "aria-describedby": canEdit ? `dash-help-${this.id}` : null,
    },
      h("header", { class: "widget-head" }, view.handle, view.title.el,
        h("span", { class: "widget-tools", role: "group", "aria-label": "Widget actions" }, this.widgetActions(view))),
      view.body, view.badge, view.resizer);
    if (canEdit) this._wireWidget(view);
    this.widgetViews.set(widget.id, view);
    this._place(view);
    this.grid.append(view.el);
    this.resizeObserver.observe(view.body);
    if (this.live) this._attachLive(view);
    else this._run(view);
    this.emptyEl.hidden = this.widgetViews.size > 0;
    return view;
  }

  /**
   * The action buttons in a widget's header, in order. Another module adds its own action by
   * pushing one element at the marked line (e.g. alerts.js: "Notify me…").
   */
  widgetActions(view) {
    const canEdit = this.model.canEdit;
    const button = (testid, label, glyph, onClick) => h("button", { type: "button", class: "btn btn-ghost btn-icon widget-btn",
      testid, "aria-label": label, title: label, on: { click: onClick } }, glyph);
    const actions = [
      this.live
        ? button("widget-refresh", "Refresh now (for everyone watching)", "↻", () => this.refreshNow(view.id))
        : button("widget-rerun", "Run again", "↻", () => this._run(view)),
    ];
    if (canEdit) actions.push(button("widget-settings", "Widget settings", "⚙", () => this._widgetSettings(view)));
    // -- more widget actions: push one element here (alerts.js "Notify me…") --
    actions.push(alertAction(this.id, view));
    if (canEdit) actions.push(button("widget-remove", "Remove widget", "×", () => this._remove(view.id)));
    return actions;
  }

  _place(view, rect = null) {
    const r = rect || this._rectOf(view.id);
    view.rect = r;
    const place = placement(r);
    view.el.style.gridColumn = place.gridColumn;
    view.el.style.gridRow = place.gridRow;
    view.el.style.setProperty("--h", String(r.h));
    view.el.setAttribute("aria-label", `${view.widget.title || "Widget"}, ${describeRect(r)}`);
  }

  _rectOf(id) {
    const w = this.model.widget(id) || {};
    return clampRect({ x: w.x, y: w.y, w: w.w, h: w.h });
  }

  /**
   * Keep the one-column layout (CSS `order`) and the Tab order (the DOM) in reading order. The
   * DOM is not reshuffled while a widget has focus: moving a focused node blurs it, which
   * would flicker the "editing" outline others see while someone moves it by keyboard.
   */
  _orderDom() {
    const ordered = readingOrder([...this.widgetViews.values()].map((v) => ({ ...v.rect, view: v })));
    ordered.forEach(({ view }, index) => { view.el.style.order = String(index); });
    if (this.grid.contains(document.activeElement)) {
      this.reorderLater = true;
      return;
    }
    this.reorderLater = false;
    for (const { view } of ordered) if (this.grid.lastElementChild !== view.el) this.grid.append(view.el);
  }

  // -- running widget queries --------------------------------------------------------------------

  _run(view) {
    const w = this.model.widget(view.id);
    if (!w) return;
    if (this.live) {
      // The server runs it again (its question, SQL, warehouse or chart changed): the answer on
      // screen is for the old one.
      if (view.live && hasQuery(w)) view.live.expectNew();
      else if (view.live) view.live.empty();
      return;
    }
    if (view.card) view.card.dispose();
    this._dropLast(view);
    const ask = w.sql && !w.question ? { sql: w.sql } : { question: w.question || w.sql };
    const request = { ...ask, warehouse: w.warehouse || undefined, chart: (w.chart && w.chart.type) || undefined };
    const card = new QueryCard({
      ...request, compact: true,
      onAsk: (next) => this.askInConversation(next),
      onCancel: (queryId) => this.client.cancel(queryId),
    });
    view.card = card;
    card.detailsEl.textContent = "Waiting for a free query slot…";
    replaceChildren(view.body, card.el);
    if (!request.question && !request.sql) {
      card.failRequest({ code: "empty", message: "This widget has no question or SQL yet." });
      return;
    }
    const entry = { userId: this.me.id, dashboardId: this.id, widgetId: view.id, query: queryOf(w) };
    this._showLast(view, card, request, entry);
    this.slots.run(() => (this.destroyed || view.card !== card ? null : this.runQuery(request, card)))
      .then(() => {
        if (card.state === "done" && card.queryId) widgetcache.remember({ ...entry, queryId: card.queryId });
      })
      .catch((err) => card.failRequest(err))
      .finally(() => { if (view.card === card) this._dropLast(view); });
  }

  /**
   * While the widget runs again, show the result of its last successful run (remembered by
   * query id for this version of the widget, fetched from the server), marked as such; the
   * new run's answer replaces it. No stored result (404): the widget just waits for the run.
   */
  _showLast(view, card, request, entry) {
    const queryId = widgetcache.lastQueryId(entry);
    if (!queryId) return;
    api.queryResult(queryId).then((stored) => {
      if (this.destroyed || view.card !== card || card.finished) return;
      const last = new QueryCard({
        ...request, compact: true,
        onAsk: (next) => this.askInConversation(next), onCancel: () => Promise.resolve(),
      });
      last.el.dataset.testid = "widget-last-query"; // not the live card tests and tools look for
      last.setQueryId(queryId);
      view.lastCard = last;
      view.lastEl = h("div", { class: "widget-last", testid: "widget-last-result", dataset: { queryId } },
        h("p", { class: "widget-last-marker", testid: "widget-last-marker", role: "status" }, "Last result, refreshing…"),
        last.el);
      view.body.classList.add("refreshing");
      view.body.append(view.lastEl);
      last.showResult(stored.result || stored); // in the document now: the chart can measure itself
    }).catch((err) => {
      if (err && err.status === 404) widgetcache.forget(entry); // gone (e.g. expired): wait for the run
      else console.warn("livebi: the widget's last result could not be loaded", err);
    });
  }

  // -- live dashboards: what the server publishes ---------------------------------------------------

  /** `GET …/live`, or null when it could not be had (the snapshot request reports refusals). */
  async _fetchLive() {
    try {
      return await api.dashboardLive(this.id);
    } catch (err) {
      if (!(err && (err.status === 403 || err.status === 404))) console.warn("livebi: live state unavailable", err);
      return null;
    }
  }

  /** Show the widget's live state in its body (the same LiveWidget across view rebuilds). */
  _attachLive(view) {
    const w = this.model.widget(view.id) || view.widget;
    let live = this.liveWidgets.get(view.id);
    if (!live) {
      live = new LiveWidget({ clock: this.clock, onAsk: (next) => this.askInConversation(next) });
      this.liveWidgets.set(view.id, live);
      if (!hasQuery(w)) live.empty();
    }
    view.live = live;
    live.setSchedule(w.refresh);
    replaceChildren(view.body, live.el);
  }

  /** A `/live` answer: each widget's latest result, then the ticking clock. */
  _applyLive(answer) {
    for (const [widgetId, refresh] of Object.entries(answer.widgets || {})) {
      const live = this.liveWidgets.get(widgetId);
      if (live && refresh) live.apply(refresh);
    }
    clearInterval(this.ticker);
    this.ticker = setInterval(() => {
      for (const live of this.liveWidgets.values()) live.tick();
    }, TICK_MS);
    clearTimeout(this.nudgeTimer);
    this.nudgeTimer = setTimeout(() => this._nudge(), NUDGE_MS);
  }

  /** After a reconnect that lost publications: the latest results again (or a changed mode). */
  async reloadLive() {
    if (this.destroyed || this.live === null) return;
    const answer = await this._fetchLive();
    if (this.destroyed || !this.model || !answer) return; // unreachable now: keep what is shown
    if ((answer.live === true) !== this.live) {
      this.live = answer.live === true; // the server was restarted with the other setting
      if (!this.live) {
        clearInterval(this.ticker);
        clearTimeout(this.nudgeTimer);
        for (const live of this.liveWidgets.values()) live.dispose();
        this.liveWidgets.clear();
      }
      this._renderAll();
      this._renderLiveStatus(this.client.state);
      if (!this.live) return;
    } else {
      for (const live of this.liveWidgets.values()) live.forgetRunning();
    }
    if (this.live) this._applyLive(answer);
  }

  /** One `dashboard_refresh` publication. */
  _refreshed(data) {
    if (!this.live) return;
    if (data.timestamp) this.clock.observe(data.timestamp);
    const live = this.liveWidgets.get(data.widget_id);
    if (live) live.apply(data);
  }

  /** Ask the server to refresh widgets it has said nothing about since the page opened. */
  _nudge() {
    if (this.destroyed || !this.live || !this.model) return;
    for (const w of this.model.widgets) {
      const live = this.liveWidgets.get(w.id);
      if (live && !live.heard && hasQuery(w)) this.refreshNow(w.id, { quiet: true });
    }
  }

  /** The `refresh` op: one widget, or all of them (`widgetId` omitted). */
  async refreshNow(widgetId = null, { quiet = false } = {}) {
    if (!this.live) return;
    try {
      await this.client.request("refresh", widgetId ? { dashboard_id: this.id, widget_id: widgetId } : { dashboard_id: this.id });
    } catch (err) {
      if (quiet) console.warn("livebi: refresh", err);
      else this.say(`Not refreshed: ${err.message}`, { error: true });
    }
  }

  _renderLiveStatus(state) {
    if (this.live === null) return;
    const key = !this.live ? "off" : state === "connected" ? "live" : state === "offline" ? "offline" : "reconnecting";
    const [text, title] = LIVE_STATUS[key];
    this.liveBadge.hidden = false;
    this.liveBadge.dataset.state = key;
    this.liveBadge.title = title;
    this.liveText.textContent = text;
    this.refreshAllBtn.hidden = !this.live;
    this.refreshAllBtn.disabled = key !== "live";
  }

  /** Remove the last result shown while refreshing (the live card has the answer now). */
  _dropLast(view) {
    if (!view.lastEl) return;
    view.lastCard.dispose();
    view.lastEl.remove();
    view.lastEl = null;
    view.lastCard = null;
    view.body.classList.remove("refreshing");
    // The live card's chart was drawn beside the last result: let it take the whole box now.
    const figure = view.body.querySelector(".figure.js-plotly-plot");
    if (figure) resizeFigure(figure);
  }

  // -- edits --------------------------------------------------------------------------------------

  /**
   * Send ops as one `edit` and apply the reply (the publications of the same versions are then
   * ignored as duplicates). Records the edit for undo unless `record` is false.
   */
  async edit(ops, label = "edit", { record = true, widgets = [] } = {}) {
    if (!this.model || !this.model.canEdit) return null;
    for (const id of widgets) this.inflight.set(id, (this.inflight.get(id) || 0) + 1);
    try {
      const reply = await this.client.request("edit", { dashboard_id: this.id, ops: ops.map(wireOp) });
      const applied = (reply.applied || []).map((a) => ({
        ...a, dashboard_id: this.id, user_id: this.me.id, timestamp: Date.now() / 1000,
      }));
      for (const update of applied) this._receive(update, { fromReply: true });
      if (record) this.undo.record(applied.map((a) => a.version), label);
      this._updateUndo();
      return reply;
    } catch (err) {
      this.say(`Not saved: ${err.message}`, { error: true });
      if (err.code === "forbidden") this.refetch();
      throw err;
    } finally {
      for (const id of widgets) {
        const left = (this.inflight.get(id) || 1) - 1;
        if (left > 0) this.inflight.set(id, left);
        else {
          this.inflight.delete(id);
          const view = this.widgetViews.get(id);
          if (view && this.model.widget(id) && !(this.drag && this.drag.view === view)) {
            this._place(view);
            this._orderDom();
          }
        }
      }
    }
  }

  async undoLast() {
    if (!this.model) return;
    const plan = this.undo.plan(this.model, this.me.id, (userId) => this._nameOf(userId));
    if (!plan) {
      this.say("Nothing of yours to undo.");
      return;
    }
    if (plan.conflict) {
      this.undo.drop(plan.entry);
      this._updateUndo();
      this.say(plan.conflict, { error: true });
      return;
    }
    try {
      const reply = await this.edit(plan.ops, "undo", { record: false });
      this.undo.done(plan.entry, plan.ops, reply || {});
      this.say(`Undone: ${plan.entry.label}.`);
    } catch {
      this.undo.drop(plan.entry); // e.g. the widget was removed meanwhile: the error was shown
    }
    this._updateUndo();
  }

  _updateUndo() {
    this.undoBtn.disabled = this.undo.size === 0;
  }

  _nameOf(userId) {
    const person = this.roster.people().find((p) => p.userId === userId);
    if (person) return person.username;
    const member = (this.members || []).find((m) => m.user && m.user.id === userId);
    return member ? member.user.username : "someone else";
  }

  say(message, { error = false } = {}) {
    this.notice.textContent = message;
    this.notice.hidden = !message;
    this.notice.classList.toggle("error", error);
    clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => { this.notice.hidden = true; }, error ? 8000 : 4000);
  }

  _remove(id) {
    this.edit([{ type: "remove_widget", widget_id: id }], "remove widget").catch(() => {});
  }

  _addWidgetDialog() {
    const { title, question, sql, fields } = widgetFields("new-widget");
    const refresh = refreshFields(undefined, { live: this.live !== false });
    openDialog({
      title: "Add a widget", testid: "add-widget-dialog",
      body: [fields, refresh.el],
      actions: [{ label: "Add", primary: true, submit: true, testid: "new-widget-submit", onClick: async () => {
        const q = question.value.trim();
        const s = sql.value.trim();
        if (!q && !s) throw new Error("Give a question or SQL.");
        const settings = refresh.read();
        if (!this.model) throw new Error("The dashboard is still loading; try again in a moment.");
        const spot = freeSpot(this.model.widgets);
        await this.edit([{ type: "add_widget", widget: {
          title: title.value.trim() || q || "SQL", question: q || null, sql: s || null,
          warehouse: null, chart: { type: null, settings: {} }, refresh: settings, ...spot,
        } }], "add widget");
      } }],
    });
    title.focus();
  }

  /** The widget editor: its title, question or SQL, and refresh settings (one update_widget). */
  _widgetSettings(view) {
    const w = this.model && this.model.widget(view.id);
    if (!w) return;
    const { title, question, sql, fields } = widgetFields("widget-settings", w);
    const refresh = refreshFields(w.refresh, { live: this.live !== false });
    openDialog({
      title: "Widget settings", testid: "widget-settings-dialog",
      body: [fields, refresh.el],
      actions: [{ label: "Save", primary: true, submit: true, testid: "widget-settings-submit", onClick: async () => {
        const now = this.model.widget(view.id);
        if (!now) throw new Error("This widget was removed meanwhile.");
        const changed = {};
        const t = title.value.trim();
        if (!t) throw new Error("Give the widget a title.");
        const q = question.value.trim() || null;
        const s = sql.value.trim() || null;
        if (!q && !s) throw new Error("Give a question or SQL.");
        const settings = refresh.read();
        if (t !== now.title) changed.title = t;
        if (q !== (now.question || null)) changed.question = q;
        if (s !== (now.sql || null)) changed.sql = s;
        if (!sameRefresh(settings, now.refresh)) changed.refresh = settings;
        if (!Object.keys(changed).length) return;
        await this.edit([{ type: "update_widget", widget_id: view.id, fields: changed }], "edit widget");
      } }],
    });
    title.focus();
  }

  // -- incoming ---------------------------------------------------------------------------------

  _publication(pub) {
    if (pub.channel !== this.channel) return;
    if (!this.model) {
      this.early.push(pub);
      return;
    }
    if (pub.type === "presence") {
      this.roster.apply(pub.data || {});
      this._renderPresence();
    } else if (pub.type === "dashboard_update") {
      this._receive(pub.data || {});
    } else if (pub.type === "dashboard_refresh") {
      this._refreshed(pub.data || {});
    }
  }

  _receive(update, { fromReply = false } = {}) {
    const { applied, gap } = this.model.receive(update);
    for (const u of applied) this._render(u, { mine: fromReply || u.user_id === this.me.id });
    clearTimeout(this.gapTimer);
    // A missing version: it may still be on its way (a reply and a publication race); if it
    // has not come shortly, the snapshot is the truth.
    if (gap) this.gapTimer = setTimeout(() => this.refetch(), GAP_REFETCH_MS);
  }

  async refetch() {
    if (this.destroyed || this.refetching) return;
    this.refetching = true;
    try {
      const snapshot = await api.getDashboard(this.id);
      if (this.destroyed) return;
      const before = new Map(this.model ? this.model.widgets.map((w) => [w.id, JSON.stringify(queryOf(w))]) : []);
      const roleBefore = this.model && this.model.role;
      if (!this.model) this.model = new DashboardModel(snapshot);
      else this.model.reset(snapshot);
      if (roleBefore !== this.model.role) {
        this._renderAll(); // editing rights changed: rebuild the controls
        return;
      }
      this._syncWidgets(before);
    } catch (err) {
      if (err && (err.status === 403 || err.status === 404)) this.onGone(err.status === 404
        ? "The dashboard was deleted." : "You no longer have access to that dashboard.");
      else this.say(`Could not refresh the dashboard: ${err.message}`, { error: true });
    } finally {
      this.refetching = false;
    }
  }

  /** After a snapshot: add, remove, re-place and re-run widgets to match the model. */
  _syncWidgets(queriesBefore) {
    const d = this.model.dashboard;
    this.title.set(d.title);
    this.description.set(d.description);
    const ids = new Set(this.model.widgets.map((w) => w.id));
    for (const [id, view] of this.widgetViews) {
      if (!ids.has(id)) this._dropView(id);
      else {
        view.widget = this.model.widget(id);
        view.title.set(view.widget.title);
        this._place(view);
        if (view.live) view.live.setSchedule(view.widget.refresh);
        if (queriesBefore.get(id) !== JSON.stringify(queryOf(view.widget))) this._run(view);
      }
    }
    for (const w of this.model.widgets) if (!this.widgetViews.has(w.id)) this._addWidgetView(w);
    this._orderDom();
  }

  _dropView(id) {
    const view = this.widgetViews.get(id);
    if (!view) return;
    if (view.card) view.card.dispose();
    this._dropLast(view);
    const live = this.liveWidgets.get(id);
    if (live) live.dispose();
    this.liveWidgets.delete(id);
    widgetcache.forget({ userId: this.me.id, dashboardId: this.id, widgetId: id });
    this.resizeObserver.unobserve(view.body);
    const hadFocus = view.el.contains(document.activeElement);
    view.el.remove();
    this.widgetViews.delete(id);
    this.emptyEl.hidden = this.widgetViews.size > 0;
    if (hadFocus) this.grid.focus();
    if (this.myEditing === id) this._setEditing(null);
  }

  /** Show one applied update. */
  _render(update, { mine }) {
    const data = update.data || {};
    const type = update.update_type;
    if (type === "add_widget") {
      const widget = this.model.widget(data.id);
      if (widget && !this.widgetViews.has(widget.id)) {
        const view = this._addWidgetView(widget);
        this._orderDom();
        if (mine) view.el.focus();
      }
    } else if (type === "remove_widget") {
      this._dropView(data.widget_id);
      if (!mine) this.say(`${this._nameOf(update.user_id)} removed a widget.`);
    } else if (["move_widget", "resize_widget", "update_widget"].includes(type)) {
      const view = this.widgetViews.get(data.widget_id);
      const widget = this.model.widget(data.widget_id);
      if (!view || !widget) return;
      view.widget = widget;
      // While I drag it or my own moves are in flight, my local position stays on screen.
      const busy = (this.drag && this.drag.view === view) || this.inflight.has(view.id);
      if (!busy) {
        this._place(view);
        this._orderDom();
      }
      if ("title" in data) view.title.set(widget.title);
      if ("refresh" in data && view.live) view.live.setSchedule(widget.refresh);
      if (["question", "sql", "warehouse", "chart"].some((k) => k in data)) this._run(view);
      if (!mine && (type !== "update_widget" || "title" in data)) flash(view.el);
    } else if (type === "update_dashboard") {
      const d = this.model.dashboard;
      if ("title" in data) {
        this.title.set(d.title);
        document.title = `${d.title} — livebi`;
      }
      if ("description" in data) this.description.set(d.description);
    } else if (type === "members" || type === "sharing") {
      this.members = Array.isArray(data.members) ? data.members : this.members;
      this.refetch(); // my own role may have changed
      if (this.membersDialog) this.membersDialog.refresh();
    } else if (type === "deleted") {
      this.onGone(`"${this.model.dashboard.title}" was deleted by its owner.`);
    }
  }

  // -- presence ---------------------------------------------------------------------------------

  async _loadPresence() {
    try {
      const reply = await this.client.request("presence", { channel: this.channel, state: this._presenceState() });
      this.roster.reset(reply.members || [], reply);
      this._renderPresence();
    } catch (err) {
      // Lost with the connection: the next connection's recovery asks again (_onRecovery).
      if (err && err.code === "disconnected") return;
      console.warn("livebi: presence unavailable", err);
    }
  }

  _presenceState() {
    return { editing: this.myEditing, color: colorFor(this.me.id) };
  }

  /** Tell the others which widget I am editing (null: none). */
  _setEditing(widgetId) {
    if (this.myEditing === widgetId || this.destroyed) return;
    this.myEditing = widgetId;
    this.client.request("presence", { channel: this.channel, state: this._presenceState() })
      .then((reply) => {
        if (reply && reply.members) {
          this.roster.reset(reply.members, reply);
          this._renderPresence();
        }
      })
      .catch((err) => {
        // Lost with the connection: the recovery's presence request says it again.
        if (!(err && err.code === "disconnected")) console.warn("livebi: presence update failed", err);
      });
  }

  _renderPresence() {
    const people = this.roster.people();
    replaceChildren(this.presenceEl, this.roster.countsOnly
      ? [h("span", { class: "presence-count", testid: "presence-count", role: "listitem" }, `${this.roster.count} here`)]
      : people.map((p) => avatar({ ...p, you: p.userId === this.me.id, editing: Boolean(p.editing) })));
    const editors = this.roster.editors(this.me.id);
    for (const view of this.widgetViews.values()) {
      const list = editors.get(view.id) || [];
      const first = list[0];
      view.el.classList.toggle("being-edited", Boolean(first));
      if (first) {
        view.el.style.setProperty("--editor-color", first.color);
        view.badge.style.setProperty("--editor-color", first.color);
        view.badge.textContent = `${list.map((p) => p.username).join(", ")} editing`;
        view.el.dataset.editingBy = list.map((p) => p.username).join(",");
      } else {
        view.el.style.removeProperty("--editor-color");
        delete view.el.dataset.editingBy;
      }
      view.badge.hidden = !first;
    }
  }

  // -- moving and resizing ----------------------------------------------------------------------

  _wireWidget(view) {
    const el = view.el;
    el.addEventListener("keydown", (event) => this._widgetKey(event, view));
    el.addEventListener("focusin", () => this._setEditing(view.id));
    el.addEventListener("focusout", (event) => {
      if (!el.contains(event.relatedTarget) && !view.title.editing()) this._setEditing(null);
    });
    view.handle.addEventListener("pointerdown", (event) => this._dragStart(event, view, "move"));
    view.resizer.addEventListener("pointerdown", (event) => this._dragStart(event, view, "resize"));
    el.querySelector(".widget-head").addEventListener("pointerdown", (event) => {
      if (event.target.closest("button, input, textarea")) return;
      this._dragStart(event, view, "move");
    });
  }

  _widgetKey(event, view) {
    if (event.target !== view.el || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "Delete") {
      event.preventDefault();
      this._remove(view.id);
      return;
    }
    const resize = event.shiftKey;
    const next = keyStep(view.rect, event.key, { resize });
    if (!event.key.startsWith("Arrow")) return;
    event.preventDefault();
    const name = view.widget.title || "Widget";
    if (!next) {
      this.announce(`${name} cannot ${resize ? "grow or shrink" : "move"} further that way.`);
      return;
    }
    this._commitRect(view, next);
    this.announce(`${resize ? "Resized" : "Moved"} ${name}: ${describeRect(next)}.`);
  }

  /** Show `rect` at once and send the op(s) that make it so. */
  _commitRect(view, rect) {
    const before = view.rect;
    if (sameRect(before, rect)) return;
    const ops = [];
    if (rect.x !== before.x || rect.y !== before.y) ops.push({ type: "move_widget", widget_id: view.id, x: rect.x, y: rect.y });
    if (rect.w !== before.w || rect.h !== before.h) ops.push({ type: "resize_widget", widget_id: view.id, w: rect.w, h: rect.h });
    this._place(view, rect);
    this._orderDom();
    const label = ops.length === 2 ? "move and resize widget" : ops[0].type === "move_widget" ? "move widget" : "resize widget";
    this.edit(ops, label, { widgets: [view.id] }).catch(() => {});
  }

  announce(text) {
    // Clear first so the same words twice are read twice.
    this.announcer.textContent = "";
    requestAnimationFrame(() => { this.announcer.textContent = text; });
  }

  _dragStart(event, view, mode) {
    if (event.button !== 0 || this.narrowQuery.matches || this.drag) return;
    event.preventDefault();
    const box = this.grid.getBoundingClientRect();
    const cellWidth = (box.width + GAP_PX) / 12;
    const cellHeight = ROW_HEIGHT_PX + GAP_PX;
    const target = event.currentTarget;
    target.setPointerCapture(event.pointerId);
    this.drag = { view, mode, start: view.rect, x0: event.clientX, y0: event.clientY, cellWidth, cellHeight, rect: view.rect, target };
    view.el.classList.add("dragging");
    this._setEditing(view.id);
    const move = (e) => {
      if (!this.drag || e.pointerId !== event.pointerId) return;
      const rect = dragRect(this.drag.start, { dx: e.clientX - this.drag.x0, dy: e.clientY - this.drag.y0, cellWidth, cellHeight, mode });
      if (!sameRect(rect, this.drag.rect)) {
        this.drag.rect = rect;
        this._place(view, rect);
      }
    };
    const end = (e) => {
      if (!this.drag || e.pointerId !== event.pointerId) return;
      target.removeEventListener("pointermove", move);
      target.removeEventListener("pointerup", end);
      target.removeEventListener("pointercancel", end);
      const { start, rect } = this.drag;
      this.drag = null;
      view.el.classList.remove("dragging");
      if (e.type === "pointercancel") this._place(view, start);
      else if (!sameRect(start, rect)) {
        view.rect = start; // _commitRect diffs against where it was
        this._commitRect(view, rect);
        this.announce(`${mode === "resize" ? "Resized" : "Moved"} ${view.widget.title || "widget"}: ${describeRect(rect)}.`);
      }
      if (!view.el.contains(document.activeElement)) this._setEditing(null);
    };
    target.addEventListener("pointermove", move);
    target.addEventListener("pointerup", end);
    target.addEventListener("pointercancel", end);
  }

  _globalKey(event) {
    if (!(event.ctrlKey || event.metaKey) || event.altKey || event.shiftKey || event.key.toLowerCase() !== "z") return;
    if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable=true], dialog")) return;
    if (!this.model || !this.model.canEdit) return;
    event.preventDefault();
    this.undoLast();
  }

  // -- members ----------------------------------------------------------------------------------

  async _members() {
    this.membersDialog = openMembersDialog({
      dashboard: this.model.dashboard, isOwner: this.model.role === "owner",
      onChange: (members) => { this.members = members; },
    });
    await this.membersDialog.closed;
    this.membersDialog = null;
  }
}

/** The title, question and SQL inputs of the widget dialogs (test ids `<prefix>-title`, …). */
function widgetFields(prefix, w = {}) {
  const title = h("input", { class: "text-input", testid: `${prefix}-title`, maxlength: "200", required: true,
    "aria-label": "Title", value: w.title || "" });
  const question = h("textarea", { class: "text-input", testid: `${prefix}-question`, maxlength: "500", rows: "2",
    "aria-label": "Question", value: w.question || "" });
  const sql = h("textarea", { class: "text-input mono", testid: `${prefix}-sql`, maxlength: "20000", rows: "3",
    "aria-label": "SQL", value: w.sql || "" });
  const fields = [["Title", title], ["Question", question], ["…or SQL", sql]]
    .map(([label, input]) => h("label", { class: "field" }, h("span", {}, label), input));
  return { title, question, sql, fields };
}

function hasQuery(w) {
  return Boolean(w && (String(w.question || "").trim() || String(w.sql || "").trim()));
}

function queryOf(w) {
  return { question: w.question, sql: w.sql, warehouse: w.warehouse, chart: w.chart };
}

function flash(el) {
  el.classList.remove("flash");
  void el.offsetWidth; // restart the animation
  el.classList.add("flash");
}
