"""Real Kafka brokers (Apache Kafka, embedded Tansu, TLS, external) and their test helpers."""

from coffeebuddy.infra.kafka.testing._apache import (
    ADMIN_USER,
    SASL_MECHANISMS,
    ApacheKafka,
    SaslUser,
    TlsEndpoint,
)
from coffeebuddy.infra.kafka.testing._artifacts import (
    JAVA_MISSING,
    KAFKA_CACHE_ENV,
    KAFKA_HOME_ENV,
    KAFKA_VERSION,
    ApacheKafkaUnavailableError,
    apache_kafka_unavailable,
    find_java,
    resolve_kafka_runtime,
)
from coffeebuddy.infra.kafka.testing._broker import (
    APACHE_KAFKA_IMAGE,
    BROKER_KIND_ENV,
    SESSION_SASL_USERS,
    BrokerHandle,
    BrokerKind,
    docker_available,
    local_broker_kind,
    start_broker,
)
from coffeebuddy.infra.kafka.testing._capabilities import (
    CAPABILITIES,
    CAPABILITY_SKIP_PREFIX,
    BrokerCapabilities,
    CapabilityName,
    probe_capabilities,
    require_capability,
)
from coffeebuddy.infra.kafka.testing._certs import CertificateAuthority
from coffeebuddy.infra.kafka.testing._defaults import TEST_CLIENT_DEFAULTS
from coffeebuddy.infra.kafka.testing._embedded import (
    TANSU_BIN_ENV,
    BrokerStartError,
    EmbeddedBroker,
    find_tansu_binary,
)
from coffeebuddy.infra.kafka.testing._ports import free_port
from coffeebuddy.infra.kafka.testing._tls import (
    STUNNEL_BIN_ENV,
    STUNNEL_MISSING,
    StunnelNotFoundError,
    TlsBroker,
    find_stunnel,
)
from coffeebuddy.infra.kafka.testing._topics import TopicFactory, create_topics, unique_topic_name
from coffeebuddy.infra.kafka.testing._version import __version__
from coffeebuddy.infra.kafka.testing._wait import wait_until, wait_until_sync

__all__ = [
    "ADMIN_USER",
    "APACHE_KAFKA_IMAGE",
    "BROKER_KIND_ENV",
    "CAPABILITIES",
    "CAPABILITY_SKIP_PREFIX",
    "JAVA_MISSING",
    "KAFKA_CACHE_ENV",
    "KAFKA_HOME_ENV",
    "KAFKA_VERSION",
    "SASL_MECHANISMS",
    "SESSION_SASL_USERS",
    "STUNNEL_BIN_ENV",
    "STUNNEL_MISSING",
    "TANSU_BIN_ENV",
    "TEST_CLIENT_DEFAULTS",
    "ApacheKafka",
    "ApacheKafkaUnavailableError",
    "BrokerCapabilities",
    "BrokerHandle",
    "BrokerKind",
    "BrokerStartError",
    "CapabilityName",
    "CertificateAuthority",
    "EmbeddedBroker",
    "SaslUser",
    "StunnelNotFoundError",
    "TlsBroker",
    "TlsEndpoint",
    "TopicFactory",
    "__version__",
    "apache_kafka_unavailable",
    "create_topics",
    "docker_available",
    "find_java",
    "find_stunnel",
    "find_tansu_binary",
    "free_port",
    "local_broker_kind",
    "probe_capabilities",
    "require_capability",
    "resolve_kafka_runtime",
    "start_broker",
    "unique_topic_name",
    "wait_until",
    "wait_until_sync",
]
