// Result tables and CSV export.

import { h, downloadBlob, slug } from "./dom.js";
import { columnFormat, formatValue } from "./format.js";

/** Rows shown in the table view; the CSV always carries every row the result has. */
export const TABLE_ROW_LIMIT = 200;

/** Display text of one cell (numbers grouped; money and percentages as the column's name says). */
export function formatCell(value, format = {}) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number" || (format.numeric && typeof value === "string")) {
    return formatValue(value, { money: format.money, percent: format.percent, compact: false });
  }
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/**
 * Build the table for a result: the first TABLE_ROW_LIMIT rows, numbers right-aligned, and a
 * note saying how much is shown when that is not everything.
 */
export function renderTable(result, { limit = TABLE_ROW_LIMIT } = {}) {
  const columns = result.columns || [];
  const kinds = result.column_kinds || [];
  const rows = result.rows || [];
  const shown = rows.slice(0, limit);
  const known = (result.chart && result.chart.formats) || {};
  const formats = columns.map((name, i) => {
    const format = columnFormat(name, kinds[i], rows.map((r) => r[i]));
    const said = known[name]; // the viz agent's reading (money, percent, fraction, number) wins
    if (said) {
      const percent = said === "percent" || said === "fraction";
      return { ...format, money: said === "money", percent, scale: said === "fraction" ? 100 : 1 };
    }
    // Percent columns hold either points (12.5) or fractions (0.125): fractions are scaled.
    const scale = format.percent && rows.every((r) => r[i] == null || Math.abs(Number(r[i])) <= 1) ? 100 : 1;
    return { ...format, scale };
  });

  // Headers are humanized; the raw column name (what the SQL says) stays in the tooltip.
  const head = h("thead", {}, h("tr", {}, columns.map((name, i) =>
    h("th", { scope: "col", class: formats[i].numeric ? "num" : null, title: kinds[i] ? `${name} (${kinds[i]})` : name,
      testid: "table-header" }, formats[i].label))));
  const body = h("tbody", {}, shown.map((row) =>
    h("tr", {}, columns.map((_, i) => {
      const value = row[i];
      const f = formats[i];
      const shownValue = f.scale !== 1 && typeof value === "number" ? value * f.scale : value;
      return h("td", { class: [f.numeric ? "num" : "", value == null ? "null" : ""].join(" ").trim() || null },
        value == null ? "∅" : formatCell(shownValue, f));
    }))));

  const total = Number.isFinite(result.row_count) ? result.row_count : rows.length;
  const notes = [];
  if (shown.length < rows.length) notes.push(`Showing the first ${shown.length.toLocaleString()} of ${rows.length.toLocaleString()} rows.`);
  else notes.push(`${total.toLocaleString()} row${total === 1 ? "" : "s"}.`);
  if (result.truncated) notes.push("The result was truncated by the server's row limit; refine the question to see everything.");
  if (!columns.length) notes.push("The query returned no columns.");

  return h("div", { class: "table-view" },
    h("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": "Result table" },
      h("table", { class: "result-table" }, head, body)),
    h("p", { class: "table-note", testid: "table-note" }, notes.join(" ")));
}

function csvField(value) {
  if (value === null || value === undefined) return "";
  let text = typeof value === "object" ? JSON.stringify(value) : String(value);
  // Spreadsheet formula injection: a text cell starting with = + - @ would be evaluated on open.
  // Numbers written as text ("-3", "+1.5") are left alone.
  if (typeof value === "string" && /^[=+\-@\t\r]/.test(text) && !/^[-+]?\d[\d.,]*(e[-+]?\d+)?$/i.test(text)) {
    text = `'${text}`;
  }
  return /[",\r\n]|^\s|\s$/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** RFC 4180 CSV (CRLF line ends, fields with quotes/commas/newlines quoted, quotes doubled). */
export function toCsv(columns, rows) {
  const lines = [columns.map(csvField).join(",")];
  for (const row of rows) lines.push(columns.map((_, i) => csvField(row[i])).join(","));
  return `${lines.join("\r\n")}\r\n`;
}

/** Download every row of a result as CSV (the UTF-8 BOM makes spreadsheet apps read accents). */
export function downloadCsv(result) {
  const name = `${slug(result.question || "query")}.csv`;
  downloadBlob(`\ufeff${toCsv(result.columns || [], result.rows || [])}`, name, "text/csv;charset=utf-8");
}
