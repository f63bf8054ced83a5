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


class KafkaSettingsError(ValueError):
    """The Kafka configuration is invalid; ``problems`` lists every problem found at once."""

    def __init__(self, problems: Iterable[SettingProblem]) -> None:
        self.problems: list[SettingProblem] = list(problems)
        count = len(self.problems)
        header = f"invalid Kafka configuration ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([header, *(f"  - {p}" for p in self.problems)]))

    def __reduce__(self) -> tuple[type[KafkaSettingsError], tuple[list[SettingProblem]]]:
        return (type(self), (self.problems,))


class ConnectionFailure(NamedTuple):
    """Why one broker address could not be used, and what to do about it."""

    address: str
    message: str

    def __str__(self) -> str:
        return self.message


class KafkaConnectionError(ConnectionError):
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
