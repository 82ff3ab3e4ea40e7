// Human-facing text for result tables: column labels and number formats. Mirrors the viz
// agent's rules (agents/viz/formatting.py) so a table and its chart say the same thing:
// "total_revenue" -> "Total revenue", money with "$", percentages with "%".

const ACRONYMS = new Set(["id", "usd", "eur", "kpi", "sku", "roi", "aov", "gmv", "arr", "mrr", "yoy", "mom",
  "ytd", "qtd", "mtd", "us", "uk", "eu", "url", "ip"]);
const EXPANSIONS = { avg: "average", cnt: "count", qty: "quantity", pct: "%", num: "number of", amt: "amount",
  yr: "year", mo: "month", qtr: "quarter", wk: "week", dow: "day of week" };
const MONEY_WORDS = ["revenue", "sales", "amount", "price", "cost", "profit", "budget", "actual", "spend",
  "income", "margin", "value", "gmv", "arr", "mrr", "salary", "fee", "total_due", "freight"];
const COUNT_WORDS = ["count", "qty", "quantity", "units", "number", "num_", "orders", "customers", "items"];
const PERCENT_TOKENS = new Set(["pct", "percent", "percentage", "ratio", "share", "rate"]);
// A ratio when its values are fractions (a 0.17 margin is 17 %), an amount otherwise.
const RATIO_TOKENS = new Set(["margin", "discount", "markup", "churn", "conversion", "utilization", "utilisation"]);
const UNITS = [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "K"]];
export const EMPTY_VALUE = "—";

/** "totalRevenue_2024" -> ["total", "revenue", "2024"]. */
export function nameTokens(name) {
  const spaced = String(name).replace(/([a-z0-9])(?=[A-Z])/g, "$1 ");
  return spaced.toLowerCase().split(/[\s_\-.:/]+/).filter(Boolean);
}

/** A column name as people read it: "total_revenue" -> "Total revenue", "avg_order_usd" -> "Average order USD". */
export function columnLabel(name) {
  const words = nameTokens(name).map((t) => (ACRONYMS.has(t) ? t.toUpperCase() : EXPANSIONS[t] || t));
  const text = words.join(" ").trim() || String(name);
  return text[0].toUpperCase() + text.slice(1);
}

export function isMoneyName(name) {
  const lowered = String(name).toLowerCase();
  if (COUNT_WORDS.some((w) => lowered.includes(w))) return false;
  return MONEY_WORDS.some((w) => lowered.includes(w));
}

export function isPercentName(name) {
  return String(name).includes("%") || nameTokens(name).some((t) => PERCENT_TOKENS.has(t));
}

function compact(magnitude) {
  for (const [size, suffix] of UNITS) {
    if (magnitude >= size * 0.9995) {
      const scaled = magnitude / size;
      const text = scaled >= 99.95 ? scaled.toFixed(0) : scaled.toFixed(1);
      return `${text.replace(/\.0$/, "")}${suffix}`;
    }
  }
  return grouped(magnitude, 0);
}

function grouped(number, digits) {
  return number.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/**
 * One value for people, like formatting.format_value: "$1.2M", "12.5%", "1,234".
 * `compact: false` keeps every digit (tables), `true` abbreviates (tiles).
 */
export function formatValue(value, { money = false, percent = false, compact: short = false } = {}) {
  if (value === null || value === undefined) return EMPTY_VALUE;
  if (typeof value === "boolean") return value ? "Yes" : "No";
  const number = typeof value === "number" ? value : (typeof value === "string" && value.trim() !== "" ? Number(value) : NaN);
  if (!Number.isFinite(number)) return typeof value === "object" ? JSON.stringify(value) : String(value);
  const sign = number < 0 ? "-" : "";
  const magnitude = Math.abs(number);
  if (percent) return `${sign}${grouped(magnitude, magnitude >= 100 ? 0 : 1)}%`;
  if (money) {
    if (short && magnitude >= 1000) return `${sign}$${compact(magnitude)}`;
    if (magnitude >= 1000 && Number.isInteger(magnitude)) return `${sign}$${grouped(magnitude, 0)}`;
    return `${sign}$${grouped(magnitude, 2)}`;
  }
  if (short && magnitude >= 10_000) return `${sign}${compact(magnitude)}`;
  if (Number.isInteger(magnitude)) return `${sign}${grouped(magnitude, 0)}`;
  return `${sign}${grouped(magnitude, 2).replace(/0+$/, "").replace(/\.$/, "")}`;
}

/** How a result column is shown: its label, whether it is numeric, money or a percentage. */
export function columnFormat(name, kind, values) {
  const numeric = kind === "number" || (kind == null && values.some((v) => typeof v === "number"));
  const fractions = values.some((v) => v != null) && values.every((v) => v == null || Math.abs(Number(v)) <= 1);
  const ratio = fractions && nameTokens(name).some((t) => RATIO_TOKENS.has(t));
  const percent = numeric && (ratio || (isPercentName(name) && !isMoneyName(name)));
  return {
    label: columnLabel(name),
    numeric,
    money: numeric && !percent && isMoneyName(name),
    percent,
  };
}
