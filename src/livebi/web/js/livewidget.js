// A dashboard widget on a live dashboard: it shows what the server publishes for it
// (`dashboard_refresh` on `dashboard:<id>`, docs/live.md) instead of asking its question itself.
// Its latest result, a thin progress bar while the server refreshes it, what changed in the
// last refresh (highlighted for a few seconds and said in words), its last-updated time
// (ticking), and a failed refresh's error with the last good result kept on screen, marked stale.
//
// The pure parts (what changed between two results, age texts, the server clock) are exported
// for the module tests.

import { h, replaceChildren } from "./dom.js";
import { QueryCard, stageLabel } from "./card.js";
import { hasFigure, isKpi } from "./chart.js";

/** How long a change stays highlighted (the words saying what changed stay until the next one). */
export const HIGHLIGHT_MS = 3000;
/** Longest wait for a new chart to be drawn before it replaces the shown one anyway. */
const DRAW_WAIT_MS = 2000;

// -- pure helpers ---------------------------------------------------------------------------------

const same = (a, b) => a === b || JSON.stringify(a) === JSON.stringify(b);

/**
 * What changed from result `before` to result `after` (both `result`-shaped: `columns`,
 * `column_kinds`, `rows`, `chart`). Rows are matched by their non-numeric columns (the
 * dimensions: "EMEA" stays "EMEA" when its revenue moves), or by position when every column is
 * numeric. Returns `{first, columnsChanged, kpi: {was, now}|null, cells: [{row, col, was}],
 * added: [row index], removed: count, any}`; row indexes are into `after.rows`.
 */
export function resultChanges(before, after) {
  const out = { first: !before, columnsChanged: false, kpi: null, cells: [], added: [], removed: 0, any: false };
  if (!before || !after) return { ...out, any: Boolean(after) };
  const kpiBefore = kpiText(before);
  const kpiAfter = kpiText(after);
  if (kpiAfter !== null && kpiBefore !== kpiAfter) out.kpi = { was: kpiBefore, now: kpiAfter };
  const columns = after.columns || [];
  if (!same(before.columns || [], columns)) {
    out.columnsChanged = true;
    out.any = true;
    return out;
  }
  const kinds = after.column_kinds || [];
  const dims = columns.map((_, i) => kinds[i] !== "number");
  const keyed = dims.some(Boolean) && !dims.every(Boolean) ? dims : null;
  const keys = (rows) => {
    const seen = new Map();
    return rows.map((row, index) => {
      const base = keyed ? JSON.stringify(row.filter((_, i) => keyed[i])) : `#${index}`;
      const n = (seen.get(base) || 0) + 1;
      seen.set(base, n);
      return n === 1 ? base : `${base}#${n}`; // duplicate dimensions: the nth matches the nth
    });
  };
  const oldRows = before.rows || [];
  const oldByKey = new Map(keys(oldRows).map((key, i) => [key, oldRows[i]]));
  const matched = new Set();
  const newRows = after.rows || [];
  keys(newRows).forEach((key, row) => {
    const old = oldByKey.get(key);
    if (!old) {
      out.added.push(row);
      return;
    }
    matched.add(key);
    newRows[row].forEach((value, col) => {
      if (!same(old[col], value)) out.cells.push({ row, col, was: old[col] });
    });
  });
  out.removed = oldByKey.size - matched.size;
  out.any = Boolean(out.kpi || out.cells.length || out.added.length || out.removed);
  return out;
}

function kpiText(result) {
  const chart = result && result.chart;
  if (!isKpi(chart)) return null;
  const kpi = chart.kpi;
  return String(kpi.formatted ?? kpi.value ?? "");
}

/** Words for a `resultChanges` outcome: "value was 1,234", "3 values changed, 1 new row". */
export function changeSummary(changes) {
  if (!changes || changes.first || !changes.any) return "";
  if (changes.kpi) return changes.kpi.was ? `value was ${changes.kpi.was}` : "value changed";
  if (changes.columnsChanged) return "new columns";
  const parts = [];
  const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;
  if (changes.cells.length) parts.push(`${plural(changes.cells.length, "value", "values")} changed`);
  if (changes.added.length) parts.push(plural(changes.added.length, "new row", "new rows"));
  if (changes.removed) parts.push(`${plural(changes.removed, "row", "rows")} removed`);
  return parts.join(", ");
}

/**
 * Order of two ISO timestamps (negative: `a` first). Date.parse keeps milliseconds; the server
 * writes microseconds, compared as text when the milliseconds are equal.
 */
export function timeOrder(a, b) {
  const diff = Date.parse(a) - Date.parse(b);
  if (diff) return diff;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** "just now", "12 s ago", "3 min ago", "2 h ago", then the date; `ms` is the age. */
export function ageText(ms) {
  const seconds = Math.floor(Math.max(0, ms) / 1000);
  if (seconds < 1) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

/**
 * The server's clock as seen from here: ages are counted from server timestamps, so a browser
 * whose clock is off would say "updated 40 s ago" for a result that just came. Each live
 * publication's delay (receipt minus its timestamp) is noted; the smallest of the recent ones
 * is the clock offset plus the network's best case. Offsets within `toleranceMs` (ordinary
 * latency) are taken as zero.
 */
export class ServerClock {
  constructor({ kept = 20, toleranceMs = 1500, now = () => Date.now() } = {}) {
    this.kept = kept;
    this.toleranceMs = toleranceMs;
    this.now = now;
    this.delays = [];
  }

  /** A publication stamped `iso` arrived now. */
  observe(iso) {
    const at = Date.parse(iso);
    if (Number.isNaN(at)) return;
    this.delays.push(this.now() - at);
    if (this.delays.length > this.kept) this.delays.shift();
  }

  get offsetMs() {
    if (!this.delays.length) return 0;
    const least = Math.min(...this.delays);
    return least < 0 || least > this.toleranceMs ? least : 0;
  }

  /** How old something stamped `iso` (server time) is, in ms (never negative). */
  age(iso) {
    const at = Date.parse(iso);
    return Number.isNaN(at) ? 0 : Math.max(0, this.now() - this.offsetMs - at);
  }
}

// -- the widget ----------------------------------------------------------------------------------

export class LiveWidget {
  /**
   * @param {object} o
   * @param {ServerClock} o.clock
   * @param {function(object):void} o.onAsk  a suggestion chip / "Run SQL" in the result (asks in
   *   the conversation: the user's own question, not the widget's refresh)
   */
  constructor({ clock, onAsk }) {
    this.clock = clock;
    this.onAsk = onAsk;
    this.card = null; // the result (or first error) on screen
    this.incoming = null; // a new result being drawn behind it
    this.result = null; // the data of the latest result (on screen, or waiting for focus to leave)
    this.shown = null; // the data of the result on screen
    this.deferred = null; // a result held back while the viewer works in the widget
    this.shownAt = null; // ISO timestamp of the latest applied done / failed / unchanged
    this.updatedAt = null; // ISO timestamp the shown result was last confirmed current
    this.failedAt = null;
    this.runningAt = null;
    this.renders = 0;
    this.highlightTimer = null;

    this.barFill = h("div", { class: "bar-fill" });
    this.progressEl = h("div", {
      class: "widget-progress bar", testid: "widget-progress", role: "progressbar", hidden: true,
      "aria-label": "Refreshing", "aria-valuemin": "0", "aria-valuemax": "100",
    }, this.barFill);
    this.errorEl = h("div", { class: "widget-error", testid: "widget-error", hidden: true });
    this.stack = h("div", { class: "widget-stack" });
    this.timeEl = h("time", { class: "widget-updated", testid: "widget-updated" });
    this.stateEl = h("span", { class: "widget-state", testid: "widget-state" });
    this.changeEl = h("span", { class: "widget-change", testid: "widget-change" });
    this.scheduleEl = h("span", { class: "widget-schedule", testid: "widget-schedule" });
    this.foot = h("footer", { class: "widget-foot small" }, this.timeEl, this.stateEl, this.changeEl, this.scheduleEl);
    this.el = h("div", { class: "live-widget", testid: "live-widget", dataset: { state: "waiting", renders: "0" } },
      this.progressEl, this.errorEl, this.stack, this.foot);
    this.waiting();
  }

  /** Nothing to show yet: the server's first refresh is on its way. */
  waiting(text = "Waiting for the server's refresh…") {
    this._drop();
    this.result = this.shown = this.deferred = null;
    this.shownAt = this.updatedAt = this.failedAt = null;
    replaceChildren(this.stack, h("p", { class: "widget-waiting muted small", testid: "widget-waiting" }, text));
    this.errorEl.hidden = true;
    this.changeEl.textContent = "";
    this._setState("waiting");
    this.tick();
  }

  /** The widget has no question or SQL: nothing will ever be published for it. */
  empty() {
    this.waiting("This widget has no question or SQL yet.");
    this._setState("empty");
  }

  /** The widget's question, SQL, warehouse or chart changed: the shown answer is for the old one. */
  expectNew() {
    this.waiting();
  }

  /** Show `refresh` settings as words in the footer. */
  setSchedule(refresh) {
    const r = refresh || {};
    const parts = [];
    if (r.interval_s) parts.push(`every ${intervalText(r.interval_s)}`);
    if (r.on_data_change) parts.push("on data change");
    this.scheduleEl.textContent = parts.join(" · ");
    this.scheduleEl.title = parts.length ? `Refreshes ${parts.join(" and ")} while someone watches` : "";
  }

  /** Did this widget see anything from the server since it was (re)set? */
  get heard() {
    return Boolean(this.shownAt || this.runningAt);
  }

  /**
   * Apply one `dashboard_refresh` (a publication's data, or a `/live` snapshot entry). Anything
   * older than what is shown is ignored (a snapshot and the publications race on opening).
   * Returns true when it was applied.
   */
  apply(refresh) {
    const at = refresh.timestamp || "";
    if (refresh.state === "running") {
      if (this.shownAt && timeOrder(at, this.shownAt) < 0) return false;
      this.runningAt = at;
      this._showProgress(refresh.progress);
      return true;
    }
    if (this.shownAt && timeOrder(at, this.shownAt) <= 0) return false;
    this.shownAt = at;
    if (this.runningAt && timeOrder(this.runningAt, at) <= 0) this._hideProgress();
    if (refresh.state === "done" && refresh.data) this._done(refresh.data, at);
    else if (refresh.state === "unchanged") this._unchanged(at);
    else if (refresh.state === "failed") this._failed(refresh.error || {}, at);
    else return false;
    return true;
  }

  /** A refresh we saw start may have ended while the connection was down: stop showing it. */
  forgetRunning() {
    this.runningAt = null;
    this._hideProgress();
  }

  /** Update the "updated N s ago" text (called every second). */
  tick() {
    const at = this.updatedAt || this.failedAt;
    if (!at) {
      this.timeEl.textContent = "";
      this.timeEl.removeAttribute("datetime");
      return;
    }
    const text = `${this.updatedAt ? "updated" : "tried"} ${ageText(this.clock.age(at))}`;
    if (this.timeEl.textContent !== text) this.timeEl.textContent = text;
    if (this.timeEl.getAttribute("datetime") !== at) {
      this.timeEl.setAttribute("datetime", at);
      const local = new Date(Date.parse(at) + this.clock.offsetMs);
      this.timeEl.title = Number.isNaN(local.getTime()) ? "" : local.toLocaleString();
    }
  }

  /** Plotly charts follow their box. */
  figures() {
    return [...this.stack.querySelectorAll(".figure.js-plotly-plot")];
  }

  dispose() {
    clearTimeout(this.highlightTimer);
    this._drop();
  }

  // -- states ----------------------------------------------------------------------------------

  _done(data, at) {
    this.result = data;
    this.updatedAt = at;
    this.failedAt = null;
    this.errorEl.hidden = true;
    this.stack.classList.remove("stale");
    this._setState("done");
    this._renderWhenFree(data);
    this.tick();
  }

  /**
   * Re-render now, unless the viewer is working inside the result (a focused tab, the table
   * they scroll, the SQL they edit): then once focus leaves it, so nothing is pulled from under
   * their hands.
   */
  _renderWhenFree(data) {
    const card = this.card;
    if (!card || !card.el.contains(document.activeElement)) {
      this.deferred = null;
      this._render(data);
      return;
    }
    this.changeEl.textContent = "new result: shown when you leave this widget";
    if (this.deferred) {
      this.deferred = data;
      return;
    }
    this.deferred = data;
    const leave = (event) => {
      if (card.el.contains(event.relatedTarget)) return;
      card.el.removeEventListener("focusout", leave);
      if (this.card !== card || !this.deferred) return;
      const next = this.deferred;
      this.deferred = null;
      this._render(next);
    };
    card.el.addEventListener("focusout", leave);
  }

  _unchanged(at) {
    if (!this.result) return; // nothing shown to confirm (it was sent before we came)
    this.updatedAt = at;
    this.failedAt = null;
    this.errorEl.hidden = true;
    this.stack.classList.remove("stale");
    this._setState("done");
    this.tick();
  }

  _failed(error, at) {
    this.failedAt = at;
    const stage = h("span", { class: "error-stage", testid: "error-stage", dataset: { stage: error.stage || "request" } },
      stageLabel(error.stage));
    if (!this.result) {
      // Nothing good to keep: the full error, as a query card shows it.
      this._drop();
      const card = this._card({ question: null, sql: null });
      this.card = card;
      replaceChildren(this.stack, card.el);
      card.handle({ type: "error", data: { ...error, suggestions: [] } });
      this._setState("failed");
      this.tick();
      return;
    }
    replaceChildren(this.errorEl,
      h("span", { class: "widget-error-title" }, "Refresh failed during ", stage, ": "),
      h("span", { class: "widget-error-message", testid: "error-message" }, error.message || "something went wrong"),
      error.code ? h("span", { class: "error-code" }, ` (${error.code})`) : null);
    this.errorEl.hidden = false;
    this.stack.classList.add("stale");
    this._setState("stale");
    this.tick();
  }

  _setState(state) {
    this.el.dataset.state = state;
    const words = { stale: "stale: showing the last good result", failed: "refresh failed" }[state] || "";
    this.stateEl.textContent = words;
    this.stateEl.hidden = !words;
  }

  // -- progress ----------------------------------------------------------------------------------

  _showProgress(progress) {
    const known = typeof progress === "number" && Number.isFinite(progress);
    this.progressEl.hidden = false;
    this.progressEl.classList.toggle("indeterminate", !known);
    this.el.classList.add("refreshing");
    this.el.setAttribute("aria-busy", "true");
    if (known) {
      const percent = Math.min(100, Math.max(0, progress));
      this.barFill.style.width = `${percent}%`;
      this.progressEl.setAttribute("aria-valuenow", String(Math.round(percent)));
      this.progressEl.removeAttribute("aria-valuetext");
      this.progressEl.dataset.percent = String(Math.round(percent));
    } else {
      this.barFill.style.width = "";
      this.progressEl.removeAttribute("aria-valuenow");
      this.progressEl.setAttribute("aria-valuetext", "refreshing");
      delete this.progressEl.dataset.percent;
    }
    this.progressEl.title = known ? `Refreshing: ${Math.round(progress)}%` : "Refreshing…";
  }

  _hideProgress() {
    this.progressEl.hidden = true;
    this.el.classList.remove("refreshing");
    this.el.removeAttribute("aria-busy");
  }

  // -- rendering -----------------------------------------------------------------------------------

  _card(data) {
    const card = new QueryCard({
      question: data.question || null, sql: data.question ? null : data.sql, warehouse: data.warehouse,
      compact: true, onAsk: this.onAsk, onCancel: () => Promise.resolve(),
    });
    return card;
  }

  /**
   * Replace the shown result by `data` without a blank moment: the new card is drawn behind the
   * old one (same grid cell, invisible) and swapped in once its chart is drawn; the view the
   * viewer picked (chart / table / SQL) is kept.
   */
  async _render(data) {
    const changes = resultChanges(this.shown, data);
    this.shown = data;
    const previous = this.card;
    const wanted = previous && previous.activeView;
    if (this.incoming) this._dispose(this.incoming);
    const card = this._card(data);
    this.incoming = card;
    if (previous) card.el.classList.add("incoming");
    else replaceChildren(this.stack);
    this.stack.append(card.el);
    card.showResult(data);
    if (wanted && wanted !== card.activeView && card.panels && card.panels[wanted]) card.showView(wanted);
    if (previous && card.figureEl && card.activeView === "chart") await drawn(card);
    if (this.incoming !== card) return; // a newer result came meanwhile
    this.incoming = null;
    const scrolled = previous && previous.el.querySelector(".table-scroll");
    const scroller = scrolled && card.el.querySelector(".table-scroll");
    if (scroller) [scroller.scrollTop, scroller.scrollLeft] = [scrolled.scrollTop, scrolled.scrollLeft];
    if (previous && previous !== card) this._dispose(previous);
    card.el.classList.remove("incoming");
    this.card = card;
    this.renders += 1;
    this.el.dataset.renders = String(this.renders);
    this._highlight(card, changes);
  }

  _highlight(card, changes) {
    this.changeEl.textContent = changeSummary(changes);
    if (!changes.any || changes.first) return;
    const marked = [];
    const mark = (el, title) => {
      if (!el) return;
      el.classList.add("live-changed");
      if (title) el.title = title;
      marked.push(el);
    };
    if (changes.kpi) mark(card.el.querySelector("[data-testid=kpi-value]"), changes.kpi.was ? `was ${changes.kpi.was}` : "");
    if (card.figureEl && hasFigure(card.result && card.result.chart)) mark(card.figureEl.closest(".panel"));
    const body = card.el.querySelector("[data-testid=result-table] tbody");
    if (body) {
      if (changes.columnsChanged) mark(body.closest("table"));
      for (const { row, col, was } of changes.cells) {
        const cell = body.rows[row] && body.rows[row].cells[col];
        mark(cell, `was ${was == null ? "empty" : String(was)}`);
      }
      for (const row of changes.added) mark(body.rows[row]);
    }
    clearTimeout(this.highlightTimer);
    this.highlightTimer = setTimeout(() => {
      for (const el of marked) el.classList.remove("live-changed");
    }, HIGHLIGHT_MS);
  }

  _dispose(card) {
    card.dispose();
    card.el.remove();
  }

  _drop() {
    if (this.incoming) this._dispose(this.incoming);
    if (this.card) this._dispose(this.card);
    this.incoming = null;
    this.card = null;
  }
}

/** Resolves once the card's chart has been drawn (or after DRAW_WAIT_MS, whichever is first). */
function drawn(card) {
  const started = Date.now();
  return new Promise((resolve) => {
    const check = () => {
      if (!card.drawing || Date.now() - started > DRAW_WAIT_MS) resolve();
      else requestAnimationFrame(check);
    };
    requestAnimationFrame(check);
  });
}

/** 5 -> "5 s", 60 -> "1 min", 90 -> "90 s", 3600 -> "1 h". */
export function intervalText(seconds) {
  const s = Number(seconds);
  if (s >= 3600 && s % 3600 === 0) return `${s / 3600} h`;
  if (s >= 60 && s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
}
