"""One root: every public exception of the config package is a `ConfigError`."""

from __future__ import annotations

import coffeebuddy.infra.kafka.config as config
from coffeebuddy.infra.kafka.config import (
    ConfigError,
    KafkaConnectionError,
    KafkaSettingsError,
    SettingsError,
)


def test_config_public_exceptions_share_one_root() -> None:
    public = [getattr(config, name) for name in config.__all__]
    errors = {e for e in public if isinstance(e, type) and issubclass(e, BaseException)}
    assert errors >= {ConfigError, SettingsError, KafkaSettingsError, KafkaConnectionError}
    assert [e.__name__ for e in errors if not issubclass(e, ConfigError)] == []
    # the builtin bases existing `except` clauses rely on stay
    assert issubclass(KafkaSettingsError, ValueError)
    assert issubclass(KafkaConnectionError, ConnectionError)
