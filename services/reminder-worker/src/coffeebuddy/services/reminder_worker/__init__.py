"""Deployable CoffeeBuddy reminder worker: reminder events in, Slack DMs out."""

from coffeebuddy.services.reminder_worker._version import __version__

__all__ = ["__version__"]
