// The members dialog: who may see and edit a dashboard. The owner adds people by username as
// editor or viewer, changes or removes them, and shares read-only with everyone (public);
// everyone else sees the list.

import * as api from "./api.js";
import { h, replaceChildren } from "./dom.js";
import { openDialog } from "./dialogs.js";
import { avatar } from "./presence.js";

const ROLES = [["editor", "Editor (can edit)"], ["viewer", "Viewer (read only)"]];

function roleSelect(value, label, onChange) {
  const select = h("select", { class: "role-select", "aria-label": label, testid: "member-role" },
    ROLES.map(([role, text]) => h("option", { value: role, selected: role === value }, text)));
  select.value = value;
  if (onChange) select.addEventListener("change", () => onChange(select.value, select));
  return select;
}

/**
 * @param {object} o
 * @param {object} o.dashboard  the snapshot (id, title, owner, public)
 * @param {boolean} o.isOwner
 * @param {function(Array):void} [o.onChange]  the members list after each change
 * @returns {{closed: Promise, refresh: function():Promise}}
 */
export function openMembersDialog({ dashboard, isOwner, onChange = () => {} }) {
  const list = h("ul", { class: "member-list", testid: "member-list" });
  const status = h("p", { class: "small muted", role: "status" });
  const publicBox = h("input", { type: "checkbox", testid: "public-toggle", disabled: !isOwner });
  const error = (err) => { status.textContent = err.message || String(err); };

  function render({ members = [], public: isPublic = false }) {
    publicBox.checked = Boolean(isPublic);
    onChange(members);
    replaceChildren(list, h("li", { class: "member", testid: "member" },
      avatar({ userId: dashboard.owner.id, username: dashboard.owner.username }),
      h("span", { class: "member-name" }, dashboard.owner.username),
      h("span", { class: "badge" }, "owner")),
    members.filter((m) => m.role !== "owner").map((m) => h("li", { class: "member", testid: "member", dataset: { username: m.user.username } },
      avatar({ userId: m.user.id, username: m.user.username }),
      h("span", { class: "member-name" }, m.user.username),
      isOwner
        ? [roleSelect(m.role, `Role of ${m.user.username}`, (role, select) =>
            api.setMember(dashboard.id, m.user.username, role).then(render, (err) => { select.value = m.role; error(err); })),
          h("button", { type: "button", class: "btn btn-ghost btn-small", testid: "member-remove",
            "aria-label": `Remove ${m.user.username}`,
            on: { click: () => api.removeMember(dashboard.id, m.user.username).then(render, error) } }, "Remove")]
        : h("span", { class: "badge" }, m.role))));
  }

  const refresh = () => api.dashboardMembers(dashboard.id).then(render, error);

  publicBox.addEventListener("change", () => {
    const wanted = publicBox.checked;
    api.setPublic(dashboard.id, wanted).then(() => {
      status.textContent = wanted ? "Everyone on this server can now view it." : "Only members can view it now.";
    }, (err) => { publicBox.checked = !wanted; error(err); });
  });

  const body = [list];
  const actions = [];
  if (isOwner) {
    const username = h("input", { class: "text-input", testid: "member-username", autocomplete: "off",
      autocapitalize: "none", spellcheck: "false", "aria-label": "Username", placeholder: "username" });
    const role = roleSelect("editor", "Role of the new member");
    body.push(h("div", { class: "member-add" }, username, role));
    actions.push({ label: "Add", primary: true, submit: true, testid: "member-add", onClick: async () => {
      const name = username.value.trim();
      if (!name) throw new Error("Type a username.");
      render(await api.setMember(dashboard.id, name, role.value));
      username.value = "";
      status.textContent = `${name} added.`;
      return false; // stay open to add more
    } });
  }
  body.push(h("label", { class: "check" }, publicBox, " Anyone on this server can view (read only)"), status);
  const closed = openDialog({ title: `Members of "${dashboard.title}"`, body, actions, testid: "members-dialog" });
  refresh();
  return { closed, refresh };
}
