"""Real Kafka brokers (embedded Tansu, TLS, external) and test doubles for CoffeeBuddy tests."""

from coffeebuddy.infra.kafka.testing._version import __version__

__all__ = ["__version__"]
