// Alerts: "Notify me…" on a dashboard widget sets a condition on its value (column, aggregate,
// op, threshold); the server checks it after every refresh and sends a `notification` on my user
// channel once per crossing (notify.js shows it). Here: the widget's button and dialog, the list
// of my alerts (delete), and the browser's own notification when the user allowed them.

import * as api from "./api.js";
import { h, replaceChildren } from "./dom.js";
import { openDialog } from "./dialogs.js";

const OPS = [[">", "rises above"], [">=", "reaches"], ["<", "falls below"], ["<=", "falls to or below"]];
const AGGREGATES = [
  ["last", "in the last row"], ["first", "in the first row"], ["max", "largest"], ["min", "smallest"],
  ["sum", "sum"], ["count", "number of rows"],
];
const FIRST_NUMBER = ""; // the column select's value for "the first number column" (null on the wire)
const SVG = "http://www.w3.org/2000/svg";

function bellIcon() {
  const svg = document.createElementNS(SVG, "svg");
  for (const [k, v] of Object.entries({ viewBox: "0 0 24 24", width: "14", height: "14", fill: "none", stroke: "currentColor",
    "stroke-width": "2", "stroke-linecap": "round", "stroke-linejoin": "round", "aria-hidden": "true" })) svg.setAttribute(k, v);
  for (const d of ["M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9", "M10.3 21a1.94 1.94 0 0 0 3.4 0"]) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

/**
 * The "Notify me…" button for a widget's toolbar (dashboard.js adds it; nothing else to wire).
 * `view` is the dashboard's widget view `{id, widget, card, live}`, read when the button is pressed,
 * so the dialog offers the columns of the widget's latest result.
 */
export function alertAction(dashboardId, view) {
  return h("button", {
    type: "button", class: "btn btn-ghost btn-icon widget-btn", testid: "widget-alert",
    "aria-label": "Notify me…", title: "Notify me when its value crosses a threshold",
    on: { click: () => openAlertDialog({ dashboardId, widgetId: view.id, widgetTitle: view.widget.title,
      result: (view.live && view.live.result) || (view.card && view.card.result) }) },
  }, bellIcon());
}

/** Ask for the browser's permission to show notifications (only while it was never asked). */
export function askNotificationPermission() {
  if (typeof Notification === "undefined" || Notification.permission !== "default") return;
  try {
    Notification.requestPermission().catch(() => {});
  } catch {
    // Safari's older callback form: nothing to wait for
  }
}

/**
 * Show `note` (a `notification` publication's data) as a browser notification when the user
 * allowed them; `onClick` when it is clicked. Returns the Notification, or null.
 */
export function browserNotification(note, onClick) {
  if (typeof Notification === "undefined" || Notification.permission !== "granted") return null;
  try {
    const shown = new Notification(note.title || "livebi alert", {
      body: note.message || "", tag: `livebi-alert-${note.alert_id}-${note.timestamp}`,
    });
    shown.addEventListener("click", () => {
      window.focus();
      shown.close();
      onClick();
    });
    return shown;
  } catch (err) {
    // e.g. a browser that only allows notifications from a service worker
    console.warn("livebi: browser notification", err);
    return null;
  }
}

/** A line saying how notifications will reach me beyond this page, when that needs saying. */
function permissionHint() {
  const state = typeof Notification === "undefined" ? "unsupported" : Notification.permission;
  const text = {
    default: "Your browser will ask whether livebi may show notifications: allow it to see alerts when this tab is in the background.",
    denied: "Notifications are blocked for this site in your browser: alerts show in the page's bell only.",
    unsupported: "This browser cannot show notifications: alerts show in the page's bell only.",
  }[state];
  return text ? h("p", { class: "small muted", testid: "alert-permission" }, text) : null;
}

function numericColumns(result) {
  if (!result || !Array.isArray(result.columns)) return [];
  const kinds = result.column_kinds || [];
  return result.columns.filter((_, i) => kinds[i] === "number");
}

function select(testid, label, options, value) {
  return h("select", { class: "text-input", testid, "aria-label": label },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
}

function alertRow(alert, onDeleted, { showWhere = false } = {}) {
  const status = alert.status === "widget_removed" ? " · widget removed"
    : alert.status === "no_access" ? " · no access any more" : "";
  const where = showWhere && alert.dashboard_title
    ? `${alert.dashboard_title} › ${alert.widget_title || "(removed widget)"}: ` : "";
  const li = h("li", { class: "alert-row", testid: "alert-row", dataset: { alertId: alert.id, state: alert.state } },
    h("span", { class: "alert-text" },
      h("span", { class: "alert-condition" }, `${where}${alert.label ? `${alert.label} — ` : ""}${alert.condition}`),
      h("span", { class: "small muted" }, `${alert.state === "unknown" ? "not checked yet" : `now ${alert.state}`}${status}`)),
    h("button", { type: "button", class: "btn btn-ghost btn-small", testid: "alert-delete",
      "aria-label": `Delete alert ${alert.condition}`, on: { click: async (event) => {
        event.target.disabled = true;
        try {
          await api.deleteAlert(alert.id);
          li.remove();
          onDeleted(alert);
        } catch (err) {
          event.target.disabled = false;
          li.append(h("span", { class: "form-error small", role: "alert" }, err.message));
        }
      } } }, "Delete"));
  return li;
}

function alertList(alerts, emptyText, options) {
  const list = h("ul", { class: "alert-list", testid: "alert-list" });
  const empty = h("p", { class: "small muted", hidden: alerts.length > 0 }, emptyText);
  const onDeleted = () => { empty.hidden = list.children.length > 0; };
  replaceChildren(list, alerts.map((a) => alertRow(a, onDeleted, options)));
  return [list, empty];
}

/** The dialog of one widget: set a new alert on it, see and delete mine there. */
export async function openAlertDialog({ dashboardId, widgetId, widgetTitle, result }) {
  const columns = numericColumns(result);
  const column = select("alert-column", "Column",
    [[FIRST_NUMBER, columns.length ? `${columns[0]} (the first number column)` : "the first number column"],
      ...columns.slice(1).map((c) => [c, c])], FIRST_NUMBER);
  const aggregate = select("alert-aggregate", "Which value", AGGREGATES, "last");
  const op = select("alert-op", "Condition", OPS, ">");
  const threshold = h("input", { class: "text-input", testid: "alert-threshold", type: "number", step: "any",
    required: true, inputmode: "decimal", "aria-label": "Threshold" });
  const label = h("input", { class: "text-input", testid: "alert-label", maxlength: "200", "aria-label": "Name",
    placeholder: widgetTitle || "" });
  const syncColumn = () => { column.disabled = aggregate.value === "count"; };
  aggregate.addEventListener("change", syncColumn);
  const mine = h("div", { class: "alert-mine" }, h("p", { class: "small muted" }, "Loading your alerts…"));
  api.listAlerts().then((alerts) => {
    const here = alerts.filter((a) => a.dashboard_id === dashboardId && a.widget_id === widgetId);
    replaceChildren(mine, h("h3", { class: "panel-title" }, "Your alerts on this widget"),
      alertList(here, "None yet."));
  }).catch((err) => replaceChildren(mine, h("p", { class: "form-error small" }, `Your alerts could not be loaded: ${err.message}`)));
  await openDialog({
    title: `Notify me: ${widgetTitle || "widget"}`, testid: "alert-dialog",
    body: [
      h("p", { class: "small muted" }, "You get a notification once each time a refresh crosses the threshold, not on every refresh while it stays there."),
      h("div", { class: "alert-form" },
        h("label", { class: "field" }, h("span", {}, "When the value of"), column),
        h("label", { class: "field" }, h("span", {}, "taken as"), aggregate),
        h("label", { class: "field" }, h("span", {}, "is"), op),
        h("label", { class: "field" }, h("span", {}, "Threshold"), threshold)),
      h("label", { class: "field" }, h("span", {}, "Name (optional)"), label),
      permissionHint(),
      mine,
    ],
    actions: [{ label: "Notify me", primary: true, submit: true, testid: "alert-submit", onClick: async () => {
      const value = Number(threshold.value);
      if (threshold.value.trim() === "" || !Number.isFinite(value)) throw new Error("Give the threshold as a number.");
      askNotificationPermission(); // still within the click: browsers only ask on a user's gesture
      await api.createAlert({
        dashboard_id: dashboardId, widget_id: widgetId, op: op.value, threshold: value,
        column: column.value === FIRST_NUMBER || aggregate.value === "count" ? null : column.value,
        aggregate: aggregate.value, label: label.value.trim() || null,
      });
    } }],
  });
}

/** Every alert of mine, with delete (from the notification panel). */
export async function openAlertsList() {
  const body = h("div", {}, h("p", { class: "small muted" }, "Loading…"));
  const dialog = openDialog({ title: "Your alerts", testid: "alerts-list-dialog", body: [body] });
  try {
    const alerts = await api.listAlerts();
    replaceChildren(body, alertList(alerts, "No alerts. Use the bell on a dashboard widget to add one.", { showWhere: true }));
  } catch (err) {
    replaceChildren(body, h("p", { class: "form-error" }, `Your alerts could not be loaded: ${err.message}`));
  }
  return dialog;
}
