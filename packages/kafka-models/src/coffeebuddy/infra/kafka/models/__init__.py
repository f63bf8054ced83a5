"""Typed CloudEvents 1.0 schemas for CoffeeBuddy run and reminder events."""

from coffeebuddy.infra.kafka.models._version import __version__

__all__ = ["__version__"]
