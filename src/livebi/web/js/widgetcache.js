// Which query last answered each dashboard widget, kept in localStorage so a reload or a new tab
// shows the widget's last result at once (fetched by id from `GET /api/queries/{id}/result`)
// while it runs again. Only ids are stored, never result data, and the widget's question, SQL,
// warehouse and chart only as a hash: an entry made for another version of the widget is not
// used, so a changed widget never shows a stale answer. Entries are per user and cleared on
// logout.

const PREFIX = "livebi.widget:";

/**
 * A short hash of the widget's query (question, sql, warehouse, chart): says whether an entry
 * belongs to this version of the widget without keeping its text in storage (cyrb53, not a
 * security boundary: the server checks access to the query id itself).
 */
export function queryFingerprint(query) {
  const text = JSON.stringify([query.question ?? null, query.sql ?? null, query.warehouse ?? null, query.chart ?? null]);
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36);
}

function keyOf(userId, dashboardId, widgetId) {
  return `${PREFIX}${JSON.stringify([userId || "", dashboardId, widgetId])}`;
}

/** The query id of the widget's last successful run for this version of it, or null. */
export function lastQueryId({ userId, dashboardId, widgetId, query }) {
  let entry;
  try {
    entry = JSON.parse(localStorage.getItem(keyOf(userId, dashboardId, widgetId)) || "null");
  } catch (err) {
    console.warn("livebi: unreadable widget cache entry", err);
    return null;
  }
  if (!entry || entry.q !== queryFingerprint(query) || typeof entry.id !== "string") return null;
  return entry.id;
}

/** Remember `queryId` as the widget's last successful run. */
export function remember({ userId, dashboardId, widgetId, query, queryId }) {
  try {
    localStorage.setItem(keyOf(userId, dashboardId, widgetId), JSON.stringify({ q: queryFingerprint(query), id: queryId }));
  } catch (err) {
    // Storage full or disabled: the widget still works, only without its last result on reload.
    console.warn("livebi: could not remember the widget's last result", err);
  }
}

/** Forget one widget (it was removed). */
export function forget({ userId, dashboardId, widgetId }) {
  localStorage.removeItem(keyOf(userId, dashboardId, widgetId));
}

/** Forget every widget's last result (logout: the next user of this browser sees none). */
export function clearAll() {
  const keys = [];
  for (let i = 0; i < localStorage.length; i += 1) {
    const key = localStorage.key(i);
    if (key && key.startsWith(PREFIX)) keys.push(key);
  }
  for (const key of keys) localStorage.removeItem(key);
}
