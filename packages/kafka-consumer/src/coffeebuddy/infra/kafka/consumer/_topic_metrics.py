"""Label children of the per-topic consumer metrics, resolved once per topic."""

from __future__ import annotations

from coffeebuddy.infra.kafka.metrics import KafkaMetrics


class TopicMetrics:
    """Label children resolved once per topic, so the per-record path does no label lookups."""

    __slots__ = (
        "age",
        "consumed",
        "dead_letter",
        "deferred",
        "group",
        "metrics",
        "retry",
        "success",
        "topic",
    )

    def __init__(self, metrics: KafkaMetrics, topic: str, group: str) -> None:
        self.metrics = metrics
        self.topic = topic
        self.group = group
        self.consumed = metrics.messages_consumed.labels(topic, group)
        self.age = metrics.record_age.labels(topic, group)
        self.success = metrics.handler_duration.labels(topic, group, "success")
        self.deferred = metrics.handler_duration.labels(topic, group, "deferred")
        self.retry = metrics.handler_duration.labels(topic, group, "retry")
        self.dead_letter = metrics.handler_duration.labels(topic, group, "dead_letter")

    def error(self, exc: BaseException) -> None:
        label = self.metrics.error_type_label(type(exc).__name__)
        self.metrics.handler_errors.labels(self.topic, self.group, label).inc()
