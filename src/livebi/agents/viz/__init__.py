"""The viz agent: choose a chart for a query result and build its Plotly figure.

Pure functions, no I/O: ``choose_chart(question, result, hint)`` reads the result's shape (time,
dimensions, measures), the question's wording and the NLP agent's hint, and returns a ``Chart``
with a JSON-safe Plotly figure (or a KPI card), the reason for the choice, and the other chart
types the same data could be shown as. See ``choice`` for the rules.
"""

from .choice import build_figure, choose_chart
from .formatting import format_value, humanize
from .model import CHART_TYPES, Chart, ChartHint

__all__ = ["CHART_TYPES", "Chart", "ChartHint", "build_figure", "choose_chart", "format_value", "humanize"]
