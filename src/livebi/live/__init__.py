"""Live dashboards: refresh what people watch, react to data changes, one query for all viewers."""
