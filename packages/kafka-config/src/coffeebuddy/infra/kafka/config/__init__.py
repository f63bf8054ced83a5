"""KafkaSettings.from_env(): the one way every CoffeeBuddy Kafka client is configured."""

from coffeebuddy.infra.kafka.config._version import __version__

__all__ = ["__version__"]
