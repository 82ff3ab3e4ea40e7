// The dashboard grid's geometry, pure (no DOM): 12 columns, rows of a fixed height, widgets as
// rectangles {x, y, w, h} in grid units. The page (dashboard.js) turns pointer movements and
// key presses into rectangles with these functions and sends the differences as edit ops.

export const COLUMNS = 12;
export const MAX_HEIGHT = 24;
export const MAX_Y = 10_000; // the server's lowest starting row
export const DEFAULT_SIZE = Object.freeze({ w: 6, h: 4 });

const clamp = (value, low, high) => Math.min(high, Math.max(low, value));

/** A rectangle that fits the grid: 1 <= w <= 12, 0 <= x <= 12 - w, y >= 0, 1 <= h <= 24. */
export function clampRect({ x = 0, y = 0, w = DEFAULT_SIZE.w, h = DEFAULT_SIZE.h }) {
  const width = clamp(Math.round(w), 1, COLUMNS);
  return {
    x: clamp(Math.round(x), 0, COLUMNS - width),
    y: clamp(Math.round(y), 0, MAX_Y),
    w: width,
    h: clamp(Math.round(h), 1, MAX_HEIGHT),
  };
}

const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

/**
 * The rectangle after a key press: arrows move by one cell, Shift+arrows resize (right/down
 * grow, left/up shrink). Null for other keys, or when nothing would change (at an edge).
 */
export function keyStep(rect, key, { resize = false } = {}) {
  const step = ARROWS[key];
  if (!step) return null;
  const [dx, dy] = step;
  const next = resize
    ? clampRect({ ...rect, w: rect.w + dx, h: rect.h + dy, x: rect.x })
    : clampRect({ ...rect, x: rect.x + dx, y: rect.y + dy });
  // Growing at the right edge: keep the widget where it is rather than letting clamp shift it.
  if (resize && rect.x + next.w > COLUMNS) return null;
  return sameRect(next, rect) ? null : next;
}

export function sameRect(a, b) {
  return a.x === b.x && a.y === b.y && a.w === b.w && a.h === b.h;
}

/**
 * The rectangle while dragging: `mode` "move" shifts x/y, "resize" changes w/h by the pointer's
 * travel (`dx`, `dy` in pixels) over cells of `cellWidth` x `cellHeight` pixels (gap included).
 */
export function dragRect(start, { dx, dy, cellWidth, cellHeight, mode }) {
  const cols = Math.round(dx / cellWidth);
  const rows = Math.round(dy / cellHeight);
  if (mode === "resize") {
    const w = clamp(start.w + cols, 1, COLUMNS - start.x);
    return clampRect({ ...start, w, h: start.h + rows });
  }
  return clampRect({ ...start, x: start.x + cols, y: start.y + rows });
}

/** Do two rectangles share a cell? */
export function overlaps(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/** Where a new widget goes: the first gap it fits in, row by row, else under everything. */
export function freeSpot(widgets, { w = DEFAULT_SIZE.w, h = DEFAULT_SIZE.h } = {}) {
  const placed = widgets.map((wd) => clampRect(wd));
  const bottom = placed.reduce((max, r) => Math.max(max, r.y + r.h), 0);
  const size = clampRect({ x: 0, y: 0, w, h });
  for (let y = 0; y < bottom; y += 1) {
    for (let x = 0; x + size.w <= COLUMNS; x += 1) {
      const rect = { ...size, x, y };
      if (!placed.some((r) => overlaps(rect, r))) return rect;
    }
  }
  return { ...size, x: 0, y: bottom };
}

/** CSS grid placement (grid lines are 1-based). */
export function placement({ x, y, w, h }) {
  return { gridColumn: `${x + 1} / span ${w}`, gridRow: `${y + 1} / span ${h}` };
}

/** Reading order for the one-column layout and the Tab order: by row, then column. */
export function readingOrder(widgets) {
  return [...widgets].sort((a, b) => (a.y - b.y) || (a.x - b.x));
}

/** Words for a screen reader: "column 3, row 2, 4 columns wide, 3 rows tall". */
export function describeRect({ x, y, w, h }) {
  return `column ${x + 1}, row ${y + 1}, ${w} column${w === 1 ? "" : "s"} wide, ${h} row${h === 1 ? "" : "s"} tall`;
}
