"""The result table reads measures as the chart does: a gross margin of 0.41 is 41.0 %, not
$0.41, whether the viz agent said so (``chart.formats``) or only the name and values can tell.

The page is /health (same origin, no app): table.js is imported by the test's own function.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

RUN = """
async () => {
  const T = await import("/static/js/table.js");
  const cells = (result) => [...T.renderTable(result).querySelectorAll("tbody tr:first-child td")].map((td) => td.textContent);
  const base = { columns: ["category", "gross_margin", "total_revenue", "x"], column_kinds: ["text", "number", "number", "number"],
    rows: [["Furniture", 0.4123, 1234567.5, 0.25]], row_count: 1, truncated: false };
  return {
    told: cells({ ...base, chart: { formats: { gross_margin: "fraction", total_revenue: "money", x: "percent" } } }),
    guessed: cells({ ...base, chart: { type: "table" } }),
  };
}
"""


def test_the_table_follows_the_chart_formats(open_page, demo_server):
    page = open_page(demo_server, "/health")
    out = page.evaluate(RUN)
    assert out["told"] == ["Furniture", "41.2%", "$1,234,567.50", "0.3%"]
    assert out["guessed"] == ["Furniture", "41.2%", "$1,234,567.50", "0.25"]
