"""The provision package's root error: every error the CLI and its API raise subclasses it."""

from __future__ import annotations


class ProvisionError(Exception):
    """Root of this package's errors: a caller catches every provisioning failure with one."""
