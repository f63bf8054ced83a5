"""Metrics-aware CloudEvents producer for CoffeeBuddy topics."""

from coffeebuddy.infra.kafka.producer._version import __version__

__all__ = ["__version__"]
