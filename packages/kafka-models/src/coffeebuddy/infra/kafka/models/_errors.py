"""The models package's root exception."""

from __future__ import annotations

__all__ = ["ModelError"]


class ModelError(Exception):
    """Root of every error the models package raises (bad events, bad state records)."""
