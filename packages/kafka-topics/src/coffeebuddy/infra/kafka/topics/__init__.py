"""Declarative topic, consumer-group and ACL catalog for CoffeeBuddy's Kafka slice."""

from coffeebuddy.infra.kafka.topics._version import __version__

__all__ = ["__version__"]
