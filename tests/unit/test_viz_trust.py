"""Charts a BI user can trust: ratios read as percentages, measures of different scales get
their own axis, and a comparison of years draws one line per year over January-December."""

from __future__ import annotations

import json
from typing import Any

import plotly.graph_objects as go
import pytest

from livebi.agents.viz import Chart, ChartHint, build_figure, choose_chart
from livebi.warehouse.base import QueryResult


def result(columns: list[str], rows: list[list[Any]], kinds: list[str] | None = None) -> QueryResult:
    if kinds is None:
        kinds = ["number" if isinstance(next((r[i] for r in rows if r[i] is not None), ""), (int, float))
                 else "text" for i in range(len(columns))]
    return QueryResult(columns, kinds, rows, len(rows), False, 1.0)


def choose(question: str, res: QueryResult, hint: ChartHint | None = None, **kw: Any) -> Chart:
    chart = choose_chart(question, res, hint, **kw)
    json.dumps(chart.to_dict(), allow_nan=False)
    if chart.figure is not None:
        go.Figure(chart.figure)
    return chart


CATEGORIES = ["Software", "Office Supplies", "Services", "Furniture", "Electronics"]


# --- 1. ratios are percentages, money stays money ------------------------------------------------


def test_a_margin_of_fractions_is_a_percentage_not_money() -> None:
    res = result(["category", "gross_margin"], [[c, m] for c, m in zip(CATEGORIES, [0.82, 0.56, 0.46, 0.41, 0.25])])
    chart = choose("gross margin by category", res)
    trace = chart.figure["data"][0]
    assert "$" not in trace["hovertemplate"] and "%" in trace["hovertemplate"]
    axis = chart.figure["layout"]["yaxis"] if trace["orientation"] == "v" else chart.figure["layout"]["xaxis"]
    assert "tickprefix" not in axis and axis.get("tickformat", "").endswith("%")
    assert chart.to_dict()["formats"]["gross_margin"] == "fraction"


def test_a_margin_in_money_stays_money() -> None:
    res = result(["category", "margin"], [[c, m] for c, m in zip(CATEGORIES, [82000.5, 56000, 46000, 41000, 25000])])
    chart = choose("margin by category", res)
    assert chart.figure["data"][0]["hovertemplate"].count("$") == 1
    assert chart.to_dict()["formats"]["margin"] == "money"


@pytest.mark.parametrize("name", ["avg_discount", "discount", "return_rate", "share_of_orders", "conversion_pct"])
def test_rates_between_zero_and_one_are_percentages(name: str) -> None:
    res = result(["channel", name], [["Partner", 0.18], ["Retail", 0.04], ["Online", 0.03]])
    chart = choose(f"{name} by channel", res)
    assert "%" in chart.figure["data"][0]["hovertemplate"] and "$" not in chart.figure["data"][0]["hovertemplate"]
    assert chart.to_dict()["formats"][name] == "fraction"


def test_a_discount_amount_is_not_a_percentage() -> None:
    res = result(["channel", "total_discount"], [["Partner", 1800.5], ["Retail", 400], ["Online", 300]])
    assert choose("total discount by channel", res).to_dict()["formats"]["total_discount"] != "fraction"


def test_a_one_number_ratio_is_a_percentage_kpi() -> None:
    chart = choose("gross margin", result(["gross_margin"], [[0.1734]]))
    assert chart.type == "kpi" and chart.kpi["formatted"] == "17.3%"


def test_the_hint_decides_over_names() -> None:
    # the NLP agent knows "profit per order" is money even though nothing in the name says so
    res = result(["channel", "x"], [["Partner", 0.5], ["Retail", 0.25]])
    chart = choose("x by channel", res, ChartHint(measures=["x"], percent_columns=["x"]))
    assert chart.to_dict()["formats"]["x"] == "fraction"
    chart = choose("gross margin by channel", result(["channel", "gross_margin"], [["A", 0.5], ["B", 0.25]]),
                   ChartHint(measures=["gross_margin"], number_columns=["gross_margin"]))
    assert chart.to_dict()["formats"]["gross_margin"] == "number"


# --- 2. measures of very different scales get a secondary axis ------------------------------------


MONTHS = [f"2025-{m:02d}-01" for m in range(1, 13)]


def test_revenue_and_order_count_over_time_use_two_axes() -> None:
    res = result(["month", "total_revenue", "order_count"],
                 [[m, 2_000_000 + 10_000 * i, 900 + i] for i, m in enumerate(MONTHS)], ["date", "number", "number"])
    chart = choose("revenue and number of orders by month", res)
    assert chart.type == "line"
    data, layout = chart.figure["data"], chart.figure["layout"]
    assert [t.get("yaxis", "y") for t in data] == ["y", "y2"]
    assert layout["yaxis2"]["overlaying"] == "y" and layout["yaxis2"]["side"] == "right"
    assert layout["yaxis"].get("tickprefix") == "$" and "tickprefix" not in layout["yaxis2"]
    assert "$" in data[0]["hovertemplate"] and "$" not in data[1]["hovertemplate"]


def test_a_count_and_a_percentage_by_category_use_two_axes() -> None:
    res = result(["channel", "order_count", "return_rate"],
                 [["Online", 12000, 0.07], ["Retail", 8000, 0.05], ["Partner", 3000, 0.04]])
    chart = choose("orders and return rate by channel", res)
    assert chart.type == "grouped_column"
    data, layout = chart.figure["data"], chart.figure["layout"]
    assert [t.get("yaxis", "y") for t in data] == ["y", "y2"]
    assert layout["yaxis2"]["tickformat"].endswith("%")
    assert data[0]["offsetgroup"] != data[1]["offsetgroup"]  # side by side, not drawn over each other


def test_measures_of_one_unit_and_scale_share_one_axis() -> None:
    res = result(["month", "budget", "actual"],
                 [[m, 100_000 + i, 98_000 + i] for i, m in enumerate(MONTHS)], ["date", "number", "number"])
    chart = choose("budget and actual by month", res)
    assert "yaxis2" not in chart.figure["layout"]
    assert all("yaxis" not in t for t in chart.figure["data"])


# --- 3. comparing years by month: one line per year over January-December -------------------------


def _two_years() -> QueryResult:
    rows = [[f"{y}-{m:02d}-01", 1_000_000.0 * (1 + (y - 2023) * 0.2) + m * 1000] for y in (2023, 2024) for m in range(1, 13)]
    return result(["month", "total_revenue"], rows, ["date", "number"])


@pytest.mark.parametrize("question", ["compare revenue 2024 vs 2023 by month",
                                      "revenue by month in 2024 compared with 2023",
                                      "monthly revenue year over year"])
def test_comparing_years_draws_one_line_per_year(question: str) -> None:
    chart = choose(question, _two_years())
    assert chart.type == "line"
    data = chart.figure["data"]
    assert [t["name"] for t in data] == ["2023", "2024"]
    assert all(len(t["x"]) == 12 for t in data)
    assert data[0]["x"][0] == "Jan" and data[0]["x"][-1] == "Dec"
    assert chart.figure["layout"]["xaxis"]["type"] == "category"
    assert "year" in chart.reason.lower()
    # the alternatives are drawn from the same pivot: grouped columns month x year
    figure = build_figure("grouped_column", question, _two_years())
    assert [t["name"] for t in figure["data"]] == ["2023", "2024"]


def test_a_plain_monthly_trend_is_not_pivoted() -> None:
    chart = choose("revenue by month", _two_years())
    assert len(chart.figure["data"]) == 1 and len(chart.figure["data"][0]["x"]) == 24


def test_year_and_month_columns_compared_are_pivoted_too() -> None:
    rows = [[y, m, 100.0 * y + m] for y in (2024, 2025) for m in range(1, 13)]
    res = result(["order_year", "order_month", "order_count"], rows)
    chart = choose("monthly number of orders in 2025 compared with 2024", res)
    assert [t["name"] for t in chart.figure["data"]] == ["2024", "2025"]
    assert chart.figure["data"][1]["x"][:3] == ["Jan", "Feb", "Mar"]


def test_revenue_vs_orders_over_time_is_two_lines_on_two_axes_not_a_scatter() -> None:
    res = result(["month", "total_revenue", "order_count"],
                 [[m, 2_000_000 + 10_000 * i, 900 + i] for i, m in enumerate(MONTHS)], ["date", "number", "number"])
    chart = choose("revenue vs number of orders by month", res)
    assert chart.type == "line" and "yaxis2" in chart.figure["layout"]
    assert choose("correlation of revenue and number of orders by month", res).type == "scatter"


def test_the_hint_of_a_comparison_pivots_years_too() -> None:
    chart = choose("revenue for 2023 and 2024 monthly", _two_years(), ChartHint(kind="comparison", time_grain="month"))
    assert [t["name"] for t in chart.figure["data"]] == ["2023", "2024"]
