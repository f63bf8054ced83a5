"""Service settings (Slack, HTTP, drain budget) read from the environment; Kafka has its own."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import SecretStr

from coffeebuddy.infra.kafka.reminder_worker import DEFAULT_GC_THRESHOLDS

__all__ = ["ServiceSettings", "ServiceSettingsError"]

DEFAULT_SLACK_API_BASE_URL = "https://slack.com/api/"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class ServiceSettingsError(ValueError):
    """Every bad or missing variable at once, each named (values of secrets are never shown)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {var}: {msg}" for var, msg in problems)
        super().__init__(f"invalid reminder-worker configuration:\n{lines}")


@dataclass(frozen=True)
class ServiceSettings:
    """What the deployable worker needs besides `KafkaSettings`."""

    slack_bot_token: SecretStr | None = field(repr=False)
    slack_api_base_url: str = DEFAULT_SLACK_API_BASE_URL
    slack_timeout_s: float = 10.0
    http_host: str = "0.0.0.0"  # noqa: S104 - the pod's probes and scraper reach it from outside
    http_port: int = 8080
    drain_timeout_s: float = 20.0
    log_level: str = "INFO"
    dev_fake_slack: bool = False
    late_grace_s: float = 900.0
    max_concurrent_sends: int = 256
    """A slot mostly waits (claim round trip, then Slack's answer), so it takes many to keep
    up with a burst: 64 capped one worker at ~1,000 DMs/s against a local fake Slack."""
    auth_probe_max_s: float = 30.0
    clock_skew_s: float = 2.0
    max_pending: int = 100_000
    prepare_ahead_s: float = 30.0
    claim_ahead_s: float = 0.25
    """A due reminder's claim is written this long before its time (the post starts at it)."""
    upgrade_from_delivery_log: bool = True
    gc_thresholds: tuple[int, int, int] | None = DEFAULT_GC_THRESHOLDS
    """The process's cyclic GC thresholds (`tune_gc`); None leaves Python's defaults."""

    def __repr__(self) -> str:
        token = "<set>" if self.slack_bot_token else "<unset>"
        return (
            f"ServiceSettings(slack_bot_token={token}, slack_api_base_url="
            f"{self.slack_api_base_url!r}, http_port={self.http_port}, "
            f"drain_timeout_s={self.drain_timeout_s}, dev_fake_slack={self.dev_fake_slack})"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        env = os.environ if environ is None else environ
        problems: list[tuple[str, str]] = []

        def number(var: str, default: float, *, low: float, high: float) -> float:
            raw = env.get(var, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                problems.append((var, f"must be a number, got {raw!r}"))
                return default
            if not low <= value <= high:
                problems.append((var, f"must be between {low:g} and {high:g}, got {raw}"))
            return value

        def flag(var: str) -> bool:
            raw = env.get(var, "").strip().lower()
            if raw in _TRUE:
                return True
            if raw not in _FALSE:
                problems.append((var, f"must be true or false, got {raw!r}"))
            return False

        dev_fake = flag("COFFEEBUDDY_DEV_FAKE_SLACK")
        token_raw = env.get("SLACK_BOT_TOKEN", "").strip()
        token = SecretStr(token_raw) if token_raw else None
        if token is None and not dev_fake:
            problems.append(
                (
                    "SLACK_BOT_TOKEN",
                    "is required: the bot token (xoxb-...) with chat:write, im:write and "
                    "im:history (or set COFFEEBUDDY_DEV_FAKE_SLACK=1 for a local fake Slack)",
                )
            )
        elif token_raw and any(c.isspace() for c in token_raw):
            problems.append(("SLACK_BOT_TOKEN", "must not contain whitespace"))
        base_url = env.get("SLACK_API_BASE_URL", "").strip() or DEFAULT_SLACK_API_BASE_URL
        if not base_url.startswith(("https://", "http://")):
            problems.append(
                ("SLACK_API_BASE_URL", f"must be an http(s) URL ending in /api/, got {base_url!r}")
            )
        if not base_url.endswith("/"):
            base_url += "/"
        port = number("WORKER_HTTP_PORT", 8080, low=0, high=65535)
        if port != int(port):
            problems.append(("WORKER_HTTP_PORT", "must be a whole number"))
        drain = number("WORKER_DRAIN_TIMEOUT_S", 20.0, low=1, high=3600)
        timeout = number("SLACK_TIMEOUT_S", 10.0, low=0.1, high=120)
        grace = number("REMINDER_LATE_GRACE_S", 900.0, low=0, high=7 * 86400)
        sends = number("REMINDER_MAX_CONCURRENT_SENDS", 256, low=1, high=1024)
        skew = number("REMINDER_CLOCK_SKEW_S", 2.0, low=0, high=600)
        prepare_ahead = number("REMINDER_PREPARE_AHEAD_S", 30.0, low=0, high=3600)
        claim_ahead = number("REMINDER_CLAIM_AHEAD_S", 0.25, low=0, high=4)
        max_pending = number("REMINDER_MAX_PENDING", 100_000, low=1, high=10_000_000)
        probe_max = number("SLACK_AUTH_PROBE_MAX_S", 30.0, low=0.5, high=3600)
        upgrade = env.get("REMINDER_UPGRADE_FROM_DELIVERY_LOG", "1").strip().lower()
        if upgrade not in {"0", "1", "true", "false", "yes", "no"}:
            problems.append(("REMINDER_UPGRADE_FROM_DELIVERY_LOG", "must be 1 or 0"))
        gc_thresholds = _gc_thresholds(env.get("REMINDER_GC_THRESHOLDS", ""), problems)
        level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            problems.append(("LOG_LEVEL", f"must be DEBUG, INFO, WARNING or ERROR, got {level!r}"))
            level = "INFO"
        if problems:
            raise ServiceSettingsError(problems)
        return cls(
            slack_bot_token=token,
            slack_api_base_url=base_url,
            slack_timeout_s=timeout,
            http_host=env.get("WORKER_HTTP_HOST", "").strip() or "0.0.0.0",  # noqa: S104
            http_port=int(port),
            drain_timeout_s=drain,
            log_level=level,
            dev_fake_slack=dev_fake,
            late_grace_s=grace,
            max_concurrent_sends=int(sends),
            auth_probe_max_s=probe_max,
            clock_skew_s=skew,
            max_pending=int(max_pending),
            prepare_ahead_s=prepare_ahead,
            claim_ahead_s=claim_ahead,
            upgrade_from_delivery_log=upgrade in {"1", "true", "yes"},
            gc_thresholds=gc_thresholds,
        )


def _gc_thresholds(raw: str, problems: list[tuple[str, str]]) -> tuple[int, int, int] | None:
    """`REMINDER_GC_THRESHOLDS`: empty for ours, `python` for Python's own, or three integers."""
    text = raw.strip().lower()
    if not text:
        return DEFAULT_GC_THRESHOLDS
    if text == "python":
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) == 3 and all(p.isdigit() and int(p) > 0 for p in parts):
        return (int(parts[0]), int(parts[1]), int(parts[2]))
    problems.append(
        (
            "REMINDER_GC_THRESHOLDS",
            f"must be three positive integers like 50000,20,100 or 'python', got {raw.strip()!r}",
        )
    )
    return DEFAULT_GC_THRESHOLDS
