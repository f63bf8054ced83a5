"""KafkaSettings.from_env(): the one way every CoffeeBuddy Kafka client is configured."""

from coffeebuddy.infra.kafka.config._compat import (
    AIOKAFKA_RANGE,
    EMBEDDED_CLUSTER_ID,
    abandon_consumer,
    abandon_producer,
    admin_send,
    cluster_id,
    leave_group_from_generation_zero,
    topic_partitions,
)
from coffeebuddy.infra.kafka.config._connection import check_connection
from coffeebuddy.infra.kafka.config._env import ENV_PREFIX, env_var
from coffeebuddy.infra.kafka.config._env_settings import EnvSettings
from coffeebuddy.infra.kafka.config._errors import (
    ConfigError,
    ConnectionFailure,
    KafkaConnectionError,
    KafkaSettingsError,
    SettingProblem,
    SettingsError,
)
from coffeebuddy.infra.kafka.config._redact import install_sasl_log_redaction
from coffeebuddy.infra.kafka.config._settings import (
    Acks,
    AutoOffsetReset,
    CompressionType,
    IsolationLevel,
    KafkaSettings,
    SaslMechanism,
    SecurityProtocol,
)
from coffeebuddy.infra.kafka.config._version import __version__

install_sasl_log_redaction()

__all__ = [
    "AIOKAFKA_RANGE",
    "EMBEDDED_CLUSTER_ID",
    "ENV_PREFIX",
    "Acks",
    "AutoOffsetReset",
    "CompressionType",
    "ConfigError",
    "ConnectionFailure",
    "EnvSettings",
    "IsolationLevel",
    "KafkaConnectionError",
    "KafkaSettings",
    "KafkaSettingsError",
    "SaslMechanism",
    "SecurityProtocol",
    "SettingProblem",
    "SettingsError",
    "__version__",
    "abandon_consumer",
    "abandon_producer",
    "admin_send",
    "check_connection",
    "cluster_id",
    "env_var",
    "install_sasl_log_redaction",
    "leave_group_from_generation_zero",
    "topic_partitions",
]
