"""Live data: rows coming in (the ingest API), changes detected, widgets refreshed while watched."""
