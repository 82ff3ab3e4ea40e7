"""The dashboard UI's pure modules, run in a real browser (Debian's chromium) as the page loads
them: version ordering and gaps, inverse ops and undo conflicts (dashstate.js), grid geometry
for keyboard and pointer moves (grid.js), column labels and money (format.js), which
suggestions are questions (card.js), hash routes (router.js), the presence roster (presence.js).

The page is /health (same origin, no app): the modules are imported by the test's own function.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

RUN = """
async () => {
  const S = await import("/static/js/dashstate.js");
  const G = await import("/static/js/grid.js");
  const F = await import("/static/js/format.js");
  const C = await import("/static/js/card.js");
  const R = await import("/static/js/router.js");
  const out = {};
  const widget = (id, extra = {}) => ({ id, title: id, question: "q", sql: null, warehouse: null,
    chart: { type: null, settings: {} }, x: 0, y: 0, w: 6, h: 4, refresh: {}, ...extra });
  const upd = (version, update_type, data, user_id = "u_a") => ({ dashboard_id: "d_1", version, update_type, data, user_id });

  // Version order: 3 before 2 is buffered (a gap), 2 unblocks both; duplicates are ignored.
  const m = new S.DashboardModel({ id: "d_1", title: "T", description: "", version: 1, role: "editor",
    widgets: [widget("w_1")] });
  const r3 = m.receive(upd(3, "resize_widget", { widget_id: "w_1", w: 4, h: 2 }));
  const r2 = m.receive(upd(2, "move_widget", { widget_id: "w_1", x: 3, y: 1 }));
  const dup = m.receive(upd(2, "move_widget", { widget_id: "w_1", x: 9, y: 9 }));
  out.order = { gapAt3: r3.gap, appliedAt3: r3.applied.length, appliedAt2: r2.applied.map((u) => u.version),
    gapAfter: r2.gap, dup: dup.applied.length, version: m.version, w1: m.widget("w_1") };

  // Members / sharing / deleted carry the current version without bumping it: applied at once.
  const sharing = m.receive(upd(3, "sharing", { public: true }));
  out.unversioned = { applied: sharing.applied.length, public: m.dashboard.public, version: m.version };

  // Inverses: computed from the state each version was applied to.
  out.inverses = { 2: m.inverses.get(2).op, 3: m.inverses.get(3).op };

  // Snapshot after a gap: buffered updates the snapshot covers are dropped, later ones applied.
  m.receive(upd(6, "update_widget", { widget_id: "w_1", title: "six" }));
  const reset = m.reset({ id: "d_1", title: "T", description: "", version: 5, role: "editor",
    widgets: [widget("w_1", { title: "five" })] });
  out.reset = { applied: reset.applied.map((u) => u.version), version: m.version, title: m.widget("w_1").title };

  // Undo: my edit at version 7; Bob changes the same widget at 8 -> conflict, not clobbered.
  const undo = new S.UndoHistory();
  m.receive(upd(7, "update_widget", { widget_id: "w_1", title: "mine" }, "u_me"));
  undo.record([7], "rename widget");
  const clean = undo.plan(m, "u_me");
  m.receive(upd(8, "move_widget", { widget_id: "w_1", x: 1, y: 1 }, "u_bob"));
  const blocked = undo.plan(m, "u_me", (id) => (id === "u_bob" ? "bob" : id));
  out.undo = { clean: clean.ops, conflict: blocked.conflict };

  // Undo a removal: the restore gets a new id, older entries follow it.
  const m2 = new S.DashboardModel({ id: "d_2", title: "T", version: 0, role: "owner", widgets: [widget("w_a", { x: 2 })] });
  const u2 = new S.UndoHistory();
  m2.receive(upd(1, "move_widget", { widget_id: "w_a", x: 4, y: 0 }, "u_me"));
  u2.record([1], "move");
  m2.receive(upd(2, "remove_widget", { widget_id: "w_a" }, "u_me"));
  u2.record([2], "remove");
  const restore = u2.plan(m2, "u_me");
  const readd = restore.ops[0];
  m2.receive(upd(3, "add_widget", { ...readd.widget, id: "w_b" }, "u_me"));
  u2.done(restore.entry, restore.ops, { applied: [{ version: 3, update_type: "add_widget", data: { id: "w_b" } }] });
  const moveBack = u2.plan(m2, "u_me");
  out.removal = { restoreType: readd.type, restoredX: readd.widget.x, wire: S.wireOp(readd), moveBack: moveBack.ops };

  // Grid geometry.
  const rect = { x: 0, y: 0, w: 6, h: 4 };
  out.grid = {
    right: G.keyStep(rect, "ArrowRight"), leftAtEdge: G.keyStep(rect, "ArrowLeft"),
    grow: G.keyStep(rect, "ArrowRight", { resize: true }), shrinkH: G.keyStep(rect, "ArrowUp", { resize: true }),
    growAtEdge: G.keyStep({ x: 6, y: 0, w: 6, h: 4 }, "ArrowRight", { resize: true }),
    clamp: G.clampRect({ x: 11, y: -2, w: 20, h: 99 }),
    drag: G.dragRect(rect, { dx: 240, dy: 170, cellWidth: 100, cellHeight: 84, mode: "move" }),
    dragResize: G.dragRect({ x: 8, y: 0, w: 2, h: 2 }, { dx: 900, dy: 0, cellWidth: 100, cellHeight: 84, mode: "resize" }),
    free: G.freeSpot([{ x: 0, y: 0, w: 6, h: 4 }, { x: 6, y: 2, w: 6, h: 5 }]),
    freeRight: G.freeSpot([{ x: 0, y: 0, w: 6, h: 4 }]),
    freeBelow: G.freeSpot([{ x: 0, y: 0, w: 12, h: 3 }]),
    place: G.placement({ x: 2, y: 3, w: 4, h: 2 }),
    order: G.readingOrder([{ id: "b", x: 6, y: 0 }, { id: "c", x: 0, y: 4 }, { id: "a", x: 0, y: 0 }]).map((w) => w.id),
  };

  out.format = {
    labels: ["total_revenue", "avg_order_usd", "customerId", "num_orders"].map(F.columnLabel),
    money: F.formatValue(38613804.5, { money: true }), moneyShort: F.formatValue(38613804.5, { money: true, compact: true }),
    small: F.formatValue(12.5, { money: true }), count: F.formatValue(1234567), pct: F.formatValue(12.345, { percent: true }),
    moneyCol: F.isMoneyName("total_revenue"), countCol: F.isMoneyName("orders_count"),
  };

  out.suggestions = {
    advice: C.askableSuggestion("add a filter or a shorter period", "revenue by customer"),
    fewer: C.askableSuggestion("ask for fewer groups", "revenue by customer"),
    example: C.askableSuggestion("Revenue by region", "revnue by region"),
    didYouMean: C.askableSuggestion('Did you mean "revenue" instead of "revnue"?', "revnue by region"),
    sqlName: C.askableSuggestion("revenue", null),
  };

  out.routes = ["", "#/", "#/dashboards", "#/dashboards/d_0123456789ab", "#/dashboards/../x", "#/nope"]
    .map((hash) => R.parseRoute(hash));
  out.hash = R.routeHash({ name: "dashboard", id: "d_1" });
  return out;
}
"""


def test_dashboard_modules(open_page, demo_server):
    page = open_page(demo_server, "/health")
    out = page.evaluate(RUN)

    order = out["order"]
    assert order["gapAt3"] is True and order["appliedAt3"] == 0
    assert order["appliedAt2"] == [2, 3] and order["gapAfter"] is False
    assert order["dup"] == 0 and order["version"] == 3
    assert (order["w1"]["x"], order["w1"]["y"], order["w1"]["w"], order["w1"]["h"]) == (3, 1, 4, 2)
    assert out["unversioned"] == {"applied": 1, "public": True, "version": 3}
    assert out["inverses"]["2"] == {"type": "move_widget", "widget_id": "w_1", "x": 0, "y": 0}
    assert out["inverses"]["3"] == {"type": "resize_widget", "widget_id": "w_1", "w": 6, "h": 4}
    assert out["reset"] == {"applied": [6], "version": 6, "title": "six"}

    assert out["undo"]["clean"] == [{"type": "update_widget", "widget_id": "w_1", "fields": {"title": "six"}}]
    assert out["undo"]["conflict"] == "Not undone: bob changed that widget since."

    removal = out["removal"]
    assert removal["restoreType"] == "add_widget" and removal["restoredX"] == 4
    assert "replaces" not in removal["wire"] and "id" not in removal["wire"]["widget"]
    assert removal["moveBack"] == [{"type": "move_widget", "widget_id": "w_b", "x": 2, "y": 0}]

    grid = out["grid"]
    assert grid["right"] == {"x": 1, "y": 0, "w": 6, "h": 4}
    assert grid["leftAtEdge"] is None
    assert grid["grow"] == {"x": 0, "y": 0, "w": 7, "h": 4}
    assert grid["shrinkH"] == {"x": 0, "y": 0, "w": 6, "h": 3}
    assert grid["growAtEdge"] is None
    assert grid["clamp"] == {"x": 0, "y": 0, "w": 12, "h": 24}
    assert grid["drag"] == {"x": 2, "y": 2, "w": 6, "h": 4}
    assert grid["dragResize"] == {"x": 8, "y": 0, "w": 4, "h": 2}
    assert grid["free"] == {"x": 0, "y": 4, "w": 6, "h": 4}
    assert grid["freeRight"] == {"x": 6, "y": 0, "w": 6, "h": 4}
    assert grid["freeBelow"] == {"x": 0, "y": 3, "w": 6, "h": 4}
    assert grid["place"] == {"gridColumn": "3 / span 4", "gridRow": "4 / span 2"}
    assert grid["order"] == ["a", "b", "c"]

    fmt = out["format"]
    assert fmt["labels"] == ["Total revenue", "Average order USD", "Customer ID", "Number of orders"]
    assert fmt["money"] == "$38,613,804.50" and fmt["moneyShort"] == "$38.6M" and fmt["small"] == "$12.50"
    assert fmt["count"] == "1,234,567" and fmt["pct"] == "12.3%"
    assert fmt["moneyCol"] is True and fmt["countCol"] is False

    sug = out["suggestions"]
    assert sug["advice"] is None and sug["fewer"] is None and sug["sqlName"] is None
    assert sug["example"] == "Revenue by region"
    assert sug["didYouMean"] == "revenue by region"

    names = [(r["name"], r.get("id")) for r in out["routes"]]
    assert names == [("conversation", None), ("conversation", None), ("dashboards", None),
                     ("dashboard", "d_0123456789ab"), ("conversation", None), ("conversation", None)]
    assert out["hash"] == "#/dashboards/d_1"


ROSTER = """
async () => {
  const P = await import("/static/js/presence.js");
  const m = (conn, user, name, joined, state = {}) => ({ conn_id: conn, user_id: user, username: name, state, joined_at: joined });
  const r = new P.PresenceRoster();
  const people = () => r.people().map((p) => `${p.username}${p.editing ? ":" + p.editing : ""}`);
  const out = {};
  r.reset([m("c1", "u1", "alice", 1)], { count: 1, counts_only: false });
  // One coalesced update: bob joins with two tabs, carol joins and edits, alice's tab leaves.
  r.apply({ event: "changes", count: 4, left: ["c1"],
            joined: [m("c2", "u2", "bob", 2), m("c3", "u2", "bob", 3), m("c4", "u3", "carol", 4, { editing: "w1" })], updated: [] });
  out.afterChanges = { people: people(), count: r.count, editors: [...r.editors("u2").entries()].map(([w, l]) => [w, l.map((p) => p.username)]) };
  r.apply({ event: "changes", count: 3, left: [], joined: [], updated: [m("c4", "u3", "carol", 4)] });
  out.afterUpdate = people();
  r.apply({ event: "count", count: 250 });
  out.crowd = { people: people(), count: r.count, countsOnly: r.countsOnly };
  r.apply({ event: "members", count: 1, members: [m("c9", "u9", "dave", 9)] });
  out.back = { people: people(), count: r.count, countsOnly: r.countsOnly };
  return out;
}
"""


def test_presence_roster_applies_coalesced_updates(open_page, demo_server):
    page = open_page(demo_server, "/health")
    out = page.evaluate(ROSTER)
    assert out["afterChanges"] == {"people": ["bob", "carol:w1"], "count": 4, "editors": [["w1", ["carol"]]]}
    assert out["afterUpdate"] == ["bob", "carol"]
    assert out["crowd"] == {"people": [], "count": 250, "countsOnly": True}
    assert out["back"] == {"people": ["dave"], "count": 1, "countsOnly": False}
