"""Placeholder for the fake Slack Web API server (being written); see docs/ARCHITECTURE.md."""

from __future__ import annotations


class FakeSlackServer:
    """Local aiohttp stand-in for the Slack Web API methods the reminder worker uses."""
