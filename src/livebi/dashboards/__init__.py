"""Dashboards: the pure data model and op application (model), the service that serializes,
persists and publishes edits (service)."""
