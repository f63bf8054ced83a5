"""coffeebuddy-kafka: validate, render, plan, apply and drift-check topics and ACLs.

The dead-letter tools (inspect, replay once, ledgers) live in the `dlq` subpackage; their main
names are re-exported here.
"""

from coffeebuddy.infra.kafka.provision._admin import AiokafkaAdmin, ClusterAdmin, TopicShape
from coffeebuddy.infra.kafka.provision._api import (
    apply_plan,
    build_plan,
    detect_drift,
    ensure_topics,
    render_manifests,
    stale_manifests,
    validate,
)
from coffeebuddy.infra.kafka.provision._apply import ApplyReport, PlanRefusedError, StepResult
from coffeebuddy.infra.kafka.provision._catalog import ENVIRONMENTS, desired_state
from coffeebuddy.infra.kafka.provision._cli import build_parser, main
from coffeebuddy.infra.kafka.provision._diff import diff
from coffeebuddy.infra.kafka.provision._exit import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_REFUSED,
    ExitCode,
)
from coffeebuddy.infra.kafka.provision._normalize import ConfigValueError, normalize_config_value
from coffeebuddy.infra.kafka.provision._plan import Change, Plan, PlanFileError, Scope
from coffeebuddy.infra.kafka.provision._types import (
    AclSpec,
    ConfigValue,
    DesiredState,
    DesiredTopic,
    ObservedState,
    ObservedTopic,
)
from coffeebuddy.infra.kafka.provision._version import __version__
from coffeebuddy.infra.kafka.provision.dlq import (
    REPLAYED_FROM_HEADER,
    DeadLetter,
    DeadLetterFilter,
    DlqError,
    FileReplayLedger,
    LedgerTopicMissingError,
    ReplayLedger,
    ReplayReport,
    TopicReplayLedger,
    inspect_dead_letters,
    replay_dead_letters,
)

__all__ = [
    "ENVIRONMENTS",
    "EXIT_CHANGES",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_REFUSED",
    "REPLAYED_FROM_HEADER",
    "AclSpec",
    "AiokafkaAdmin",
    "ApplyReport",
    "Change",
    "ClusterAdmin",
    "ConfigValue",
    "ConfigValueError",
    "DeadLetter",
    "DeadLetterFilter",
    "DesiredState",
    "DesiredTopic",
    "DlqError",
    "ExitCode",
    "FileReplayLedger",
    "LedgerTopicMissingError",
    "ObservedState",
    "ObservedTopic",
    "Plan",
    "PlanFileError",
    "PlanRefusedError",
    "ReplayLedger",
    "ReplayReport",
    "Scope",
    "StepResult",
    "TopicReplayLedger",
    "TopicShape",
    "__version__",
    "apply_plan",
    "build_parser",
    "build_plan",
    "desired_state",
    "detect_drift",
    "diff",
    "ensure_topics",
    "inspect_dead_letters",
    "main",
    "normalize_config_value",
    "render_manifests",
    "replay_dead_letters",
    "stale_manifests",
    "validate",
]
