"""coffeebuddy-kafka: validate, render, plan, apply and drift-check topics and ACLs."""

from coffeebuddy.infra.kafka.provision._version import __version__

__all__ = ["__version__"]
