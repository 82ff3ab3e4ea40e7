"""The generated demo warehouse (a sales and finance company in DuckDB)."""

from livebi.demo.generate import ensure_demo, generate_demo

__all__ = ["ensure_demo", "generate_demo"]
