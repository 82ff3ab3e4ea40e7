"""livebi: a real-time, natural-language BI server."""

__version__ = "0.1.0"
