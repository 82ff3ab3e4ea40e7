// One question in the conversation: live progress, then the answer (chart / table / SQL) or the
// error with suggestions.

import { h, humanize, replaceChildren } from "./dom.js";
import { drawFigure, exportPng, hasFigure, isKpi, renderKpi, resizeFigure } from "./chart.js";
import { downloadCsv, renderTable } from "./table.js";

export const STAGES = [
  { name: "nlp_processing", label: "Understanding", short: "NLP" },
  { name: "data_processing", label: "Querying data", short: "Data" },
  { name: "visualization", label: "Visualizing", short: "Visualization" },
];
const STAGE_LABEL = Object.fromEntries(STAGES.map((s) => [s.name, `${s.short} (${s.label.toLowerCase()})`]));

export function stageLabel(stage) {
  return STAGE_LABEL[stage] || humanize(stage) || "Request";
}

let cardCounter = 0;

export class QueryCard {
  /**
   * @param {object} o
   * @param {string} [o.question]  the question asked (or null when `sql` was run)
   * @param {string} [o.sql]
   * @param {string} [o.warehouse]
   * @param {function(object):void} o.onAsk  ask something new ({question} or {sql, warehouse})
   * @param {function(string):Promise} o.onCancel  cancel a query id
   * @param {function(QueryCard):void} [o.onFinished]  called once with the final result/error
   * @param {function(QueryCard):void} [o.onPin]  offers "Pin to dashboard" on the answer
   * @param {function(QueryCard):void} [o.onShare]  offers "Share" on the answer
   * @param {boolean} [o.compact]  a dashboard widget: no header, chips, explanation or footer
   */
  constructor({ question, sql, warehouse, onAsk, onCancel, onFinished, onPin, onShare, compact = false }) {
    this.question = question || null;
    this.sql = sql || null;
    this.warehouse = warehouse || null;
    this.onAsk = onAsk;
    this.onCancel = onCancel;
    this.onFinished = onFinished || (() => {});
    this.onPin = onPin || null;
    this.onShare = onShare || null;
    this.compact = compact;
    this.queryId = null;
    this.state = "pending"; // pending | running | done | error | cancelled
    this.percent = 0;
    this.cancelRequested = false;
    this.domId = `card-${++cardCounter}`;
    this.el = this._build();
    this.startedAt = Date.now();
    this.lastAdvanceAt = this.startedAt;
    this.rowsProcessed = 0;
    this.elapsedTimer = setInterval(() => this._tick(), ELAPSED_TICK_MS);
    this._tick();
  }

  // -- building ------------------------------------------------------------------------------

  _build() {
    const title = this.question
      ? h("h2", { class: "card-question", id: `${this.domId}-title` }, this.question)
      : h("h2", { class: "card-question sql", id: `${this.domId}-title` },
          h("span", { class: "badge" }, "SQL"), " ", h("code", {}, this.sql));
    this.metaEl = h("span", { class: "card-meta" }, this.warehouse ? `on ${this.warehouse}` : "");

    this.stageEls = STAGES.map((stage, i) =>
      h("li", { class: "step", testid: "progress-stage", dataset: { stage: stage.name } },
        h("span", { class: "step-dot", "aria-hidden": "true" }, String(i + 1)),
        h("span", { class: "step-text", title: stage.label },
          h("span", { class: "step-label" }, stage.short),
          h("span", { class: "step-sub" }, ""))));
    this.barFill = h("div", { class: "bar-fill" });
    this.barEl = h("div", {
      class: "bar", testid: "progress-bar", role: "progressbar",
      "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0", "aria-labelledby": `${this.domId}-title`,
    }, this.barFill);
    this.percentEl = h("span", { class: "percent", testid: "progress-percent" }, "0%");
    this.detailsEl = h("span", { class: "details", testid: "progress-details" }, "Sending question…");
    this.rowsEl = h("span", { class: "rows", testid: "progress-rows" }, "");
    this.elapsedEl = h("span", { class: "elapsed", testid: "progress-elapsed" }, "");
    this.cancelBtn = h("button", {
      type: "button", class: "btn btn-ghost btn-small", testid: "cancel-button",
      on: { click: () => this.cancel() },
    }, "Cancel");
    this.progressEl = h("section", { class: "progress", "aria-label": "Progress" },
      h("ol", { class: "steps" }, this.stageEls),
      h("div", { class: "bar-row" }, this.barEl, this.percentEl),
      h("div", { class: "progress-foot" },
        h("p", { class: "progress-text" },
          h("span", { "aria-live": "polite" }, this.detailsEl, this.rowsEl), this.elapsedEl),
        this.cancelBtn));
    this.bodyEl = h("div", { class: "card-body" });

    return h("article", {
      class: `card running${this.compact ? " compact" : ""}`, testid: this.compact ? "widget-query" : "query-card",
      "aria-labelledby": `${this.domId}-title`, "aria-busy": "true",
    },
      h("header", { class: `card-head${this.compact ? " visually-hidden" : ""}` }, title, this.metaEl),
      this.progressEl,
      this.bodyEl);
  }

  setQueryId(queryId) {
    this.queryId = queryId;
    this.el.dataset.queryId = queryId;
    if (this.state === "pending") this.state = "running";
    if (this.cancelRequested) this.cancel();
  }

  get finished() {
    return ["done", "error", "cancelled"].includes(this.state);
  }

  // -- publications ---------------------------------------------------------------------------

  /** Apply one publication of this card's query channel. */
  handle(pub) {
    if (this.finished) return;
    const data = pub.data || {};
    if (pub.type === "progress") this._progress(data);
    else if (pub.type === "result") this._result(data);
    else if (pub.type === "error") this._error(data);
  }

  _progress(data) {
    if (this.state === "pending") this.state = "running";
    const index = STAGES.findIndex((s) => s.name === data.stage);
    this.stageEls.forEach((el, i) => {
      el.classList.toggle("done", index > i);
      el.classList.toggle("active", index === i);
      el.querySelector(".step-sub").textContent = index === i ? substageLabel(data.substage) : "";
      if (index === i) el.setAttribute("aria-current", "step");
      else el.removeAttribute("aria-current");
    });
    const rows = Number(data.rows_processed) || 0;
    if ((typeof data.progress === "number" && data.progress > this.percent) || rows > this.rowsProcessed) {
      this.lastAdvanceAt = Date.now();
    }
    this.rowsProcessed = Math.max(this.rowsProcessed, rows);
    if (typeof data.progress === "number") this._setPercent(Math.max(this.percent, data.progress));
    this.detailsEl.textContent = data.details || substageLabel(data.substage) || "";
    this.rowsEl.textContent = rows ? ` · ${rows.toLocaleString()} rows processed` : "";
    this._tick();
  }

  /**
   * Elapsed time while running, and honesty about progress: when neither the percent nor the
   * engine's row count has moved for a while, the bar says "no estimate" (indeterminate) rather
   * than sitting still as if stuck.
   */
  _tick() {
    if (this.finished) return;
    const now = Date.now();
    this.elapsedEl.textContent = ` · ${formatElapsed(now - this.startedAt)}`;
    const stalled = this.state === "running" && now - this.lastAdvanceAt > STALL_MS;
    if (stalled === this.barEl.classList.contains("indeterminate")) return;
    this.barEl.classList.toggle("indeterminate", stalled);
    if (stalled) {
      this.barEl.removeAttribute("aria-valuenow");
      this.barEl.setAttribute("aria-valuetext", "working, no progress estimate from the engine");
      this.percentEl.textContent = "…";
      this.percentEl.title = "The engine gives no progress estimate for this step";
    } else {
      this.barEl.removeAttribute("aria-valuetext");
      this.percentEl.title = "";
      this._setPercent(this.percent);
    }
  }

  _setPercent(value) {
    this.percent = Math.min(100, Math.max(0, value));
    const rounded = Math.round(this.percent);
    this.barFill.style.width = `${this.percent}%`;
    if (this.barEl.classList.contains("indeterminate")) return; // says "no estimate" meanwhile
    this.barEl.setAttribute("aria-valuenow", String(rounded));
    this.percentEl.textContent = `${rounded}%`;
  }

  _complete(state) {
    this.state = state;
    clearInterval(this.elapsedTimer);
    this.barEl.classList.remove("indeterminate");
    this.elapsedMs = Date.now() - this.startedAt;
    this.el.classList.remove("running");
    this.el.classList.add(state);
    this.el.removeAttribute("aria-busy");
    this.cancelBtn.hidden = true;
    this.progressEl.classList.add("complete");
    this.onFinished(this);
  }

  _result(result) {
    this.result = result;
    this.stageEls.forEach((el) => {
      el.classList.remove("active");
      el.classList.add("done");
      el.removeAttribute("aria-current");
      el.querySelector(".step-sub").textContent = "";
    });
    this._setPercent(100);
    this.detailsEl.textContent = "Done";
    if (result.warehouse) this.metaEl.textContent = `on ${result.warehouse}`;
    replaceChildren(this.bodyEl, this._answer(result));
    this._complete("done");
    // The card is in the document now: draw the chart (Plotly needs a measurable container).
    if (this.activeView === "chart" && this.figureEl) this._drawChart();
  }

  /** An error publication (pipeline failure) or an op error (`{code, message}` without stage). */
  _error(error) {
    this.error = error;
    const cancelled = error.code === "cancelled";
    const failedIndex = STAGES.findIndex((s) => s.name === error.stage);
    this.stageEls.forEach((el, i) => {
      el.classList.remove("active");
      el.classList.toggle(cancelled ? "stopped" : "failed", i === failedIndex);
      el.removeAttribute("aria-current");
    });
    this.detailsEl.textContent = cancelled ? "Cancelled" : "Failed";
    const suggestions = (error.suggestions || []).filter((s) => typeof s === "string" && s.trim())
      .map((s) => ({ text: s, question: askableSuggestion(s, this.question) }));
    const askable = suggestions.filter((s) => s.question);
    const advice = suggestions.filter((s) => !s.question);
    const box = h("div", { class: `error-box${cancelled ? " cancelled" : ""}`, testid: "error-box", role: "alert" },
      h("p", { class: "error-title" },
        cancelled ? "Cancelled during " : "Failed during ",
        h("span", { class: "error-stage", testid: "error-stage", dataset: { stage: error.stage || "request" } },
          stageLabel(error.stage))),
      h("p", { class: "error-message", testid: "error-message" }, error.message || "Something went wrong."),
      error.code && !cancelled ? h("p", { class: "error-code" }, `code: ${error.code}`) : null,
      advice.length
        ? h("ul", { class: "advice", testid: "suggestion-advice", "aria-label": "Tips" },
            advice.map((s) => h("li", {}, s.text)))
        : null,
      askable.length
        ? h("div", { class: "chips-block" },
            h("p", { class: "chips-label" }, "Try one of these:"),
            h("div", { class: "chips" }, askable.map((s) =>
              h("button", { type: "button", class: "chip", testid: "suggestion-chip",
                on: { click: () => this.onAsk({ question: s.question, warehouse: this.warehouse }) } }, s.text))))
        : null);
    replaceChildren(this.bodyEl, box);
    this._complete(cancelled ? "cancelled" : "error");
  }

  /** The reply to the ask op itself failed (no query started). */
  failRequest(err) {
    if (this.finished) return;
    this._error({ stage: null, code: err.code || "error", message: err.message || String(err), suggestions: [] });
  }

  /** Show a result that did not come from a live query (a shared or stored one). */
  showResult(result) {
    if (this.finished) return;
    if (this.state === "pending") this.state = "running";
    this._result(result);
  }

  /** Stop the elapsed-time clock (the card leaves the page). */
  dispose() {
    clearInterval(this.elapsedTimer);
  }

  /** After a reconnect the missed publications could not be replayed. */
  markLost() {
    if (this.finished) return;
    this._error({
      stage: null, code: "lost", suggestions: this.question ? [this.question] : [],
      message: "The connection dropped and this question's live updates could not be recovered. Ask it again.",
    });
  }

  cancel() {
    if (this.finished) return;
    this.cancelRequested = true;
    this.cancelBtn.disabled = true;
    this.cancelBtn.textContent = "Cancelling…";
    if (!this.queryId) return; // sent as soon as the server names the query
    this.onCancel(this.queryId).catch((err) => {
      this.cancelBtn.disabled = false;
      this.cancelBtn.textContent = "Cancel";
      this.detailsEl.textContent = `Could not cancel: ${err.message}`;
    });
  }

  // -- the answer -----------------------------------------------------------------------------

  _answer(result) {
    const chart = result.chart || {};
    const views = [];
    if (isKpi(chart) || hasFigure(chart)) views.push(["chart", "Chart"]);
    views.push(["table", "Table"], ["sql", "SQL"]);
    this.panels = {};
    this.tabs = {};

    if (isKpi(chart)) {
      this.panels.chart = h("div", { class: "panel", testid: "result-kpi" }, renderKpi(chart.kpi));
    } else if (hasFigure(chart)) {
      this.figureEl = h("div", { class: "figure", testid: "result-chart", role: "img",
        "aria-label": chart.title || "Chart of the result" });
      // The title is page text above the plot, not Plotly's: the mode bar cannot cover it and
      // a long title wraps instead of running under the legend.
      this.panels.chart = h("div", { class: "panel panel-chart" },
        chart.title && !this.compact ? h("h3", { class: "chart-title", testid: "chart-title" }, chart.title) : null,
        this.figureEl);
    }
    this.panels.table = h("div", { class: "panel", testid: "result-table" });
    this.sqlInput = h("textarea", {
      class: "sql-input", testid: "result-sql", spellcheck: "false", rows: "6",
      "aria-label": "SQL of this answer (editable)", value: result.sql || "",
      on: { keydown: (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); this._runSql(); } } },
    });
    this.panels.sql = h("div", { class: "panel" },
      this.sqlInput,
      h("div", { class: "sql-actions" },
        h("span", { class: "hint" }, "Edit the SQL and run it (Ctrl+Enter). Read-only SELECT queries only."),
        h("button", { type: "button", class: "btn btn-primary btn-small", testid: "run-sql-button",
          on: { click: () => this._runSql() } }, "Run SQL")));

    const tablist = h("div", { class: "tabs", role: "tablist", "aria-label": "Answer views" },
      views.map(([name, label]) => {
        const tab = h("button", {
          type: "button", class: "tab", role: "tab", testid: "view-tab", dataset: { view: name },
          id: `${this.domId}-tab-${name}`, "aria-controls": `${this.domId}-panel-${name}`,
          on: { click: () => this.showView(name), keydown: (e) => this._tabKeys(e, views, name) },
        }, label);
        this.tabs[name] = tab;
        return tab;
      }));
    for (const [name] of views) {
      Object.assign(this.panels[name], { id: `${this.domId}-panel-${name}` });
      this.panels[name].setAttribute("role", "tabpanel");
      this.panels[name].setAttribute("aria-labelledby", `${this.domId}-tab-${name}`);
    }

    this.pngBtn = h("button", { type: "button", class: "btn btn-ghost btn-small", testid: "export-png",
      disabled: !this.figureEl, title: this.figureEl ? "Save the chart as PNG" : "No chart to export",
      on: { click: () => exportPng(this.figureEl, chart.title || result.question) } }, "Export PNG");
    const csvBtn = h("button", { type: "button", class: "btn btn-ghost btn-small", testid: "download-csv",
      on: { click: () => downloadCsv(result) } }, "Download CSV");
    const pinBtn = this.onPin && h("button", { type: "button", class: "btn btn-ghost btn-small", testid: "pin-button",
      title: "Add this answer to a dashboard", on: { click: () => this.onPin(this) } }, "Pin to dashboard");
    const shareBtn = this.onShare && this.queryId && h("button", { type: "button", class: "btn btn-ghost btn-small",
      testid: "share-button", title: "Send this answer to other people", on: { click: () => this.onShare(this) } }, "Share");
    // The actions come after the answer in the DOM (and so in Tab order): a keyboard user
    // reaches the chart or table first, not a row of buttons.
    const actions = h("div", { class: "actions", "aria-label": "Answer actions", role: "group" },
      pinBtn, shareBtn, csvBtn, this.pngBtn);

    const firstView = views[0][0];
    if (this.compact) {
      const content = h("div", { class: "answer" },
        h("div", { class: "toolbar" }, tablist),
        views.map(([name]) => this.panels[name]));
      this.showView(firstView);
      return content;
    }
    // A low-confidence answer puts its assumptions first, highlighted: the reader checks them
    // before trusting the chart. A confident one keeps them as quiet notes under the explanation.
    const check = result.low_confidence ? this._pleaseCheck(result) : null;
    const content = h("div", { class: "answer" },
      check,
      result.explanation ? h("p", { class: "explanation", testid: "result-explanation" }, result.explanation) : null,
      !check && (result.assumptions || []).length
        ? h("ul", { class: "assumptions", "aria-label": "Assumptions" }, result.assumptions.map((a) => h("li", {}, a)))
        : null,
      (result.warnings || []).length
        ? h("ul", { class: "assumptions warnings", testid: "result-warnings", "aria-label": "Warnings" }, result.warnings.map((w) => h("li", {}, w)))
        : null,
      h("div", { class: "toolbar" }, tablist),
      views.map(([name]) => this.panels[name]),
      actions,
      chart.reason ? h("p", { class: "small muted chart-reason" }, chart.reason) : null,
      this._chips("Related questions", result.alternatives, (q) => ({ question: q, warehouse: result.warehouse }), "alternative-chip"),
      this._chips("Show as", chartAlternatives(chart), (type) => ({ ...this._reask(result), chart: type }), "chart-chip", humanize),
      this._footer(result));
    this.showView(firstView);
    return content;
  }

  /** The "Please check" block of a low-confidence answer: its confidence, assumptions and doubts. */
  _pleaseCheck(result) {
    const assumptions = (result.assumptions || []).filter((a) => typeof a === "string" && a.trim());
    const reasons = (result.confidence_reasons || []).filter((r) => typeof r === "string" && r.trim());
    const percent = typeof result.confidence === "number" ? `${Math.round(result.confidence * 100)}%` : "low";
    return h("section", { class: "check-box", testid: "check-assumptions", role: "note",
      "aria-label": "Please check this answer" },
      h("p", { class: "check-title" },
        h("strong", {}, "Please check: "),
        "this answer may not be what you asked. ",
        h("span", { class: "check-confidence", testid: "result-confidence", title: "How sure the engine is of its reading of the question" },
          `Confidence ${percent}`)),
      assumptions.length
        ? h("ul", { class: "check-list", testid: "check-assumption", "aria-label": "Assumptions" },
            assumptions.map((a) => h("li", {}, a)))
        : null,
      reasons.length
        ? h("p", { class: "check-reasons small", testid: "check-reasons" }, `Why: ${reasons.join("; ")}.`)
        : null);
  }

  _reask(result) {
    return result.question ? { question: result.question, warehouse: result.warehouse }
      : { sql: result.sql, warehouse: result.warehouse };
  }

  _chips(label, items, toAsk, testid, text = (item) => item) {
    const list = (items || []).filter((s) => typeof s === "string" && s.trim());
    if (!list.length) return null;
    return h("div", { class: "chips-block" },
      h("p", { class: "chips-label" }, label),
      h("div", { class: "chips" }, list.map((item) =>
        h("button", { type: "button", class: "chip", testid, on: { click: () => this.onAsk(toAsk(item)) } }, text(item)))));
  }

  _footer(result) {
    const t = result.timings_ms || {};
    const fmt = (ms) => (ms == null ? "–" : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`);
    const parts = [["NLP", t.nlp], ["Data", t.data], ["Viz", t.viz], ["Total", t.total]]
      .filter(([, v]) => v != null).map(([k, v]) => `${k} ${fmt(v)}`);
    return h("p", { class: "timings", testid: "timings" },
      parts.join(" · "),
      result.engine ? h("span", { class: "badge" }, result.engine === "sql" ? "your SQL" : result.engine) : null,
      result.cached ? h("span", {
        class: "badge", testid: "cached",
        title: `Rows read ${result.as_of || "earlier"} for an earlier question; no change to their tables since`,
      }, `cached, ${fmtAge(result.cache_age_s)} old`) : null,
      h("span", { class: "muted" }, ` ${rowsText(Number(result.row_count ?? (result.rows || []).length))}`));
  }

  showView(name) {
    if (!this.panels || !this.panels[name]) return;
    this.activeView = name;
    for (const [key, panel] of Object.entries(this.panels)) {
      const active = key === name;
      panel.hidden = !active;
      const tab = this.tabs[key];
      if (tab) {
        tab.setAttribute("aria-selected", String(active));
        tab.tabIndex = active ? 0 : -1;
        tab.classList.toggle("active", active);
      }
    }
    if (name === "table" && !this.panels.table.firstChild) this.panels.table.append(renderTable(this.result));
    if (name === "chart" && this.figureEl) {
      if (this.figureDrawn) requestAnimationFrame(() => resizeFigure(this.figureEl));
      else if (this.figureEl.isConnected) this._drawChart();
    }
  }

  _tabKeys(event, views, name) {
    const names = views.map(([n]) => n);
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    const next = names[(names.indexOf(name) + step + names.length) % names.length];
    this.showView(next);
    this.tabs[next].focus();
  }

  _drawChart() {
    if (this.figureDrawn || this.drawing) return;
    this.drawing = true;
    drawFigure(this.figureEl, this.result.chart)
      .then((ok) => { this.figureDrawn = ok; })
      .catch((err) => {
        console.error("livebi: chart failed", err);
        this.figureEl.replaceChildren(h("p", { class: "muted" }, "The chart could not be drawn; see the table."));
      })
      .finally(() => { this.drawing = false; });
  }

  _runSql() {
    const sql = this.sqlInput.value.trim();
    if (!sql) return;
    this.onAsk({ sql, warehouse: (this.result && this.result.warehouse) || this.warehouse });
  }
}

// Suggestions that are advice ("add a filter or a shorter period") start with one of these verbs;
// they are shown as tips, never sent as questions.
const ADVICE = /^(add|ask|try|use|narrow|remove|check|choose|pick|specify|shorten|reduce|wait|refine|rephrase|avoid|include)\b/i;

/**
 * The question a suggestion chip asks, or null when it is advice (or a bare name offered for
 * a SQL error, which means nothing as a question).
 */
export function askableSuggestion(suggestion, original) {
  const text = String(suggestion || "").trim();
  if (!text) return null;
  if (/^did you mean /i.test(text)) return original ? suggestionQuestion(text, original) : null;
  if (ADVICE.test(text)) return null;
  if (!original) return null; // a SQL card: suggestions are column or table names
  return text;
}

/**
 * The question a suggestion chip asks. A spelling hint ('Did you mean "money" instead of
 * "monkey"?') asks the original question with the word replaced; anything else is asked as is.
 */
export function suggestionQuestion(suggestion, original) {
  const match = /^did you mean ["“'](.+?)["”'] instead of ["“'](.+?)["”']\??$/i.exec(suggestion.trim());
  if (!match || !original) return suggestion;
  const [, wanted, typed] = match;
  const escaped = typed.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const fixed = original.replace(new RegExp(`\\b${escaped}\\b`, "gi"), () => wanted);
  return fixed === original ? wanted : fixed;
}

const ELAPSED_TICK_MS = 500;
const STALL_MS = 1500;

/** 4300 -> "4.3 s", 75000 -> "1:15". */
export function formatElapsed(ms) {
  const seconds = Math.max(0, ms) / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const whole = Math.floor(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

/** "3 s", "4 min": how old a cached result is. */
function fmtAge(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  return s < 90 ? `${s} s` : `${Math.round(s / 60)} min`;
}

function rowsText(n) {
  return `${n.toLocaleString()} row${n === 1 ? "" : "s"}`;
}

/** Words for the substages the server names (protocol.SUBSTAGES); unknown ones are humanized. */
const SUBSTAGE_LABEL = {
  intent_extraction: "Reading the question",
  schema_linking: "Matching the schema",
  sql_generation: "Writing SQL",
  sql_validation: "Checking SQL",
  queued: "Waiting for the warehouse",
  sql_execution: "Running SQL",
  result_processing: "Processing rows",
  chart_selection: "Choosing a chart",
  chart_generation: "Drawing the chart",
};

export function substageLabel(name) {
  return SUBSTAGE_LABEL[name] || humanize(name).replace(/\bsql\b/gi, "SQL");
}

function chartAlternatives(chart) {
  return (chart.alternatives || [])
    .map((a) => (typeof a === "string" ? a : a && a.type))
    .filter((a) => a && a !== chart.type);
}
