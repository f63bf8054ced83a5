"""Errors raised by the config package; messages name variables, never secret values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


class SettingProblem(NamedTuple):
    """One thing wrong with the configuration: the environment variable and what is wrong."""

    variable: str
    message: str

    def __str__(self) -> str:
        return f"{self.variable}: {self.message}"


class ConfigError(Exception):
    """Root of every error the config package raises."""


class SettingsError(ConfigError, ValueError):
    """A configuration read from the environment is invalid; ``problems`` lists every problem
    found at once, each naming its variable (values of secrets are never shown)."""

    what = "configuration"

    def __init__(self, problems: Iterable[SettingProblem], what: str | None = None) -> None:
        self.problems: list[SettingProblem] = list(problems)
        if what is not None:
            self.what = what
        count = len(self.problems)
        header = f"invalid {self.what} ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([header, *(f"  - {p}" for p in self.problems)]))

    def __reduce__(self) -> tuple[type[SettingsError], tuple[list[SettingProblem], str]]:
        return (type(self), (self.problems, self.what))


class KafkaSettingsError(SettingsError):
    """The Kafka configuration is invalid; ``problems`` lists every problem found at once."""

    what = "Kafka configuration"


class ConnectionFailure(NamedTuple):
    """Why one broker address could not be used, and what to do about it."""

    address: str
    message: str

    def __str__(self) -> str:
        return self.message


class KafkaConnectionError(ConfigError, ConnectionError):
    """The brokers in the settings cannot be reached or spoken to; the message says why."""

    def __init__(self, failures: Iterable[ConnectionFailure], summary: str | None = None) -> None:
        self.failures: list[ConnectionFailure] = list(failures)
        self.summary = summary
        lines = [summary or "cannot connect to Kafka:"]
        lines.extend(f"  - {f.message}" for f in self.failures)
        super().__init__("\n".join(lines))

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(
        self,
    ) -> tuple[type[KafkaConnectionError], tuple[list[ConnectionFailure], str | None]]:
        return (type(self), (self.failures, self.summary))
