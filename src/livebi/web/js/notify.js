// Notifications on `user:<my id>`: answers other people shared with me (`shared_query_result`)
// and my alerts that fired (`notification` with kind "alert"). Each one shows a toast and adds to
// the bell's count; the bell opens the list; opening a share shows the answer as a card
// (pinnable), opening an alert its dashboard. Alerts also show as browser notifications when
// the user allowed them (alerts.js).

import { h, replaceChildren, timeAgo } from "./dom.js";
import { browserNotification, openAlertsList } from "./alerts.js";
import { navigate } from "./router.js";

const TOAST_MS = 6000;
const KEPT = 50;

export class Notifications {
  /**
   * @param {object} o
   * @param {HTMLButtonElement} o.bell
   * @param {HTMLElement} o.badge  the count on the bell
   * @param {HTMLElement} o.panel  the list's popover
   * @param {HTMLElement} o.toasts  the live region for toasts
   * @param {function(object):void} o.onOpen  open one shared result
   */
  constructor({ bell, badge, panel, toasts, onOpen }) {
    Object.assign(this, { bell, badge, panel, toasts, onOpen });
    this.items = [];
    this.unread = 0;
    bell.addEventListener("click", () => this.toggle());
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        this.toggle(false);
        bell.focus();
      }
    });
    document.addEventListener("pointerdown", (event) => {
      if (!panel.hidden && !panel.contains(event.target) && !bell.contains(event.target)) this.toggle(false);
    });
    this.render();
  }

  /** A `shared_query_result` publication's data arrived. */
  add(shared) {
    if (!shared || !shared.query_id || this.items.some((i) => i.query_id === shared.query_id && i.shared_at === shared.shared_at)) return;
    this.items.unshift({ ...shared, read: false });
    this.items.length = Math.min(this.items.length, KEPT);
    this.unread += 1;
    this.render();
    this.toast(shared);
  }

  /** A `notification` publication's data arrived (kind "alert": one of my alerts fired). */
  addAlert(note) {
    if (!note || note.kind !== "alert" || !note.alert_id) return;
    if (this.items.some((i) => i.kind === "alert" && i.alert_id === note.alert_id && i.timestamp === note.timestamp)) return;
    const item = { ...note, read: false };
    this.items.unshift(item);
    this.items.length = Math.min(this.items.length, KEPT);
    this.unread += 1;
    this.render();
    this._toast([h("strong", {}, note.title || "Alert"), ` ${note.message || ""}`], item, "toast toast-alert");
    browserNotification(note, () => this.open(item));
  }

  clear() {
    this.items = [];
    this.unread = 0;
    this.toggle(false);
    this.toasts.replaceChildren();
    this.render();
  }

  who(shared) {
    return (shared.shared_by && shared.shared_by.username) || "Someone";
  }

  toast(shared) {
    this._toast([`${this.who(shared)} shared `, h("q", {}, shared.question || "an answer"), " with you"], shared);
  }

  /** A toast saying `text` (nodes) whose "Open" opens `item`. */
  _toast(text, item, className = "toast") {
    const el = h("div", { class: className, testid: "toast", role: "status" },
      h("span", { class: "toast-text" }, text),
      h("button", { type: "button", class: "btn btn-ghost btn-small", testid: "toast-open",
        on: { click: () => { el.remove(); this.open(item); } } }, "Open"),
      h("button", { type: "button", class: "btn btn-ghost btn-icon", "aria-label": "Dismiss", on: { click: () => el.remove() } }, "×"));
    this.toasts.append(el);
    setTimeout(() => el.remove(), TOAST_MS);
  }

  open(shared) {
    const item = shared.kind === "alert" ? shared : this.items.find((i) => i.query_id === shared.query_id);
    if (item && !item.read) {
      item.read = true;
      this.unread = Math.max(0, this.unread - 1);
    }
    this.toggle(false);
    this.render();
    if (shared.kind === "alert") navigate({ name: "dashboard", id: shared.dashboard_id });
    else this.onOpen(shared);
  }

  toggle(open = this.panel.hidden) {
    this.panel.hidden = !open;
    this.bell.setAttribute("aria-expanded", String(open));
    if (open) {
      const first = this.panel.querySelector("button");
      if (first) first.focus();
    }
  }

  render() {
    this.badge.textContent = this.unread ? String(this.unread) : "";
    this.badge.hidden = this.unread === 0;
    this.bell.setAttribute("aria-label", this.unread ? `Notifications, ${this.unread} new` : "Notifications");
    replaceChildren(this.panel,
      h("h2", { class: "panel-title" }, "Notifications"),
      this.items.length
        ? h("ul", { class: "notif-list" }, this.items.map((item) => h("li", {},
            h("button", { type: "button", class: `notif${item.read ? "" : " unread"}${item.kind === "alert" ? " notif-alert" : ""}`,
              testid: "notification", dataset: { kind: item.kind || "share" }, on: { click: () => this.open(item) } },
              item.kind === "alert"
                ? [h("span", { class: "notif-text" }, item.title || "Alert"),
                  h("span", { class: "notif-meta small muted" }, `${item.message || ""}${item.timestamp ? ` · ${timeAgo(item.timestamp)}` : ""}`)]
                : [h("span", { class: "notif-text" }, item.question || "(SQL)"),
                  h("span", { class: "notif-meta small muted" }, `from ${this.who(item)}${item.shared_at ? ` · ${timeAgo(item.shared_at)}` : ""}`)]))))
        : h("p", { class: "muted small" }, "Nothing yet. Answers shared with you and your alerts appear here."),
      h("button", { type: "button", class: "btn btn-ghost btn-small notif-manage", testid: "manage-alerts",
        on: { click: () => { this.toggle(false); openAlertsList(); } } }, "Your alerts…"));
  }
}
