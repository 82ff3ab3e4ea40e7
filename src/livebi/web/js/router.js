// Routes inside the single page, kept in the URL's hash so a reload or a shared link opens the
// same view: "#/" the conversation, "#/dashboards" the list, "#/dashboards/<id>" one dashboard.

const DASHBOARD_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** The route a hash names; anything unknown is the conversation. */
export function parseRoute(hash) {
  const path = String(hash || "").replace(/^#/, "").replace(/\/+$/, "");
  const parts = path.split("/").filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return "";
    }
  });
  if (parts[0] === "dashboards" && parts.length === 1) return { name: "dashboards" };
  if (parts[0] === "dashboards" && parts.length === 2 && DASHBOARD_ID.test(parts[1])) return { name: "dashboard", id: parts[1] };
  return { name: "conversation" };
}

/** The hash of a route. */
export function routeHash(route) {
  if (route.name === "dashboards") return "#/dashboards";
  if (route.name === "dashboard") return `#/dashboards/${encodeURIComponent(route.id)}`;
  return "#/";
}

/** Call `onRoute(route)` now and on every hash change; returns a function that stops it. */
export function startRouter(onRoute) {
  const handler = () => onRoute(parseRoute(location.hash));
  window.addEventListener("hashchange", handler);
  handler();
  return () => window.removeEventListener("hashchange", handler);
}

export function navigate(route) {
  const hash = routeHash(route);
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}
