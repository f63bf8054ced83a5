"""Placeholder for `coffeebuddy-kafka dlq inspect|replay` (being written)."""
