// The refresh settings of a widget in the widget editor: how often it refreshes while its
// dashboard is watched (off, a preset, or custom seconds) and whether a change in the tables it
// reads refreshes it at once. They are the widget's `refresh: {interval_s, on_data_change}`
// (docs/protocol.md, docs/live.md); the server never refreshes more often than its minimum.

import { h } from "./dom.js";
import { intervalText } from "./livewidget.js";

export const PRESETS = [5, 10, 30, 60, 300];
export const MAX_INTERVAL_S = 86_400;
let formCounter = 0;

/** The select's value for an interval: "off", a preset ("10"), or "custom". */
export function intervalChoice(seconds) {
  if (seconds == null) return "off";
  return PRESETS.includes(Number(seconds)) ? String(seconds) : "custom";
}

/**
 * `{interval_s, on_data_change}` from the form's raw values; throws an Error naming the field
 * when the custom seconds are not a whole number from 1 to 86,400.
 */
export function readRefresh(choice, custom, onDataChange) {
  let interval = null;
  if (choice === "custom") {
    const text = String(custom ?? "").trim();
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < 1 || n > MAX_INTERVAL_S) {
      throw new Error(`Refresh every: give whole seconds from 1 to ${MAX_INTERVAL_S.toLocaleString()}.`);
    }
    interval = n;
  } else if (choice !== "off") {
    interval = Number(choice);
  }
  return { interval_s: interval, on_data_change: Boolean(onDataChange) };
}

/**
 * The form controls for `refresh` (a widget's current settings, or undefined for a new one).
 * Returns `{el, read()}`; `read()` throws an Error with a message for the dialog.
 * `live`: false when the server has live dashboards off (the settings are kept but do nothing).
 */
export function refreshFields(refresh, { live = true } = {}) {
  const id = `refresh-${++formCounter}`;
  const current = refresh || {};
  const choice = intervalChoice(current.interval_s);
  const select = h("select", { class: "text-input", testid: "refresh-interval", id: `${id}-interval` },
    h("option", { value: "off" }, "Off"),
    PRESETS.map((s) => h("option", { value: String(s) }, intervalText(s))),
    h("option", { value: "custom" }, "Custom…"));
  select.value = choice;
  const custom = h("input", {
    class: "text-input refresh-custom", testid: "refresh-interval-custom", type: "number", min: "1",
    max: String(MAX_INTERVAL_S), step: "1", inputmode: "numeric", "aria-label": "Refresh every (seconds)",
    value: choice === "custom" ? String(current.interval_s) : "",
  });
  const customWrap = h("span", { class: "refresh-custom-wrap", hidden: choice !== "custom" }, custom, " seconds");
  select.addEventListener("change", () => {
    customWrap.hidden = select.value !== "custom";
    if (!customWrap.hidden) custom.focus();
  });
  const onChange = h("input", { type: "checkbox", testid: "refresh-on-change", checked: Boolean(current.on_data_change) });
  const el = h("fieldset", { class: "refresh-fields", testid: "refresh-fields" },
    h("legend", {}, "Refresh"),
    h("div", { class: "refresh-row" },
      h("label", { for: `${id}-interval` }, "Every"), select, customWrap),
    h("label", { class: "check" }, onChange, " When its data changes"),
    h("p", { class: "hint" }, live
      ? "While someone watches the dashboard; the server may refresh less often than asked (its minimum interval)."
      : "Live dashboards are off on this server: the settings are kept, and each viewer runs the widget when the page opens."));
  return { el, read: () => readRefresh(select.value, custom.value, onChange.checked) };
}

/** Same settings? (`null`/missing counts as off). */
export function sameRefresh(a, b) {
  const x = a || {};
  const y = b || {};
  return (x.interval_s ?? null) === (y.interval_s ?? null) && Boolean(x.on_data_change) === Boolean(y.on_data_change);
}
