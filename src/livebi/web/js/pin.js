// "Pin to dashboard" and "Share" for an answer card.

import * as api from "./api.js";
import { h } from "./dom.js";
import { openDialog } from "./dialogs.js";
import { freeSpot } from "./grid.js";

/** The widget an answer becomes: its question (or SQL), warehouse and chart type. */
export function widgetFromCard(card) {
  const result = card.result || {};
  const question = result.question || card.question || null;
  const sql = question ? (result.sql || card.sql || null) : (card.sql || result.sql || null);
  const chartType = (result.chart && result.chart.type) || null;
  return {
    title: ((result.chart && result.chart.title) || question || "SQL query").slice(0, 200),
    question, sql,
    warehouse: result.warehouse || card.warehouse || null,
    chart: { type: chartType, settings: {} },
  };
}

/**
 * Choose a dashboard I may edit (or create one) and add the card as a widget there.
 * `client` sends the edit; `onPinned(dashboard)` after success.
 */
export async function pinDialog({ card, client, onPinned }) {
  let dashboards = [];
  try {
    dashboards = (await api.listDashboards()).filter((d) => d.role === "owner" || d.role === "editor");
  } catch (err) {
    console.warn("livebi: dashboards", err);
  }
  const NEW = "__new__";
  const select = h("select", { class: "text-input", testid: "pin-dashboard-select", "aria-label": "Dashboard" },
    dashboards.map((d) => h("option", { value: d.id }, d.title)),
    h("option", { value: NEW }, "New dashboard…"));
  const title = h("input", { class: "text-input", testid: "pin-new-title", maxlength: "200", "aria-label": "New dashboard title",
    placeholder: "New dashboard title" });
  const newField = h("label", { class: "field" }, h("span", {}, "Title of the new dashboard"), title);
  const sync = () => { newField.hidden = select.value !== NEW; };
  select.addEventListener("change", sync);
  if (!dashboards.length) select.value = NEW;
  sync();
  await openDialog({
    title: "Pin to dashboard", testid: "pin-dialog",
    body: [h("label", { class: "field" }, h("span", {}, "Dashboard"), select), newField],
    actions: [{ label: "Pin", primary: true, submit: true, testid: "pin-submit", onClick: async () => {
      let target;
      if (select.value === NEW) {
        const name = title.value.trim();
        if (!name) throw new Error("Give the new dashboard a title.");
        target = await api.createDashboard(name);
      } else {
        target = await api.getDashboard(select.value);
      }
      const widget = { ...widgetFromCard(card), ...freeSpot(target.widgets || []) };
      await client.request("edit", { dashboard_id: target.id, ops: [{ type: "add_widget", widget }] });
      onPinned(target);
    } }],
  });
}

/** Send the card's answer to usernames typed in a small dialog (the `share` op). */
export async function shareDialog({ card, client, onShared }) {
  const names = h("input", { class: "text-input", testid: "share-usernames", autocomplete: "off", autocapitalize: "none",
    spellcheck: "false", "aria-label": "Usernames, separated by commas", placeholder: "alice, bob" });
  await openDialog({
    title: "Share this answer", testid: "share-dialog",
    body: [h("label", { class: "field" }, h("span", {}, "Send to (usernames, separated by commas)"), names),
      h("p", { class: "small muted" }, "They get a notification and can open the answer and pin it.")],
    actions: [{ label: "Share", primary: true, submit: true, testid: "share-submit", onClick: async () => {
      const usernames = [...new Set(names.value.split(/[\s,;]+/).map((n) => n.trim()).filter(Boolean))];
      if (!usernames.length) throw new Error("Type at least one username.");
      await client.request("share", { query_id: card.queryId, usernames });
      onShared(usernames);
    } }],
  });
  // openDialog focuses the first control itself (showModal); the field is the first input.
}
