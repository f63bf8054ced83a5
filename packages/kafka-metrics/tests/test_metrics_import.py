import coffeebuddy.infra.kafka.metrics as pkg


def test_metrics_package_exposes_version() -> None:
    assert pkg.__version__ == "0.1.0"
