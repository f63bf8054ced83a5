"""KafkaSettings.from_env(): the one way every CoffeeBuddy Kafka client is configured."""

from coffeebuddy.infra.kafka.config import _redact
from coffeebuddy.infra.kafka.config._compat import (
    EMBEDDED_CLUSTER_ID,
    abandon_consumer,
    abandon_producer,
    admin_send,
    cluster_id,
    leave_group_from_generation_zero,
    topic_partitions,
)
from coffeebuddy.infra.kafka.config._connection import check_connection
from coffeebuddy.infra.kafka.config._env_settings import EnvSettings
from coffeebuddy.infra.kafka.config._errors import (
    ConfigError,
    KafkaConnectionError,
    KafkaSettingsError,
    SettingProblem,
    SettingsError,
)
from coffeebuddy.infra.kafka.config._settings import KafkaSettings
from coffeebuddy.infra.kafka.config._version import __version__

_redact.install_sasl_log_redaction()

__all__ = [
    "EMBEDDED_CLUSTER_ID",
    "ConfigError",
    "EnvSettings",
    "KafkaConnectionError",
    "KafkaSettings",
    "KafkaSettingsError",
    "SettingProblem",
    "SettingsError",
    "__version__",
    "abandon_consumer",
    "abandon_producer",
    "admin_send",
    "check_connection",
    "cluster_id",
    "leave_group_from_generation_zero",
    "topic_partitions",
]
