"""Graceful, at-least-once, poison-proof consumer harness for CoffeeBuddy topics."""

from coffeebuddy.infra.kafka.consumer._version import __version__

__all__ = ["__version__"]
