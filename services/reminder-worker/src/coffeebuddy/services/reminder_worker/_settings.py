"""The deployable's settings: Slack (`SLACK_*`), the pod (`WORKER_*`), the worker's own
`ReminderSettings` (`REMINDER_*`, passed whole to the worker) and `LOG_LEVEL`; Kafka has its own.
Every problem of every part is reported at once; a typo gets "did you mean"."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from coffeebuddy.infra.kafka.config import EnvSettings, SettingProblem, SettingsError
from coffeebuddy.infra.kafka.reminder_worker import ReminderSettings
from coffeebuddy.services.reminder_worker._slack_client import DEFAULT_BASE_URL

__all__ = ["ServiceSettings", "ServiceSettingsError"]

log = logging.getLogger("coffeebuddy.reminder_worker.service")

_RENAMED = {
    "SLACK_AUTH_PROBE_MAX_S": "renamed to REMINDER_AUTH_PROBE_MAX_S",
    "COFFEEBUDDY_DEV_FAKE_SLACK": "removed: `hatch run dev` runs the fake Slack (its own package)",
    "REMINDER_UPGRADE_FROM_DELIVERY_LOG": "removed with the delivery-log upgrade (CHANGELOG.md)",
}


class ServiceSettingsError(SettingsError):
    """Every bad or missing variable at once, each named (values of secrets are never shown)."""

    what = "reminder-worker configuration"


class SlackSettings(EnvSettings):
    model_config = SettingsConfigDict(env_prefix="SLACK_")
    LABEL: ClassVar[str] = "Slack"
    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"bot_token"})

    bot_token: SecretStr | None = None
    api_base_url: str = DEFAULT_BASE_URL
    timeout_s: float = Field(default=10.0, ge=0.1, le=120)

    @field_validator("bot_token")
    @classmethod
    def _no_space(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and any(c.isspace() for c in value.get_secret_value()):
            raise ValueError("must not contain whitespace")
        return value

    @field_validator("api_base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"must be an http(s) URL ending in /api/, got {value!r}")
        return value if value.endswith("/") else value + "/"


class PodSettings(EnvSettings):
    model_config = SettingsConfigDict(env_prefix="WORKER_")
    LABEL: ClassVar[str] = "reminder-worker pod"

    http_host: str = "0.0.0.0"  # noqa: S104 - the pod's probes and scraper reach it from outside
    http_port: int = Field(default=8080, ge=0, le=65535)
    drain_timeout_s: float = Field(default=20.0, ge=1, le=3600)


_PARTS: dict[str, type[EnvSettings]] = {
    "slack": SlackSettings,
    "pod": PodSettings,
    "reminder": ReminderSettings,
}


@dataclass(frozen=True)
class ServiceSettings:
    """What the deployable worker needs besides `KafkaSettings`."""

    slack: SlackSettings = field(default_factory=SlackSettings.defaults)
    pod: PodSettings = field(default_factory=PodSettings.defaults)
    reminder: ReminderSettings = field(default_factory=ReminderSettings.defaults)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    def __post_init__(self) -> None:
        # the claim deadline follows from the Slack client's own timeout (see the RUNBOOK)
        if self.reminder.send_timeout_s != self.slack.timeout_s:
            reminder = self.reminder.model_copy(update={"send_timeout_s": self.slack.timeout_s})
            object.__setattr__(self, "reminder", reminder)

    @property
    def slack_bot_token(self) -> SecretStr | None:
        return self.slack.bot_token

    @property
    def slack_api_base_url(self) -> str:
        return self.slack.api_base_url

    @property
    def http_port(self) -> int:
        return self.pod.http_port

    @property
    def drain_timeout_s(self) -> float:
        return self.pod.drain_timeout_s

    def __repr__(self) -> str:
        token = "<set>" if self.slack.bot_token else "<unset>"
        return (
            f"ServiceSettings(slack_bot_token={token}, slack_api_base_url="
            f"{self.slack.api_base_url!r}, http_port={self.pod.http_port}, "
            f"drain_timeout_s={self.pod.drain_timeout_s})"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        env = dict(os.environ if environ is None else environ)
        problems: list[SettingProblem] = []
        parts: dict[str, EnvSettings] = {}
        for name, part in _PARTS.items():
            try:
                parts[name] = part.from_env(env)
            except SettingsError as exc:
                problems.extend(exc.problems)
        if env.get("REMINDER_SEND_TIMEOUT_S", "").strip():
            problems.append(
                SettingProblem(
                    "REMINDER_SEND_TIMEOUT_S",
                    "is the Slack client's timeout here: set SLACK_TIMEOUT_S instead",
                )
            )
        for variable, what in _RENAMED.items():
            if env.get(variable, "").strip():
                log.warning("%s is no setting any more: %s", variable, what)
        if not env.get("SLACK_BOT_TOKEN", "").strip():
            problems.append(
                SettingProblem(
                    "SLACK_BOT_TOKEN",
                    "is required: the bot token (xoxb-...) with chat:write, im:write and "
                    "im:history (`hatch run dev` runs a local fake Slack instead)",
                )
            )
        level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            problems.append(
                SettingProblem("LOG_LEVEL", f"must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
            )
        if problems:
            raise ServiceSettingsError(problems)
        return cls(**parts, log_level=level)  # type: ignore[arg-type]
