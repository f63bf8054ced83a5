"""The topics package's root exception."""

from __future__ import annotations

__all__ = ["TopicsError"]


class TopicsError(Exception):
    """Root of every error class the topics package defines (`CatalogError`)."""
