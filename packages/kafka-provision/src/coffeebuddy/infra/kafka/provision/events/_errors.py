"""Errors of `events tail|publish`: each says what was wrong and where."""

from __future__ import annotations

from coffeebuddy.infra.kafka.provision._errors import ProvisionError


class EventsError(ProvisionError, ValueError):
    """Bad input for `events tail|publish` (unknown topic or type, bad --data): says what."""
