"""Real Kafka brokers (Apache Kafka, embedded Tansu, TLS, external) and their test helpers."""

from coffeebuddy.infra.kafka.testing._apache import (
    SASL_MECHANISMS,
    ApacheKafka,
)
from coffeebuddy.infra.kafka.testing._artifacts import (
    KAFKA_VERSION,
    ApacheKafkaUnavailableError,
    apache_kafka_unavailable,
    resolve_kafka_runtime,
)
from coffeebuddy.infra.kafka.testing._broker import (
    SESSION_SASL_USERS,
    BrokerHandle,
    local_broker_kind,
    start_broker,
)
from coffeebuddy.infra.kafka.testing._capabilities import CAPABILITIES, require_capability
from coffeebuddy.infra.kafka.testing._certs import CertificateAuthority
from coffeebuddy.infra.kafka.testing._defaults import TEST_CLIENT_DEFAULTS
from coffeebuddy.infra.kafka.testing._embedded import EmbeddedBroker
from coffeebuddy.infra.kafka.testing._errors import BrokerStartError, KafkaTestingError
from coffeebuddy.infra.kafka.testing._ports import free_port
from coffeebuddy.infra.kafka.testing._tls import StunnelNotFoundError, TlsBroker
from coffeebuddy.infra.kafka.testing._topics import TopicFactory, create_topics, unique_topic_name
from coffeebuddy.infra.kafka.testing._version import __version__
from coffeebuddy.infra.kafka.testing._wait import wait_until, wait_until_sync

__all__ = [
    "CAPABILITIES",
    "KAFKA_VERSION",
    "SASL_MECHANISMS",
    "SESSION_SASL_USERS",
    "TEST_CLIENT_DEFAULTS",
    "ApacheKafka",
    "ApacheKafkaUnavailableError",
    "BrokerHandle",
    "BrokerStartError",
    "CertificateAuthority",
    "EmbeddedBroker",
    "KafkaTestingError",
    "StunnelNotFoundError",
    "TlsBroker",
    "TopicFactory",
    "__version__",
    "apache_kafka_unavailable",
    "create_topics",
    "free_port",
    "local_broker_kind",
    "require_capability",
    "resolve_kafka_runtime",
    "start_broker",
    "unique_topic_name",
    "wait_until",
    "wait_until_sync",
]
