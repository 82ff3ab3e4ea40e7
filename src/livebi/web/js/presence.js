// People on a dashboard: a colour per user, initials avatars, and the members list kept from the
// `presence` op reply and the channel's coalesced presence publications (changes / count / members).

import { h } from "./dom.js";

// Colours with enough contrast for white initials and a 2 px outline on white.
const PALETTE = ["#3558e6", "#c2410c", "#0f766e", "#9333ea", "#be123c", "#4d7c0f", "#0369a1", "#a16207", "#7c3aed", "#15803d"];

/** The same colour for the same user on every screen (a hash of the user id). */
export function colorFor(userId) {
  let hash = 0;
  for (const ch of String(userId || "")) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

/** "alice" -> "A", "Bob Stone" -> "BS", "jean-luc" -> "JL". */
export function initials(name) {
  const parts = String(name || "?").split(/[\s._-]+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[1][0] : (parts[0] || "?").slice(0, 1);
  return letters.toUpperCase();
}

/** A valid "#rrggbb" or null (presence state comes from other clients: never trust it). */
export function safeColor(value) {
  return typeof value === "string" && /^#[0-9a-f]{6}$/i.test(value) ? value : null;
}

export function avatar({ userId, username, you = false, editing = false }) {
  const color = colorFor(userId);
  return h("span", {
    class: `avatar${editing ? " editing" : ""}`, testid: "presence-avatar", dataset: { userId: userId || "", username: username || "" },
    title: `${username}${you ? " (you)" : ""}${editing ? " — editing" : ""}`, role: "listitem",
    style: `--avatar-color: ${color}`,
  }, h("span", { "aria-hidden": "true" }, initials(username)),
  h("span", { class: "visually-hidden" }, `${username}${you ? " (you)" : ""}`));
}

/** Members present on a channel, by connection (or only their number, for a crowd). */
export class PresenceRoster {
  constructor() {
    this.byConn = new Map();
    this.count = 0;
    this.countsOnly = false;
  }

  /** Replace everything with the `presence` op reply (`members`, `count`, `counts_only`). */
  reset(members, { count, counts_only: countsOnly = false } = {}) {
    this.byConn = new Map((members || []).map((m) => [m.conn_id, m]));
    this.count = typeof count === "number" ? count : this.byConn.size;
    this.countsOnly = Boolean(countsOnly);
  }

  /** Apply a presence publication's data: one coalesced `changes` (left, then joined and
   * updated), a `count` (a crowd: the server no longer lists members) or a `members` snapshot. */
  apply(data) {
    if (!data) return;
    if (typeof data.count === "number") this.count = data.count;
    if (data.event === "count") {
      this.countsOnly = true;
      this.byConn = new Map();
    } else if (data.event === "members") {
      this.reset(data.members, data);
    } else if (data.event === "changes") {
      for (const connId of data.left || []) this.byConn.delete(connId);
      for (const m of [...(data.joined || []), ...(data.updated || [])]) {
        if (m && m.conn_id) this.byConn.set(m.conn_id, m);
      }
    }
  }

  /** One entry per user (a person with two tabs is one avatar), in order of arrival. */
  people() {
    const users = new Map();
    for (const m of [...this.byConn.values()].sort((a, b) => a.joined_at - b.joined_at)) {
      const known = users.get(m.user_id);
      const editing = (m.state && typeof m.state.editing === "string" && m.state.editing) || null;
      if (known) known.editing = known.editing || editing;
      else users.set(m.user_id, { userId: m.user_id, username: m.username, editing });
    }
    return [...users.values()];
  }

  /** widget id -> [{userId, username, color}] of people (other than `meId`) editing it. */
  editors(meId) {
    const out = new Map();
    for (const m of this.byConn.values()) {
      const widget = m.state && typeof m.state.editing === "string" ? m.state.editing : null;
      if (!widget || m.user_id === meId) continue;
      const list = out.get(widget) || [];
      if (!list.some((p) => p.userId === m.user_id)) {
        list.push({ userId: m.user_id, username: m.username, color: safeColor(m.state.color) || colorFor(m.user_id) });
      }
      out.set(widget, list);
    }
    return out;
  }
}
