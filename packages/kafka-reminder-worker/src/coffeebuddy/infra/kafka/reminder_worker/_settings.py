"""ReminderSettings: every tunable of the worker, read from `REMINDER_*` variables."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from coffeebuddy.infra.kafka.config import EnvSettings, SettingProblem
from coffeebuddy.infra.kafka.models import REMINDER_WORKER_SOURCE
from coffeebuddy.infra.kafka.reminder_worker._gc import DEFAULT_GC_THRESHOLDS

__all__ = ["ReminderSettings"]


class ReminderSettings(EnvSettings):
    """The worker's settings, passed whole to `ReminderWorker`; `from_env()` reads them.

    Seconds are floats (`_s`). `send_timeout_s` must be the sender's own client timeout: the
    claim deadline follows from it (the service sets it from `SLACK_TIMEOUT_S`)."""

    model_config = SettingsConfigDict(env_prefix="REMINDER_")
    LABEL: ClassVar[str] = "reminder worker"

    late_grace_s: float = Field(default=900.0, ge=0, le=7 * 86400)
    """A reminder without `expires_at` may still be sent this long after its due time."""
    state_margin_s: float = Field(default=3600.0, ge=0)
    """Settled state is kept this long past the reminder's own lifetime, then tombstoned."""
    run_memory_s: float = Field(default=86400.0, gt=0)
    """A closed or cancelled run is remembered this long after its event."""
    max_pending: int = Field(default=100_000, ge=1, le=10_000_000)
    """Pending reminders held in memory; past it far-future schedules wait (see the README)."""
    max_waiting: int = Field(default=10_000, ge=1, le=10_000_000)
    """Far-future schedules waiting for room at max_pending; past it intake waits too."""
    max_concurrent_sends: int = Field(default=256, ge=1, le=4096)
    retry_initial_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=300.0, gt=0)
    auth_probe_initial_s: float = Field(default=1.0, gt=0)
    auth_probe_max_s: float = Field(default=30.0, gt=0)
    send_timeout_s: float = Field(default=10.0, gt=0, le=120)
    claim_start_window_s: float = Field(default=5.0, gt=0, le=120)
    """A post starts at most this long after its claim (the fence refuses it later)."""
    clock_skew_s: float = Field(default=2.0, ge=0, le=600)
    """Assumed bound on two hosts' clock difference (a new owner waits it out too)."""
    prepare_ahead_s: float = Field(default=30.0, ge=0, le=3600)
    claim_ahead_s: float = Field(default=0.25, ge=0)
    history: bool = True
    """Append every reminder state change to the history topic (`reminders show`)."""
    worker_id: str | None = Field(default=None, min_length=1, max_length=120)
    source: str = Field(default=REMINDER_WORKER_SOURCE, min_length=1, max_length=1024)
    tracing: bool | None = None
    """OpenTelemetry spans around sends: None follows the installed tracer provider."""
    gc_thresholds: Annotated[tuple[int, int, int] | None, NoDecode] = DEFAULT_GC_THRESHOLDS
    """The deployable's cyclic GC thresholds (`tune_gc`): `50000,20,100`, or `python`."""

    @field_validator("gc_thresholds", mode="before")
    @classmethod
    def _gc_thresholds(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip().lower()
        if text == "python":
            return None
        parts = [p.strip() for p in text.split(",")]
        if len(parts) == 3 and all(p.isdigit() and int(p) > 0 for p in parts):
            return tuple(int(p) for p in parts)
        raise ValueError(
            f"must be three positive integers like 50000,20,100 or 'python', got {value.strip()!r}"
        )

    def problems(self) -> list[SettingProblem]:
        v = self.variable
        out = []
        if self.retry_initial_s > self.retry_max_s:
            out.append(SettingProblem(v("retry_initial_s"), f"must be <= {v('retry_max_s')}"))
        if self.auth_probe_initial_s > self.auth_probe_max_s:
            out.append(
                SettingProblem(v("auth_probe_initial_s"), f"must be <= {v('auth_probe_max_s')}")
            )
        if self.claim_ahead_s >= self.claim_start_window_s:
            out.append(
                SettingProblem(
                    v("claim_ahead_s"),
                    f"must be below {v('claim_start_window_s')} ({self.claim_start_window_s} s)",
                )
            )
        return out

    @property
    def claim_ttl(self) -> float:
        """claimed_at -> deadline: the post starts within the start window and the client gives
        up `send_timeout_s` later, so nothing of the owner's post is in flight after it."""
        return self.claim_start_window_s + self.send_timeout_s
