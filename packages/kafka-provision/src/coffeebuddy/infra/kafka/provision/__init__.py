"""coffeebuddy-kafka: validate, render, plan, apply and drift-check topics and ACLs.

The dead-letter tools (inspect, replay once, ledgers) live in the `dlq` subpackage, events from
the shell in `events`, the reminder operator commands in `reminders`; import their names from
there.
"""

from coffeebuddy.infra.kafka.provision._admin import AiokafkaAdmin
from coffeebuddy.infra.kafka.provision._api import (
    apply_plan,
    build_plan,
    detect_drift,
    ensure_topics,
    render_manifests,
    stale_manifests,
    validate,
)
from coffeebuddy.infra.kafka.provision._apply import ApplyReport, PlanRefusedError
from coffeebuddy.infra.kafka.provision._catalog import ENVIRONMENTS
from coffeebuddy.infra.kafka.provision._cli import build_parser, main
from coffeebuddy.infra.kafka.provision._errors import ProvisionError
from coffeebuddy.infra.kafka.provision._exit import ExitCode
from coffeebuddy.infra.kafka.provision._plan import Plan, PlanFileError
from coffeebuddy.infra.kafka.provision._version import __version__

__all__ = [
    "ENVIRONMENTS",
    "AiokafkaAdmin",
    "ApplyReport",
    "ExitCode",
    "Plan",
    "PlanFileError",
    "PlanRefusedError",
    "ProvisionError",
    "__version__",
    "apply_plan",
    "build_parser",
    "build_plan",
    "detect_drift",
    "ensure_topics",
    "main",
    "render_manifests",
    "stale_manifests",
    "validate",
]
