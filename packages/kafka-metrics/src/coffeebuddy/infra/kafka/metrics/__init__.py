"""Prometheus metrics shared by CoffeeBuddy Kafka clients and services."""

from coffeebuddy.infra.kafka.metrics._version import __version__

__all__ = ["__version__"]
