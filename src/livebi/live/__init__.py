"""Live dashboards: refreshes while watched, change routing, alerts."""
