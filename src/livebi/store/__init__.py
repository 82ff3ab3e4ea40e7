"""Metadata store (users, question history) behind one class picked by URL."""

from .metadata import MetadataStore, UserExists, async_url

__all__ = ["MetadataStore", "UserExists", "async_url"]
