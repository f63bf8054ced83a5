"""KAFKA_BOOTSTRAP_SERVERS parsing, example-based and property-based."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coffeebuddy.infra.kafka.config import KafkaSettings, KafkaSettingsError

_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
hostnames = st.lists(_label, min_size=1, max_size=4).map(".".join)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(lambda a: f"[{a}]")
ports = st.integers(min_value=1, max_value=65535)
addresses = st.builds(lambda h, p: f"{h}:{p}", st.one_of(hostnames, ipv4, ipv6), ports)


def _bootstrap(value: str) -> list[str]:
    return KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": value}).bootstrap_servers


@given(st.lists(addresses, min_size=1, max_size=5, unique_by=str.lower))
def test_config_bootstrap_valid_lists_round_trip(entries: list[str]) -> None:
    assert _bootstrap(" , ".join(entries)) == entries
    assert _bootstrap(",".join(entries) + ",") == entries  # a trailing comma is harmless


@given(st.text(max_size=40))
def test_config_bootstrap_any_text_is_accepted_or_explained(text: str) -> None:
    outcome: list[str] | KafkaSettingsError
    try:
        outcome = _bootstrap(text)
    except KafkaSettingsError as exc:
        outcome = exc
    if isinstance(outcome, KafkaSettingsError):
        assert [p.variable for p in outcome.problems] == ["KAFKA_BOOTSTRAP_SERVERS"]
    else:
        assert outcome
        assert all(":" in entry for entry in outcome)


@given(hostnames, st.one_of(st.integers(max_value=0), st.integers(min_value=65536)))
def test_config_bootstrap_out_of_range_port(host: str, port: int) -> None:
    with pytest.raises(KafkaSettingsError) as info:
        _bootstrap(f"{host}:{port}")
    (problem,) = info.value.problems
    assert problem.variable == "KAFKA_BOOTSTRAP_SERVERS"
    assert f"{host}:{port}" in problem.message


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("broker", "'broker' has no port; use host:port (e.g. broker:9092)"),
        ("broker:", "'broker:' has port ''"),
        (":9092", "':9092' has no host"),
        ("SASL_SSL://broker:9092", "drop 'SASL_SSL://'"),
        ("::1:9092", "write an IPv6 address in brackets"),
        ("[nothex]:9092", "invalid IPv6 address [nothex]"),
        ("bad_host!:9092", "invalid host 'bad_host!'"),
        ("a:1,A:1", "'A:1' is listed twice"),
    ],
)
def test_config_bootstrap_bad_entries_are_explained(value: str, fragment: str) -> None:
    with pytest.raises(KafkaSettingsError) as info:
        _bootstrap(value)
    (problem,) = info.value.problems
    assert problem.variable == "KAFKA_BOOTSTRAP_SERVERS"
    assert fragment in problem.message


def test_config_bootstrap_every_bad_entry_in_one_message() -> None:
    with pytest.raises(KafkaSettingsError) as info:
        _bootstrap("good:1,bad,worse:0")
    (problem,) = info.value.problems
    assert "'bad' has no port" in problem.message
    assert "'worse:0' has port 0" in problem.message
    assert "good:1" not in problem.message
