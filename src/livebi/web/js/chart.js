// Charts (Plotly, loaded as the global `window.Plotly` by a classic script tag) and KPI tiles.

import { h, slug } from "./dom.js";

// Plotly offers to upload a chart and its data to Plotly's cloud (a "Share chart..." mode-bar
// button, on by default in plotly.js 3+; "Edit in Chart Studio" and a "link" in older
// versions). Nothing leaves livebi: every such switch is off, the buttons are removed by name,
// and the upload URL is empty, for whichever plotly.js version the plotly package ships.
// Applied last in drawFigure, so no figure can turn them back on.
const PLOT_CONFIG = Object.freeze({
  responsive: true,
  displaylogo: false,
  showSendToCloud: false,
  showEditInChartStudio: false,
  showLink: false,
  linkText: "",
  plotlyServerURL: "",
  modeBarButtonsToRemove: ["lasso2d", "select2d", "sendChartToCloud", "sendDataToCloud", "editInChartStudio"],
});

const FONT = '-apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';

/** Does this chart payload carry something Plotly can draw? */
export function hasFigure(chart) {
  return Boolean(chart && chart.figure && Array.isArray(chart.figure.data) && chart.figure.data.length);
}

export function isKpi(chart) {
  return Boolean(chart && (chart.type === "kpi" || chart.kpi) && chart.kpi);
}

/**
 * Draw a Plotly figure into `container` (which must be visible so Plotly can measure it).
 * Resolves to true when drawn; false (with a message in the container) when Plotly is missing.
 */
export async function drawFigure(container, chart) {
  const Plotly = globalThis.Plotly;
  if (!Plotly) {
    container.replaceChildren(h("p", { class: "muted" }, "The charting library did not load; the table and SQL are still available."));
    return false;
  }
  const figure = chart.figure;
  const layout = {
    ...(figure.layout || {}),
    autosize: true,
    font: { family: FONT, ...((figure.layout || {}).font || {}) },
    paper_bgcolor: "rgba(0,0,0,0)",
  };
  // The card shows the title as page text (see card.js): Plotly's mode bar would cover it.
  delete layout.title;
  const legendOnTop = layout.legend && Number(layout.legend.y) > 1;
  layout.margin = { t: 48, r: 16, b: 48, l: 56, ...(layout.margin || {}) };
  if (!legendOnTop) layout.margin.t = 28; // room for the mode bar only
  delete layout.width; // let the card decide
  await Plotly.newPlot(container, figure.data, layout, PLOT_CONFIG);
  rovingModeBar(container);
  // Plotly rebuilds its mode bar now and then (redraws, hover): keep it one Tab stop.
  if (!container.rovingObserver) {
    let queued = false;
    container.rovingObserver = new MutationObserver((records) => {
      if (queued || !records.some((r) => r.target.closest && r.target.closest(".modebar-container"))) return;
      queued = true;
      queueMicrotask(() => {
        queued = false;
        rovingModeBar(container);
      });
    });
    container.rovingObserver.observe(container, { childList: true, subtree: true });
  }
  return true;
}

/**
 * The mode bar as one Tab stop (a roving tabindex): Plotly makes each of its buttons a Tab
 * stop, so a keyboard user had to walk through every one to get past a chart. The arrow keys
 * (and Home/End) move between the buttons. Called again after every redraw (Plotly may
 * rebuild the bar).
 */
export function rovingModeBar(container) {
  const buttons = [...container.querySelectorAll(".modebar-btn")];
  if (!buttons.length) return;
  const current = buttons.find((b) => b.tabIndex === 0 && b.dataset.roving) || buttons[0];
  for (const button of buttons) {
    const wanted = button === current ? 0 : -1;
    button.dataset.roving = "1";
    if (button.tabIndex !== wanted) button.tabIndex = wanted; // unchanged: no mutation to observe
  }
  const bar = container.querySelector(".modebar");
  if (!bar || bar.dataset.roving) return;
  bar.dataset.roving = "1";
  bar.setAttribute("role", "toolbar");
  bar.setAttribute("aria-label", "Chart tools");
  bar.addEventListener("keydown", (event) => {
    const all = [...bar.querySelectorAll(".modebar-btn")];
    const index = all.indexOf(document.activeElement);
    if (index < 0) return;
    const next = { ArrowRight: index + 1, ArrowDown: index + 1, ArrowLeft: index - 1, ArrowUp: index - 1,
      Home: 0, End: all.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    const target = all[(next + all.length) % all.length];
    for (const button of all) button.tabIndex = button === target ? 0 : -1;
    target.focus();
  });
}

/** Re-fit a drawn chart to its container (after a tab switch or a layout change). */
export function resizeFigure(container) {
  const Plotly = globalThis.Plotly;
  if (Plotly && container && container.classList.contains("js-plotly-plot")) Plotly.Plots.resize(container);
}

export function exportPng(container, title) {
  const Plotly = globalThis.Plotly;
  if (!Plotly) return Promise.reject(new Error("Plotly is not loaded"));
  return Plotly.downloadImage(container, { format: "png", filename: slug(title, "livebi-chart"), width: 1200, height: 700, scale: 1 });
}

/** A big number with its label and the change against the previous period. */
export function renderKpi(kpi) {
  const change = Number(kpi.change_pct);
  const hasChange = kpi.change_pct != null && Number.isFinite(change);
  const direction = !hasChange || change === 0 ? "flat" : change > 0 ? "up" : "down";
  const arrow = { up: "▲", down: "▼", flat: "■" }[direction];
  const changeText = kpi.change_formatted || (hasChange ? `${change > 0 ? "+" : ""}${change.toFixed(1)}%` : "");
  const value = kpi.formatted ?? (typeof kpi.value === "number" ? kpi.value.toLocaleString() : String(kpi.value ?? "–"));
  return h("div", { class: "kpi" },
    kpi.label ? h("div", { class: "kpi-label" }, kpi.label) : null,
    h("div", { class: "kpi-value", testid: "kpi-value" }, value),
    hasChange || changeText
      ? h("div", { class: `kpi-change ${direction}`, "aria-label": `change ${changeText}` },
          h("span", { "aria-hidden": "true" }, arrow), " ", changeText,
          kpi.previous != null ? h("span", { class: "kpi-previous" }, ` vs ${formatPrevious(kpi.previous)}`) : null)
      : null);
}

function formatPrevious(value) {
  return typeof value === "number" ? value.toLocaleString(undefined, { maximumFractionDigits: 2 }) : String(value);
}
