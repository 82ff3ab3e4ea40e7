// Notifications: answers other people shared with me (`shared_query_result` on `user:<my id>`).
// Each one shows a toast and adds to the bell's count; the bell opens the list; opening an
// item shows the shared answer as a card (pinnable).

import { h, replaceChildren, timeAgo } from "./dom.js";

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
    const el = h("div", { class: "toast", testid: "toast", role: "status" },
      h("span", { class: "toast-text" }, `${this.who(shared)} shared `, h("q", {}, shared.question || "an answer"), " with you"),
      h("button", { type: "button", class: "btn btn-ghost btn-small", testid: "toast-open",
        on: { click: () => { el.remove(); this.open(shared); } } }, "Open"),
      h("button", { type: "button", class: "btn btn-ghost btn-icon", "aria-label": "Dismiss", on: { click: () => el.remove() } }, "×"));
    this.toasts.append(el);
    setTimeout(() => el.remove(), TOAST_MS);
  }

  open(shared) {
    const item = this.items.find((i) => i.query_id === shared.query_id);
    if (item && !item.read) {
      item.read = true;
      this.unread = Math.max(0, this.unread - 1);
    }
    this.toggle(false);
    this.render();
    this.onOpen(shared);
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
      h("h2", { class: "panel-title" }, "Shared with you"),
      this.items.length
        ? h("ul", { class: "notif-list" }, this.items.map((item) => h("li", {},
            h("button", { type: "button", class: `notif${item.read ? "" : " unread"}`, testid: "notification",
              on: { click: () => this.open(item) } },
              h("span", { class: "notif-text" }, item.question || "(SQL)"),
              h("span", { class: "notif-meta small muted" }, `from ${this.who(item)}${item.shared_at ? ` · ${timeAgo(item.shared_at)}` : ""}`)))))
        : h("p", { class: "muted small" }, "Nothing yet. When someone shares an answer with you, it appears here."));
  }
}
