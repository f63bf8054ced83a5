"""pytest plugin (entry point `pytest11`): the `fake_slack` fixture. The only pytest import."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from coffeebuddy.services.fake_slack import FakeSlackServer

__all__ = ["fake_slack"]


@pytest.fixture
def fake_slack() -> Iterator[FakeSlackServer]:
    """A running `FakeSlackServer` for one test (own thread: works in sync and async tests)."""
    with FakeSlackServer() as server:
        yield server
