"""Deployable CoffeeBuddy reminder worker: reminder events in, Slack DMs out.

`SlackDMSender` is the Slack implementation of the worker's `ReminderSender`;
`ReminderWorkerService` composes harness, producer, worker, sender and the HTTP probes.
The Slack stand-in for tests and dev mode is `coffeebuddy.services.fake_slack`.
"""

from coffeebuddy.services.reminder_worker._app import REQUIRED_TOPICS, ReminderWorkerService
from coffeebuddy.services.reminder_worker._logging import configure_logging
from coffeebuddy.services.reminder_worker._render import block_id_for, render_reminder, slack_date
from coffeebuddy.services.reminder_worker._sender import SlackDMSender
from coffeebuddy.services.reminder_worker._settings import ServiceSettings, ServiceSettingsError
from coffeebuddy.services.reminder_worker._telemetry import configure_tracing
from coffeebuddy.services.reminder_worker._version import __version__

__all__ = [
    "REQUIRED_TOPICS",
    "ReminderWorkerService",
    "ServiceSettings",
    "ServiceSettingsError",
    "SlackDMSender",
    "__version__",
    "block_id_for",
    "configure_logging",
    "configure_tracing",
    "render_reminder",
    "slack_date",
]
