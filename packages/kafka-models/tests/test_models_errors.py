"""One root: every public exception of the models package is a `ModelError`."""

from __future__ import annotations

import coffeebuddy.infra.kafka.models as models
from coffeebuddy.infra.kafka.models import EventDecodeError, ModelError, StateRecordError


def test_models_public_exceptions_share_one_root() -> None:
    public = [getattr(models, name) for name in models.__all__]
    errors = {e for e in public if isinstance(e, type) and issubclass(e, BaseException)}
    assert errors >= {ModelError, EventDecodeError, StateRecordError}
    assert [e.__name__ for e in errors if not issubclass(e, ModelError)] == []
    # the builtin base existing `except` clauses rely on stays
    assert issubclass(EventDecodeError, ValueError)
    assert issubclass(StateRecordError, ValueError)
