// A dashboard as the browser holds it, pure (no DOM, no network): the snapshot, updates applied
// in version order (buffered across gaps, which the page answers with a snapshot refetch), the
// inverse of each applied op (for undo) and who last touched each widget (so undo does not
// clobber someone else's later change). Mirrors the server's op application (issue 8
// contract): last writer wins per field; the server's version order is the only order.

const UNVERSIONED = new Set(["members", "sharing", "deleted"]);
const WIDGET_FIELDS = ["title", "question", "sql", "warehouse", "chart", "refresh"];
const INVERSES_KEPT = 500;

const copy = (value) => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

export class DashboardModel {
  /** @param {object} snapshot  `GET /api/dashboards/{id}` (with `role`) */
  constructor(snapshot) {
    this.pending = new Map(); // version -> update waiting for the versions before it
    this.inverses = new Map(); // version -> {op, widgetId} undoing that version
    this.touched = new Map(); // widget id -> {version, userId}
    this.reset(snapshot);
  }

  /** Adopt a snapshot (first load, or after a gap); updates it already contains are dropped. */
  reset(snapshot) {
    const widgets = (snapshot.widgets || []).map(copy);
    this.dashboard = { ...copy(snapshot), widgets };
    this.version = Number(snapshot.version) || 0;
    this.role = snapshot.role || this.role || "viewer";
    this.deleted = false;
    for (const v of [...this.pending.keys()]) if (v <= this.version) this.pending.delete(v);
    return this.drain();
  }

  get id() {
    return this.dashboard.id;
  }

  get widgets() {
    return this.dashboard.widgets;
  }

  widget(id) {
    return this.dashboard.widgets.find((w) => w.id === id) || null;
  }

  get canEdit() {
    return this.role === "owner" || this.role === "editor";
  }

  /**
   * Take one update (a `dashboard_update` publication's data, or an entry of an edit reply
   * with `user_id` added). Returns `{applied: [update...], gap}`: the updates now applied in
   * order (this one and any buffered ones it unblocked), and whether some are still waiting
   * for a missing version (the caller refetches the snapshot then).
   */
  receive(update) {
    if (UNVERSIONED.has(update.update_type)) {
      // Members, sharing and deletion are not edits: they carry the current version without
      // bumping it, and apply as they come.
      this._apply(update);
      return { applied: [update], gap: this.pending.size > 0 };
    }
    const version = Number(update.version);
    if (Number.isFinite(version) && version > this.version && !this.pending.has(version)) {
      this.pending.set(version, update);
    }
    return this.drain();
  }

  drain() {
    const applied = [];
    while (this.pending.has(this.version + 1)) {
      const update = this.pending.get(this.version + 1);
      this.pending.delete(this.version + 1);
      this._apply(update);
      this.version = Number(update.version);
      this.dashboard.version = this.version;
      applied.push(update);
    }
    return { applied, gap: this.pending.size > 0 };
  }

  _apply(update) {
    const data = update.data || {};
    const type = update.update_type;
    const version = Number(update.version);
    const userId = update.user_id || null;
    let inverse = null;
    let widgetId = data.widget_id || null;
    if (type === "add_widget") {
      this.dashboard.widgets.push(copy(data));
      widgetId = data.id;
      inverse = { type: "remove_widget", widget_id: data.id };
    } else if (type === "remove_widget") {
      const index = this.dashboard.widgets.findIndex((w) => w.id === data.widget_id);
      if (index >= 0) {
        const [gone] = this.dashboard.widgets.splice(index, 1);
        const { id, ...rest } = gone;
        inverse = { type: "add_widget", widget: rest, replaces: id };
      }
    } else if (["move_widget", "resize_widget", "update_widget"].includes(type)) {
      const widget = this.widget(data.widget_id);
      if (widget) {
        const fields = Object.keys(data).filter((k) => k !== "widget_id");
        const before = Object.fromEntries(fields.map((k) => [k, copy(widget[k] ?? null)]));
        Object.assign(widget, copy(Object.fromEntries(fields.map((k) => [k, data[k]]))));
        if (type === "move_widget") inverse = { type, widget_id: widget.id, x: before.x, y: before.y };
        else if (type === "resize_widget") inverse = { type, widget_id: widget.id, w: before.w, h: before.h };
        else inverse = { type, widget_id: widget.id, fields: pick(before, WIDGET_FIELDS) };
      }
    } else if (type === "update_dashboard") {
      const before = Object.fromEntries(Object.keys(data).map((k) => [k, copy(this.dashboard[k] ?? "")]));
      Object.assign(this.dashboard, copy(data));
      inverse = { type, fields: before };
    } else if (type === "members") {
      this.dashboard.members = copy(data.members || data);
    } else if (type === "sharing") {
      this.dashboard.public = Boolean(data.public);
    } else if (type === "deleted") {
      this.deleted = true;
    }
    if (widgetId) this.touched.set(widgetId, { version, userId });
    if (inverse) {
      this.inverses.set(version, { op: inverse, widgetId });
      if (this.inverses.size > INVERSES_KEPT) this.inverses.delete(this.inverses.keys().next().value);
    }
  }
}

function pick(object, keys) {
  return Object.fromEntries(Object.entries(object).filter(([k]) => keys.includes(k)));
}

/**
 * One person's undo history: each entry is the versions one of their edits produced. Undo
 * sends the inverse ops (computed by the model when it applied those versions), newest first,
 * unless someone else changed or removed a widget involved since: then it says so instead.
 */
export class UndoHistory {
  constructor({ limit = 50 } = {}) {
    this.limit = limit;
    this.entries = []; // [{versions: [..], label}]
    this.idMap = new Map(); // a widget removed then restored by undo: old id -> new id
  }

  get size() {
    return this.entries.length;
  }

  /** Remember an edit's applied versions (from its reply). */
  record(versions, label = "edit") {
    if (!versions.length) return;
    this.entries.push({ versions: [...versions], label });
    if (this.entries.length > this.limit) this.entries.shift();
  }

  /** A widget id as it is now (undoing a removal gives the widget a new id). */
  currentId(id) {
    let seen = 0;
    while (this.idMap.has(id) && seen++ < 100) id = this.idMap.get(id);
    return id;
  }

  /**
   * What undoing the last entry would take: `{ops, entry}`, or `{conflict: message, entry}`,
   * or null when there is nothing to undo. `nameOf(userId)` names other people.
   */
  plan(model, me, nameOf = (id) => id) {
    const entry = this.entries[this.entries.length - 1];
    if (!entry) return null;
    const newest = Math.max(...entry.versions);
    const ops = [];
    for (const version of [...entry.versions].sort((a, b) => b - a)) {
      const inverse = model.inverses.get(version);
      if (!inverse) return { conflict: "That change is too old to undo here.", entry };
      const op = copy(inverse.op);
      const replaces = op.replaces;
      delete op.replaces;
      if (op.widget_id) op.widget_id = this.currentId(op.widget_id);
      if (op.type !== "add_widget" && op.widget_id) {
        if (!model.widget(op.widget_id)) {
          return { conflict: "Not undone: that widget has been removed since.", entry };
        }
        const touch = model.touched.get(op.widget_id);
        if (touch && touch.version > newest && touch.userId && touch.userId !== me) {
          return { conflict: `Not undone: ${nameOf(touch.userId)} changed that widget since.`, entry };
        }
      }
      ops.push(replaces ? { ...op, replaces } : op);
    }
    return { ops, entry };
  }

  /** The undo was sent and applied: forget the entry; note new ids of restored widgets. */
  done(entry, appliedOps, reply) {
    const index = this.entries.lastIndexOf(entry);
    if (index >= 0) this.entries.splice(index, 1);
    (reply.applied || []).forEach((applied, i) => {
      const sent = appliedOps[i];
      if (applied.update_type === "add_widget" && sent && sent.replaces && applied.data && applied.data.id) {
        this.idMap.set(sent.replaces, applied.data.id);
      }
    });
  }

  /** Give up on an entry that cannot be undone. */
  drop(entry) {
    const index = this.entries.lastIndexOf(entry);
    if (index >= 0) this.entries.splice(index, 1);
  }
}

/** The op as the server wants it (no client-side bookkeeping fields). */
export function wireOp(op) {
  const { replaces, ...rest } = op;
  return rest;
}
