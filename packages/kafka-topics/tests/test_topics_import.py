import coffeebuddy.infra.kafka.topics as pkg


def test_topics_package_exposes_version() -> None:
    assert pkg.__version__ == "0.1.0"
