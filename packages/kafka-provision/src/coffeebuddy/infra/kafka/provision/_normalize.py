"""Normalise topic config values so "7d" and "604800000" compare equal and Kafka gets the latter."""

from __future__ import annotations

import re

from coffeebuddy.infra.kafka.provision._errors import ProvisionError

_DURATION_UNITS_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "min": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
}
_SIZE_UNITS = {
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_QUANTITY = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_LIST_KEYS = frozenset({"cleanup.policy"})
_BOOL_VALUES = frozenset({"true", "false"})


class ConfigValueError(ProvisionError, ValueError):
    """A config value this tool cannot turn into what Kafka expects."""


def _is_duration_key(key: str) -> bool:
    return key.endswith(".ms")


def _is_size_key(key: str) -> bool:
    return key.endswith(".bytes")


def _quantity(key: str, value: str, units: dict[str, int]) -> str:
    match = _QUANTITY.match(value)
    if match is None:
        raise ConfigValueError(f"config {key}={value!r}: expected a number with optional unit")
    number, unit = match.group(1), match.group(2).lower()
    if unit and unit not in units:
        allowed = ", ".join(sorted(units))
        raise ConfigValueError(f"config {key}={value!r}: unknown unit {unit!r} (use {allowed})")
    scaled = float(number) * units.get(unit, 1) if unit else float(number)
    if scaled != int(scaled):
        raise ConfigValueError(f"config {key}={value!r}: not a whole number once scaled")
    return str(int(scaled))


def normalize_config_value(key: str, value: str | int | float | bool) -> str:
    """Kafka's canonical text for `value`: durations in ms, sizes in bytes, sorted policy lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    lowered = text.lower()
    if lowered in _BOOL_VALUES:
        return lowered
    if key in _LIST_KEYS:
        return ",".join(sorted(part.strip().lower() for part in text.split(",") if part.strip()))
    if _is_duration_key(key):
        return _quantity(key, text, _DURATION_UNITS_MS)
    if _is_size_key(key):
        return _quantity(key, text, _SIZE_UNITS)
    if re.fullmatch(r"-?\d+\.\d+", text):
        return repr(float(text))
    return text


def values_equal(key: str, left: str | None, right: str | None) -> bool:
    """Compare two config values after normalisation (unparseable ones compare as text)."""
    if left is None or right is None:
        return left == right
    try:
        return normalize_config_value(key, left) == normalize_config_value(key, right)
    except ConfigValueError:
        return left.strip() == right.strip()
