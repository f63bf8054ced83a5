"""One root: every public exception of the topics package is a `TopicsError`."""

from __future__ import annotations

import coffeebuddy.infra.kafka.topics as topics
from coffeebuddy.infra.kafka.topics import CatalogError, TopicsError


def test_topics_public_exceptions_share_one_root() -> None:
    public = [getattr(topics, name) for name in topics.__all__]
    errors = {e for e in public if isinstance(e, type) and issubclass(e, BaseException)}
    assert errors >= {TopicsError, CatalogError}
    assert [e.__name__ for e in errors if not issubclass(e, TopicsError)] == []
    # the builtin base existing `except` clauses rely on stays
    assert issubclass(CatalogError, ValueError)
