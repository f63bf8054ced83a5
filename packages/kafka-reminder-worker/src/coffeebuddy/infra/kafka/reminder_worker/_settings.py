"""Validation of the worker's settings: every problem named at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.reminder_worker._core import WorkerConfig

__all__ = ["validate_settings"]


def validate_settings(cfg: WorkerConfig) -> None:
    """Raise ValueError listing every bad setting."""
    problems = []
    if cfg.max_pending < 1:
        problems.append(f"max_pending must be >= 1 (got {cfg.max_pending})")
    if cfg.late_grace < 0:
        problems.append(f"late_grace must not be negative (got {cfg.late_grace} s)")
    if cfg.state_margin < 0:
        problems.append(f"state_margin must not be negative (got {cfg.state_margin} s)")
    if cfg.run_memory <= 0:
        problems.append(f"run_memory must be positive (got {cfg.run_memory} s)")
    if not 0 < cfg.retry_initial <= cfg.retry_max:
        problems.append(
            f"retry_initial ({cfg.retry_initial}) must be > 0 and <= retry_max ({cfg.retry_max})"
        )
    if not 0 < cfg.probe_initial <= cfg.probe_max:
        problems.append(
            f"auth_probe_initial ({cfg.probe_initial}) must be > 0 and <= "
            f"auth_probe_max ({cfg.probe_max})"
        )
    if cfg.max_concurrent_sends < 1:
        problems.append(f"max_concurrent_sends must be >= 1 (got {cfg.max_concurrent_sends})")
    if cfg.send_timeout <= 0:
        problems.append(f"send_timeout must be positive (got {cfg.send_timeout} s)")
    if cfg.claim_start_window <= 0:
        problems.append(f"claim_start_window must be positive (got {cfg.claim_start_window} s)")
    if cfg.clock_skew < 0:
        problems.append(f"clock_skew must not be negative (got {cfg.clock_skew} s)")
    if cfg.prepare_ahead < 0:
        problems.append(f"prepare_ahead must not be negative (got {cfg.prepare_ahead} s)")
    if cfg.claim_ahead < 0 or 0 < cfg.claim_start_window <= cfg.claim_ahead:
        problems.append(
            f"claim_ahead must be >= 0 and below claim_start_window ({cfg.claim_start_window} s)"
            f" (got {cfg.claim_ahead} s)"
        )
    if problems:
        raise ValueError("ReminderWorker: " + "; ".join(problems))
