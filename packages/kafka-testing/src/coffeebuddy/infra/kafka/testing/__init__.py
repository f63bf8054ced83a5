"""Real Kafka brokers (embedded Tansu, TLS, external) and test doubles for CoffeeBuddy tests."""

from coffeebuddy.infra.kafka.testing._broker import (
    APACHE_KAFKA_IMAGE,
    BROKER_KIND_ENV,
    BrokerHandle,
    BrokerKind,
    docker_available,
    start_broker,
)
from coffeebuddy.infra.kafka.testing._capabilities import (
    CAPABILITIES,
    BrokerCapabilities,
    CapabilityName,
    probe_capabilities,
    require_capability,
)
from coffeebuddy.infra.kafka.testing._embedded import (
    TANSU_BIN_ENV,
    BrokerStartError,
    EmbeddedBroker,
    find_tansu_binary,
)
from coffeebuddy.infra.kafka.testing._ports import free_port
from coffeebuddy.infra.kafka.testing._slack import FakeSlackServer
from coffeebuddy.infra.kafka.testing._tls import (
    STUNNEL_BIN_ENV,
    STUNNEL_MISSING,
    CertificateAuthority,
    StunnelNotFoundError,
    TlsBroker,
    find_stunnel,
)
from coffeebuddy.infra.kafka.testing._topics import TopicFactory, unique_topic_name
from coffeebuddy.infra.kafka.testing._version import __version__
from coffeebuddy.infra.kafka.testing._wait import wait_until, wait_until_sync

__all__ = [
    "APACHE_KAFKA_IMAGE",
    "BROKER_KIND_ENV",
    "CAPABILITIES",
    "STUNNEL_BIN_ENV",
    "STUNNEL_MISSING",
    "TANSU_BIN_ENV",
    "BrokerCapabilities",
    "BrokerHandle",
    "BrokerKind",
    "BrokerStartError",
    "CapabilityName",
    "CertificateAuthority",
    "EmbeddedBroker",
    "FakeSlackServer",
    "StunnelNotFoundError",
    "TlsBroker",
    "TopicFactory",
    "__version__",
    "docker_available",
    "find_stunnel",
    "find_tansu_binary",
    "free_port",
    "probe_capabilities",
    "require_capability",
    "start_broker",
    "unique_topic_name",
    "wait_until",
    "wait_until_sync",
]
