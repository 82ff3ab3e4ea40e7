// The dashboards list: mine, shared with me, public; create one (title), delete mine.

import * as api from "./api.js";
import { h, replaceChildren, timeAgo } from "./dom.js";
import { openDialog } from "./dialogs.js";
import { navigate } from "./router.js";

/** Which section a dashboard of the list belongs to, for the user `meId`. */
export function sectionOf(d, meId) {
  if (d.role === "owner" || (d.owner && d.owner.id === meId)) return "mine";
  if (d.role === "editor" || !d.public) return "shared";
  return "public";
}

const SECTIONS = [
  ["mine", "My dashboards", "You have no dashboards yet: create one, or pin an answer."],
  ["shared", "Shared with me", "Nobody has shared a dashboard with you yet."],
  ["public", "Public on this server", "No public dashboards."],
];

export class DashboardList {
  constructor({ me, onError }) {
    this.me = me;
    this.onError = onError;
    this.titleInput = h("input", { class: "text-input", testid: "new-dashboard-title", maxlength: "200",
      placeholder: "New dashboard title", "aria-label": "New dashboard title", required: true });
    this.error = h("p", { class: "form-error", role: "alert", hidden: true });
    this.sections = h("div", { class: "dash-sections" });
    const form = h("form", { class: "dash-create", testid: "create-dashboard-form", novalidate: true },
      this.titleInput,
      h("button", { type: "submit", class: "btn btn-primary", testid: "create-dashboard" }, "Create dashboard"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.create();
    });
    this.el = h("section", { class: "dash-list", testid: "dashboards-page", "aria-labelledby": "dash-list-title" },
      h("h1", { id: "dash-list-title" }, "Dashboards"), form, this.error, this.sections);
  }

  mount(container) {
    replaceChildren(container, this.el);
    document.title = "Dashboards — livebi";
    return this.refresh();
  }

  async refresh() {
    let list;
    try {
      list = await api.listDashboards();
    } catch (err) {
      if (!this.onError(err)) this.showError(`The dashboards could not be loaded: ${err.message}`);
      return;
    }
    replaceChildren(this.sections, SECTIONS.map(([key, title, empty]) => {
      const items = list.filter((d) => sectionOf(d, this.me.id) === key);
      return h("section", { class: "dash-section", testid: `dashboards-${key}` },
        h("h2", {}, title),
        items.length ? h("ul", { class: "dash-cards" }, items.map((d) => this.item(d)))
          : h("p", { class: "muted small" }, empty));
    }));
  }

  item(d) {
    const meta = [d.owner && d.owner.id !== this.me.id ? `by ${d.owner.username}` : null,
      `${d.widget_count || 0} widget${d.widget_count === 1 ? "" : "s"}`, d.role, d.public ? "public" : null,
      d.updated_at ? `updated ${timeAgo(d.updated_at)}` : null].filter(Boolean).join(" · ");
    return h("li", { class: "dash-card", testid: "dashboard-item", dataset: { dashboardId: d.id } },
      h("a", { href: `#/dashboards/${encodeURIComponent(d.id)}`, class: "dash-card-link", testid: "dashboard-link" }, d.title),
      d.description ? h("p", { class: "dash-card-desc muted small" }, d.description) : null,
      h("p", { class: "dash-card-meta small muted" }, meta),
      d.role === "owner"
        ? h("button", { type: "button", class: "btn btn-ghost btn-small dash-delete", testid: "delete-dashboard",
            "aria-label": `Delete ${d.title}`, on: { click: () => this.remove(d) } }, "Delete")
        : null);
  }

  showError(message) {
    this.error.textContent = message;
    this.error.hidden = !message;
  }

  async create() {
    const title = this.titleInput.value.trim();
    if (!title) {
      this.showError("Give the dashboard a title.");
      this.titleInput.focus();
      return;
    }
    this.showError("");
    try {
      const created = await api.createDashboard(title);
      this.titleInput.value = "";
      navigate({ name: "dashboard", id: created.id });
    } catch (err) {
      if (!this.onError(err)) this.showError(err.message);
    }
  }

  remove(d) {
    openDialog({
      title: "Delete dashboard?", testid: "confirm-delete",
      body: [h("p", {}, `"${d.title}" and its widgets will be deleted for everyone.`)],
      actions: [
        { label: "Cancel", onClick: () => true },
        { label: "Delete", primary: true, testid: "confirm-delete-button", onClick: async () => {
          await api.deleteDashboard(d.id);
          await this.refresh();
        } },
      ],
    });
  }
}
