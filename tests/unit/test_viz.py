"""The viz agent: chart choice rules, formatting, date handling, and valid Plotly figures."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go
import pytest

from livebi.agents.viz import CHART_TYPES, Chart, ChartHint, build_figure, choose_chart, format_value, humanize
from livebi.agents.viz.formatting import title_from_question
from livebi.agents.viz.profile import parse_time, profile
from livebi.warehouse.base import QueryResult

KINDS = {int: "number", float: "number", Decimal: "number", bool: "bool", str: "text"}


def result(columns: list[str], rows: list[list[Any]], kinds: list[str] | None = None) -> QueryResult:
    """A QueryResult with kinds guessed from the first non-null value of each column."""
    if kinds is None:
        kinds = []
        for i in range(len(columns)):
            sample = next((r[i] for r in rows if r[i] is not None), "")
            kinds.append(KINDS.get(type(sample), "other"))
    return QueryResult(columns, kinds, rows, len(rows), False, 1.0)


def check(chart: Chart) -> Chart:
    """Every chart must be JSON-safe and its figure valid for Plotly."""
    text = json.dumps(chart.to_dict(), allow_nan=False)
    assert json.loads(text)["type"] == chart.type
    assert chart.type in CHART_TYPES
    assert chart.reason and chart.reason.endswith(".")
    assert chart.type not in chart.alternatives
    if chart.type in ("kpi", "table"):
        assert chart.figure is None
    else:
        go.Figure(chart.figure)  # raises on any invalid property
        assert "template" not in chart.figure["layout"]
    return chart


def choose(question: str, res: QueryResult, hint: ChartHint | None = None, **kw: Any) -> Chart:
    return check(choose_chart(question, res, hint, **kw))


REGIONS = ["North", "South", "East", "West"]


# --- formatting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (1234, {}, "1,234"),
        (3400, {}, "3,400"),
        (34_500, {}, "34.5K"),
        (1_234_567.8, {}, "1.2M"),
        (2_500_000_000, {}, "2.5B"),
        (999_999, {}, "1M"),
        (0.5, {}, "0.5"),
        (12.345, {}, "12.35"),
        (-2_500_000, {}, "-2.5M"),
        (1_234_567.8, {"money": True}, "$1.2M"),
        (3_400, {"money": True}, "$3.4K"),
        (12.5, {"money": True}, "$12.50"),
        (-1500, {"money": True}, "-$1.5K"),
        (12.5, {"percent": True}, "12.5%"),
        (150, {"percent": True}, "150%"),
        (1_234_567.891, {"money": True, "compact": False}, "$1,234,567.89"),
        (1_234_567, {"compact": False}, "1,234,567"),
        (None, {}, "—"),
        (True, {}, "Yes"),
        (Decimal("1234.5"), {"money": True}, "$1.2K"),
        ("n/a", {}, "n/a"),
    ],
)
def test_format_value(value, kwargs, expected):
    assert format_value(value, **kwargs) == expected


def test_humanize_and_title():
    assert humanize("total_revenue") == "Total revenue"
    assert humanize("avgOrderValue") == "Average order value"
    assert humanize("customer_id") == "Customer ID"
    assert title_from_question("  what is the total revenue by region?  ") == "Total revenue by region"
    assert title_from_question("show me revenue by month") == "Revenue by month"
    assert title_from_question("how many orders did we get?") == "How many orders did we get"
    long = title_from_question("revenue " * 30)
    assert len(long) <= 80 and long.endswith("…")


# --- KPI ---------------------------------------------------------------------------------------


def test_kpi_single_number():
    chart = choose("What is the total revenue?", result(["total_revenue"], [[1_234_567.8]]))
    assert chart.type == "kpi"
    assert chart.kpi["value"] == 1_234_567.8
    assert chart.kpi["formatted"] == "$1.2M"
    assert chart.kpi["label"] == "Total revenue"
    assert chart.kpi["previous"] is None and chart.kpi["change_pct"] is None
    assert chart.title == "Total revenue"


def test_kpi_this_year_vs_last_year():
    res = result(["period", "revenue"], [["last year", 100.0], ["this year", 125.0]])
    chart = choose("revenue this year vs last year", res)
    assert chart.type == "kpi"
    assert chart.kpi["value"] == 125.0 and chart.kpi["previous"] == 100.0
    assert chart.kpi["change_pct"] == pytest.approx(25.0)
    assert chart.kpi["change_formatted"] == "+25.0%"


def test_kpi_two_years_picks_the_later_as_current():
    res = result(["year", "orders"], [[2024, 90], [2023, 120]])
    chart = choose("orders in 2024 compared to 2023", res)
    assert chart.type == "kpi"
    assert chart.kpi["value"] == 90 and chart.kpi["previous"] == 120
    assert chart.kpi["change_formatted"] == "-25.0%"
    assert "2024" in chart.kpi["label"]


def test_kpi_current_and_previous_columns():
    res = result(["revenue_this_year", "revenue_last_year"], [[200.0, 160.0]])
    chart = choose("revenue growth", res)
    assert chart.type == "kpi"
    assert chart.kpi["previous"] == 160.0
    assert chart.kpi["change_pct"] == pytest.approx(25.0)


def test_kpi_fraction_percent_is_scaled_for_display():
    chart = choose("conversion rate", result(["conversion_rate"], [[0.125]]))
    assert chart.kpi["formatted"] == "12.5%"


# --- time series -------------------------------------------------------------------------------


def test_date_and_measure_is_line_sorted_chronologically():
    res = result(["month", "revenue"], [["2024-03", 3.0], ["2024-01", 1.0], ["2024-02", 2.0]])
    chart = choose("monthly revenue", res)
    assert chart.type == "line"
    trace = chart.figure["data"][0]
    assert trace["x"] == ["2024-01-01", "2024-02-01", "2024-03-01"]
    assert trace["y"] == [1.0, 2.0, 3.0]
    assert chart.figure["layout"]["xaxis"]["type"] == "date"
    assert chart.figure["layout"]["showlegend"] is False


def test_cumulative_wording_gives_area():
    res = result(["day", "revenue"], [[f"2024-01-{d:02d}", d * 10.0] for d in range(1, 8)], ["date", "number"])
    chart = choose("cumulative revenue this week", res)
    assert chart.type == "area"
    assert chart.figure["data"][0]["fill"] == "tozeroy"


def test_date_dimension_measure_is_one_line_per_value():
    rows = [[f"2024-{m:02d}-01", r, float(m * (i + 1))] for m in range(1, 7) for i, r in enumerate(REGIONS)]
    chart = choose("revenue by month by region", result(["month", "region", "revenue"], rows, ["date", "text", "number"]))
    assert chart.type == "line"
    assert [t["name"] for t in chart.figure["data"]] == ["West", "East", "South", "North"]  # largest first
    assert chart.figure["layout"]["showlegend"] is True


def test_many_series_fold_into_other():
    rows = [[f"2024-{m:02d}-01", f"Store {s:02d}", float(100 - s)] for m in range(1, 4) for s in range(20)]
    chart = choose("sales by month by store", result(["month", "store", "sales"], rows, ["date", "text", "number"]))
    names = [t["name"] for t in chart.figure["data"]]
    assert len(names) == 12 and names[-1] == "Other"
    other = chart.figure["data"][-1]
    assert other["y"][0] == pytest.approx(sum(100 - s for s in range(11, 20)))


def test_date_and_several_measures_is_multi_line():
    rows = [["2024-01-01", 100, 90], ["2024-02-01", 100, 120]]
    chart = choose("budget vs actual by month", result(["month", "budget", "actual"], rows, ["date", "number", "number"]))
    assert chart.type == "line"
    assert [t["name"] for t in chart.figure["data"]] == ["Budget", "Actual"]
    assert chart.figure["layout"]["yaxis"]["tickprefix"] == "$"


def test_year_integers_plot_on_a_date_axis():
    res = result(["year", "revenue"], [[2022, 1e9], [2024, 3e9], [2023, 2e9]])
    chart = choose("revenue by year", res)
    assert chart.type == "line"
    assert chart.figure["data"][0]["x"] == ["2022-01-01", "2023-01-01", "2024-01-01"]
    xaxis = chart.figure["layout"]["xaxis"]
    assert xaxis["tickformat"] == "%Y" and xaxis["dtick"] == "M12"
    assert chart.figure["layout"]["yaxis"]["exponentformat"] == "B"  # $1.5B, not SI "G"


def test_quarter_strings_and_quarter_axis():
    res = result(["quarter", "revenue"], [["2024-Q2", 2.0], ["2024-Q1", 1.0], ["Q3 2024", 3.0]])
    chart = choose("revenue by quarter", res)
    assert chart.type == "line"
    assert chart.figure["data"][0]["x"] == ["2024-01-01", "2024-04-01", "2024-07-01"]
    assert chart.figure["layout"]["xaxis"]["tickformat"] == "Q%q %Y"


def test_year_and_month_columns_combine_into_one_time_axis():
    rows = [[2024, 2, 20.0], [2023, 12, 5.0], [2024, 1, 10.0]]
    chart = choose("revenue by year and month", result(["year", "month", "revenue"], rows))
    assert chart.type == "line"
    assert chart.figure["data"][0]["x"] == ["2023-12-01", "2024-01-01", "2024-02-01"]


def test_month_numbers_without_year_are_an_ordered_category_axis():
    rows = [[m, float(m)] for m in (3, 1, 2, 12)]
    chart = choose("average sales by month", result(["month", "avg_sales"], rows))
    assert chart.type == "line"
    xaxis = chart.figure["layout"]["xaxis"]
    assert xaxis["type"] == "category"
    assert chart.figure["data"][0]["x"] == ["Jan", "Feb", "Mar", "Dec"]


@pytest.mark.parametrize(
    ("value", "allow_year", "plot", "grain"),
    [
        ("2024-03-05", False, "2024-03-05", "day"),
        ("2024-03-05T00:00:00+02:00", False, "2024-03-05", "day"),
        ("2024-03-05T13:45:00Z", False, "2024-03-05 13:45:00", "time"),
        ("2024-03", False, "2024-03-01", "month"),
        ("2024-Q4", False, "2024-10-01", "quarter"),
        ("2024-W10", False, "2024-03-04", "week"),
        (2024, True, "2024-01-01", "year"),
        ("2024", True, "2024-01-01", "year"),
    ],
)
def test_parse_time(value, allow_year, plot, grain):
    point = parse_time(value, allow_year=allow_year)
    assert point is not None and point.plot == plot and point.grain == grain


def test_parse_time_rejects_non_dates():
    assert parse_time(2024) is None  # a bare number is only a year when the column says so
    assert parse_time("North") is None
    assert parse_time("2024-13-01") is None


def test_grain_inferred_from_first_of_month_timestamps():
    rows = [[f"2024-{m:02d}-01T00:00:00", 1.0] for m in range(1, 6)]
    shape = profile(result(["order_month", "revenue"], rows, ["date", "number"]))
    assert shape.time is not None and shape.time.grain == "month"
    hinted = profile(result(["d", "revenue"], rows, ["date", "number"]), ChartHint(time_grain="quarter"))
    assert hinted.time.grain == "quarter"


# --- one dimension -----------------------------------------------------------------------------


def test_few_short_categories_are_columns_sorted_descending():
    res = result(["region", "revenue"], [["North", 10.0], ["South", 30.0], ["East", 20.0]])
    chart = choose("revenue by region", res)
    assert chart.type == "column"
    trace = chart.figure["data"][0]
    assert trace["x"] == ["South", "East", "North"] and trace["y"] == [30.0, 20.0, 10.0]
    assert "$%{y:,.2f}" in trace["hovertemplate"]
    assert chart.figure["layout"]["xaxis"]["title"]["text"] == "Region"
    assert chart.figure["layout"]["yaxis"]["title"]["text"] == "Revenue"


def test_many_categories_are_horizontal_bars_largest_on_top():
    rows = [[f"C{i}", float(i)] for i in range(12)]
    chart = choose("orders by customer", result(["customer", "orders"], rows))
    assert chart.type == "bar"
    trace = chart.figure["data"][0]
    assert trace["orientation"] == "h" and trace["y"][0] == "C11"
    assert chart.figure["layout"]["yaxis"]["autorange"] == "reversed"


def test_long_labels_are_horizontal_bars():
    rows = [["A very long product name indeed", 1.0], ["Another long product name", 2.0]]
    assert choose("units by product", result(["product", "units"], rows)).type == "bar"


def test_top_n_wording_is_horizontal_bars():
    rows = [["Ann", 5.0], ["Bob", 7.0], ["Cy", 6.0]]
    chart = choose("top 3 sales reps by deals", result(["rep", "deals"], rows))
    assert chart.type == "bar"
    assert choose("deals by rep", result(["rep", "deals"], rows), ChartHint(kind="top_n")).type == "bar"


def test_ordinal_dimension_keeps_its_order():
    days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
    rows = [[d, float(i % 3)] for i, d in enumerate(days)]
    chart = choose("orders by weekday", result(["weekday", "orders"], rows))
    assert chart.type == "column"
    assert chart.figure["data"][0]["x"] == days[1:] + days[:1]  # Monday first, not by value


def test_share_wording_with_few_positive_values_is_pie():
    res = result(["region", "revenue"], [["North", 10.0], ["South", 30.0], ["East", 20.0]])
    chart = choose("what share of revenue comes from each region?", res)
    assert chart.type == "pie"
    assert chart.figure["data"][0]["labels"] == ["South", "East", "North"]


def test_no_pie_for_negatives_or_many_slices():
    negative = result(["region", "profit"], [["North", 10.0], ["South", -5.0], ["East", 20.0]])
    assert choose("share of profit by region", negative).type == "column"
    many = result(["city", "revenue"], [[f"City {i}", float(i + 1)] for i in range(10)])
    assert choose("share of revenue by city", many).type == "bar"


def test_one_dimension_several_measures_is_grouped_columns():
    rows = [["Sales", 100.0, 90.0], ["Ops", 80.0, 85.0]]
    chart = choose("budget vs actual by department", result(["department", "budget", "actual"], rows))
    assert chart.type == "grouped_column"
    assert chart.figure["layout"]["barmode"] == "group"
    assert len(chart.figure["data"]) == 2


# --- two dimensions ----------------------------------------------------------------------------


def _two_dims(a: int, b: int) -> QueryResult:
    rows = [[f"A{i}", f"B{j}", float(i * b + j)] for i in range(a) for j in range(b)]
    return result(["region", "category", "sales"], rows)


def test_two_dimensions_are_grouped_columns():
    chart = choose("sales by region and category", _two_dims(4, 3))
    assert chart.type == "grouped_column"
    assert len(chart.figure["data"]) == 3  # the shorter dimension becomes the series
    assert chart.figure["layout"]["showlegend"] is True


def test_composition_wording_is_stacked_columns():
    chart = choose("sales mix by region and category", _two_dims(4, 3))
    assert chart.type == "stacked_column"
    assert chart.figure["layout"]["barmode"] == "stack"


def test_two_many_valued_dimensions_are_a_heatmap():
    chart = choose("sales by region and category", _two_dims(8, 7))
    assert chart.type == "heatmap"
    trace = chart.figure["data"][0]
    assert len(trace["z"]) == len(trace["y"]) and len(trace["z"][0]) == len(trace["x"])


def test_day_of_week_and_hour_is_a_heatmap_with_hours_across():
    rows = [[d, h, d * h] for d in range(7) for h in range(24)]
    chart = choose("orders by day of week and hour", result(["dow", "hour", "orders"], rows))
    assert chart.type == "heatmap"
    trace = chart.figure["data"][0]
    assert trace["x"][:3] == ["0", "1", "2"] and len(trace["x"]) == 24
    assert len(trace["y"]) == 7


# --- scatter and table -------------------------------------------------------------------------


def test_two_measures_without_dimension_is_scatter():
    rows = [[1.0, 2], [2.0, 3], [3.0, 1]]
    chart = choose("price and quantity", result(["price", "quantity"], rows))
    assert chart.type == "scatter"


def test_correlation_wording_with_labels_is_scatter():
    rows = [[f"P{i}", float(i), 10 * i] for i in range(5)]
    chart = choose("is there a correlation between price and units sold?",
                   result(["product", "price", "units_sold"], rows))
    assert chart.type == "scatter"
    trace = chart.figure["data"][0]
    assert trace["text"] == [f"P{i}" for i in range(5)]
    layout = chart.figure["layout"]
    assert layout["yaxis"]["title"]["text"] == "Price" and layout["yaxis"]["tickprefix"] == "$"
    assert "tickprefix" not in layout["xaxis"]  # units are not money


def test_vs_puts_the_first_named_measure_on_y():
    rows = [[float(i), float(i * 2)] for i in range(5)]
    chart = choose("profit vs revenue", result(["revenue", "profit"], rows))
    layout = chart.figure["layout"]
    assert layout["yaxis"]["title"]["text"] == "Profit" and layout["xaxis"]["title"]["text"] == "Revenue"


def test_three_dimensions_is_a_table():
    rows = [["N", "a", "x", 1.0], ["S", "b", "y", 2.0]]
    chart = choose("sales by region, category and channel", result(["region", "category", "channel", "sales"], rows))
    assert chart.type == "table"


def test_text_only_and_listing_are_tables():
    assert choose("customers", result(["name", "city"], [["Ann", "Oslo"], ["Bob", "Rome"]])).type == "table"
    rows = [[1, "Ann", "2024-01-01", 10.0], [2, "Bob", "2024-01-02", 20.0]]
    assert choose("list recent orders", result(["order_id", "customer", "order_date", "amount"], rows)).type == "table"
    assert choose("revenue by region", result(["region", "revenue"], [["N", 1.0], ["S", 2.0]]),
                  ChartHint(kind="list")).type == "table"


def test_empty_result_is_a_table_with_reason():
    chart = choose("revenue by region", result(["region", "revenue"], [], ["text", "number"]))
    assert chart.type == "table" and "no rows" in chart.reason
    assert chart.alternatives == []


# --- requested chart types ---------------------------------------------------------------------


def test_requested_type_overrides_when_compatible():
    res = result(["region", "revenue"], [["North", 10.0], ["South", 30.0], ["East", 20.0]])
    chart = choose("revenue by region", res, requested="pie")
    assert chart.type == "pie" and "asked" in chart.reason
    assert "column" in chart.alternatives
    assert choose("revenue by region", res, requested="horizontal bar").type == "bar"


def test_requested_type_falls_back_with_reason():
    res = result(["region", "profit"], [["North", 10.0], ["South", -5.0]])
    chart = choose("profit by region", res, requested="pie")
    assert chart.type == "column"
    assert "pie chart needs values that are all zero or more" in chart.reason
    scatter = choose("revenue by region", res, requested="scatter")
    assert scatter.type == "column" and "two numeric columns" in scatter.reason
    unknown = choose("revenue by region", res, requested="radar")
    assert unknown.type == "column" and "radar" in unknown.reason


def test_build_figure_refuses_what_does_not_fit():
    res = result(["region", "revenue"], [["North", 10.0]])
    with pytest.raises(ValueError, match="two numeric columns"):
        build_figure("scatter", "q", res)
    with pytest.raises(ValueError, match="no Plotly figure"):
        build_figure("kpi", "q", res)


# --- hints, money and percent ------------------------------------------------------------------


def test_money_from_hint_and_count_names_are_not_money():
    res = result(["region", "gross"], [["N", 1500.0], ["S", 2500.0]])
    plain = choose("gross by region", res)
    assert "tickprefix" not in plain.figure["layout"]["yaxis"]
    money = choose("gross by region", res, ChartHint(money_columns=["gross"]))
    assert money.figure["layout"]["yaxis"]["tickprefix"] == "$"
    assert money.figure["layout"]["yaxis"]["tickformat"] == "~s"
    counts = choose("sales count by region", result(["region", "sales_count"], [["N", 15], ["S", 25]]))
    assert "tickprefix" not in counts.figure["layout"]["yaxis"]
    assert "%{y:,d}" in counts.figure["data"][0]["hovertemplate"]


def test_percent_axes():
    fraction = choose("conversion rate by channel", result(["channel", "conversion_rate"], [["Web", 0.12], ["App", 0.3]]))
    assert fraction.figure["layout"]["yaxis"]["tickformat"] == ".0%"
    points = choose("margin by channel", result(["channel", "margin_pct"], [["Web", 12.0], ["App", 30.0]]))
    assert points.figure["layout"]["yaxis"]["ticksuffix"] == "%"
    hinted = choose("growth by channel", result(["channel", "growth"], [["Web", 12.0], ["App", 30.0]]),
                    ChartHint(percent_columns=["growth"]))
    assert hinted.figure["layout"]["yaxis"]["ticksuffix"] == "%"


def test_hint_turns_numeric_column_into_dimension():
    rows = [[2, 10.0], [1, 30.0], [3, 20.0]]
    auto = choose("revenue by store", result(["store", "revenue"], rows))
    assert auto.type == "scatter"  # two numbers, no dimension
    hinted = choose("revenue by store", result(["store", "revenue"], rows), ChartHint(dimensions=["store"]))
    assert hinted.type == "column" and hinted.figure["layout"]["xaxis"]["type"] == "category"
    ids = choose("revenue by store", result(["store_id", "revenue"], rows))
    assert ids.type == "column"


# --- robustness --------------------------------------------------------------------------------


def test_null_safe_everywhere():
    rows = [["2024-01-01", "N", None], [None, "S", 2.0], ["2024-02-01", None, 3.0], ["2024-03-01", "N", float("nan")]]
    chart = choose("revenue by month by region", result(["month", "region", "revenue"], rows, ["date", "text", "number"]))
    assert chart.type == "line"
    assert all(v is None or math.isfinite(v) for t in chart.figure["data"] for v in t["y"])
    bars = choose("revenue by region", result(["region", "revenue"], [[None, 1.0], ["N", None], ["S", 2.0]]))
    assert bars.figure["data"][0]["x"][-1] == "N"  # null values sort last
    assert "(blank)" in bars.figure["data"][0]["x"]


def test_decimals_become_floats():
    res = result(["region", "revenue"], [["N", Decimal("1.5")], ["S", Decimal("2.5")]], ["text", "number"])
    chart = choose("revenue by region", res)
    assert chart.figure["data"][0]["y"] == [2.5, 1.5]
    assert choose("total", result(["total"], [[Decimal("3.25")]])).kpi["value"] == 3.25


@pytest.mark.parametrize("chart_type", [t for t in CHART_TYPES if t not in ("kpi", "table")])
def test_every_figure_type_validates_and_serialises(chart_type):
    rows = [[f"2024-{1 + i % 12:02d}-01", REGIONS[i % 4], float(i), float(i * 2 + 1)] for i in range(48)]
    res = result(["month", "region", "revenue", "profit"], rows, ["date", "text", "number", "number"])
    narrowed = {
        "pie": result(["region", "revenue"], [[r, float(i + 1)] for i, r in enumerate(REGIONS)]),
        "bar": result(["region", "revenue"], [[r, float(i + 1)] for i, r in enumerate(REGIONS)]),
        "column": result(["region", "revenue"], [[r, float(i + 1)] for i, r in enumerate(REGIONS)]),
        "line": result(["month", "region", "revenue"], [r[:3] for r in rows], ["date", "text", "number"]),
        "area": result(["month", "revenue"], [[r[0], r[2]] for r in rows], ["date", "number"]),
        "grouped_column": result(["month", "region", "revenue"], [r[:3] for r in rows], ["date", "text", "number"]),
        "stacked_column": result(["month", "region", "revenue"], [r[:3] for r in rows], ["date", "text", "number"]),
        "heatmap": result(["month", "region", "revenue"], [r[:3] for r in rows], ["date", "text", "number"]),
        "scatter": res,
    }[chart_type]
    figure = build_figure(chart_type, "Revenue", narrowed)
    json.dumps(figure, allow_nan=False)
    go.Figure(figure)
    legend = figure["layout"]["showlegend"]
    assert legend is (len(figure["data"]) > 1 or chart_type == "pie")


def test_figures_for_1000_rows():
    """Large results still produce a full figure (build time is measured in benchmarks/)."""
    rows = [[f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}", f"Region {i % 20}", i * 1.5, i % 7] for i in range(1000)]
    res = result(["day", "region", "revenue", "orders"], rows, ["date", "text", "number", "number"])
    narrow = result(["day", "region", "revenue"], [r[:3] for r in rows], ["date", "text", "number"])
    for question, data in (("revenue by day by region", narrow), ("correlation of revenue and orders", res)):
        chart = choose_chart(question, data)
        assert chart.figure is not None and chart.figure["data"]
        json.dumps(chart.figure, allow_nan=False)


def test_rates_that_are_not_parts_of_a_whole_get_no_pie():
    rates = result(["channel", "conversion_rate"], [["Web", 0.12], ["App", 0.3], ["Store", 0.05]])
    assert choose("conversion percentage by channel", rates).type == "column"
    split = result(["channel", "share_pct"], [["Web", 40.0], ["App", 35.0], ["Store", 25.0]])
    assert choose("share of orders by channel", split).type == "pie"


def test_sparse_huge_grid_is_a_table_not_a_heatmap():
    rows = [[f"Customer {i}", f"Product {i}", float(i)] for i in range(200)]
    chart = choose("revenue by customer and product", result(["customer", "product", "revenue"], rows))
    assert chart.type == "table" and "heatmap" not in chart.alternatives


def test_kpi_whole_numbers_stay_integers():
    chart = choose("how many orders?", result(["orders"], [[42]]))
    assert chart.kpi["value"] == 42 and isinstance(chart.kpi["value"], int)
    assert chart.kpi["formatted"] == "42"


def test_too_many_categories_for_bars_is_a_table():
    rows = [[f"Customer {i}", float(i)] for i in range(80)]
    chart = choose("revenue by customer", result(["customer", "revenue"], rows))
    assert chart.type == "table" and "bar" in chart.alternatives
    assert choose("revenue by customer", result(["customer", "revenue"], rows), requested="bar").type == "bar"


# --- hostile text: nothing from the data reaches Plotly as markup -------------------------------

HOSTILE = '<a href="https://evil.example/x">click</a>'
HOSTILE_VALUES = [HOSTILE, "<img src=x onerror=alert(1)>", "Tom & <b>Jerry</b>", "%{x} <br> %{meta[0]}",
                  "<script>alert(2)</script>", "plain"]
HOSTILE_COLUMNS = {"dim": 'region<a href="https://evil.example/c">c</a>',
                   "dim2": "<i>channel</i>",
                   "m1": "revenue<b onmouseover=x>",
                   "m2": 'profit<a href="https://evil.example/m">m</a>'}
_TEMPLATES = ("hovertemplate", "texttemplate")


def _hostile_results() -> dict[str, QueryResult]:
    """One result per chart type with a figure, hostile in every text the figure can show:
    category values, series (legend) names, pie labels, scatter labels, column names."""
    c = HOSTILE_COLUMNS
    cats = HOSTILE_VALUES
    one_dim = result([c["dim"], c["m1"]], [[v, float(i + 1)] for i, v in enumerate(cats)])
    many_cats = result([c["dim"], c["m1"]], [[f"{v} {i}", float(i + 1)] for i, v in enumerate(cats * 2)])
    two_dims = result([c["dim"], c["dim2"], c["m1"]],
                      [[a, b, float(i + j + 1)] for i, a in enumerate(cats) for j, b in enumerate(cats)])
    months = [f"2024-{m:02d}-01" for m in range(1, 7)]
    time_split = result(["month", c["dim"], c["m1"]], [[m, v, float(i)] for i, m in enumerate(months) for v in cats],
                        ["date", "text", "number"])
    time_measures = result(["month", c["m1"], c["m2"]], [[m, float(i), float(i * 2)] for i, m in enumerate(months)],
                           ["date", "number", "number"])
    measures_by_dim = result([c["dim"], c["m1"], c["m2"]], [[v, float(i + 1), float(i + 3)] for i, v in enumerate(cats)])
    return {
        "column": one_dim, "bar": many_cats, "pie": one_dim,
        "line": time_split, "line/measures": time_measures, "area": time_split,
        "grouped_column": two_dims, "grouped_column/measures": measures_by_dim, "stacked_column": two_dims,
        "heatmap": two_dims, "scatter": measures_by_dim,
    }


def _strings(node: Any, key: str = "") -> list[tuple[str, str]]:
    """Every (key, string) leaf of a figure."""
    if isinstance(node, dict):
        return [item for k, v in node.items() for item in _strings(v, k)]
    if isinstance(node, list):
        return [item for v in node for item in _strings(v, key)]
    return [(key, node)] if isinstance(node, str) else []


@pytest.mark.parametrize("case", sorted(_hostile_results()))
def test_hostile_text_is_escaped_in_every_figure_position(case):
    chart_type = case.split("/")[0]
    figure = build_figure(chart_type, f"revenue by region {HOSTILE}", _hostile_results()[case])
    go.Figure(figure)
    leaves = _strings(figure)
    for key, text in leaves:
        if key in _TEMPLATES:
            # Templates are livebi's own markup: data only enters through placeholders.
            assert "evil" not in text and "alert" not in text and "Jerry" not in text, (key, text)
        else:
            assert "<" not in text and ">" not in text, (key, text)
    shown = " ".join(text for _, text in leaves)
    assert "&lt;a href=&quot;https://evil.example" in shown or "&lt;a href=\"https://evil.example" in shown
    assert "Tom &amp; &lt;b&gt;Jerry&lt;/b&gt;" in shown or chart_type in ("line", "area", "scatter")


def test_hostile_cases_cover_every_chart_type_with_a_figure():
    from livebi.agents.viz.model import FIGURELESS

    assert {case.split("/")[0] for case in _hostile_results()} == set(CHART_TYPES) - FIGURELESS


def test_hostile_text_through_choose_chart():
    """The automatic path (choose_chart) builds its figures the same way."""
    for case, res in _hostile_results().items():
        chart = choose_chart(f"share of revenue by {HOSTILE}", res)
        if chart.figure is not None:
            for key, text in _strings(chart.figure):
                assert key in _TEMPLATES or "<" not in text, (case, key, text)
