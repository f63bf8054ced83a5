"""The Kubernetes manifests and the Dockerfile agree (no container needed: the normal suite).

The container tests run the image with what `pod` reads from deploy/; these tests check that
what they read is consistent with the image and the catalog: the user, the port and its
consumers, the probe paths, the read-only root and the drain budget against the grace period.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coffeebuddy.infra.kafka.topics import CATALOG, REMINDER_WORKER_GROUP
from coffeebuddy.services.reminder_worker import ServiceSettings

if TYPE_CHECKING:
    from conftest import Dockerfile, PodSpec


def test_the_image_user_is_the_pods_non_root_user(pod: PodSpec, dockerfile: Dockerfile) -> None:
    # runAsNonRoot is only checkable by the kubelet with a numeric USER in the image.
    assert dockerfile.user == f"{pod.uid}:{pod.gid}"
    # the image's own user entry agrees (a process of the image's user gets the pod's group)
    assert (dockerfile.useradd_uid, dockerfile.useradd_gid) == (pod.uid, pod.gid)
    assert pod.uid != 0
    assert pod.run_as_non_root


def test_one_port_for_the_probes_the_scrape_and_the_service(
    pod: PodSpec, dockerfile: Dockerfile
) -> None:
    port = pod.http_port
    assert dockerfile.expose == [port]
    assert int(dockerfile.env["WORKER_HTTP_PORT"]) == port
    assert int(pod.config["WORKER_HTTP_PORT"]) == port
    assert {p.port for p in pod.probes.values()} == {port}
    assert int(pod.annotations["prometheus.io/port"]) == port
    service = pod.docs["Service"]
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in pod.ports
    assert int(service["metadata"]["annotations"]["prometheus.io/port"]) == port
    assert (
        service["metadata"]["annotations"]["prometheus.io/path"]
        == (pod.annotations["prometheus.io/path"])
    )


def test_probe_paths_are_the_workers_endpoints(pod: PodSpec, dockerfile: Dockerfile) -> None:
    assert pod.probes["startup"].path == pod.probes["liveness"].path == "/healthz"
    assert pod.probes["readiness"].path == "/readyz"
    assert pod.annotations["prometheus.io/path"] == "/metrics"
    # the Dockerfile's HEALTHCHECK (Docker-format images only) checks what liveness checks
    assert dockerfile.healthcheck_path == pod.probes["liveness"].path


def test_read_only_root_with_tmp_as_the_only_writable_path(
    pod: PodSpec, dockerfile: Dockerfile
) -> None:
    assert pod.read_only_root
    assert list(pod.writable_mounts) == ["/tmp"]
    # nothing at run time writes bytecode next to the installed modules (read-only there)
    assert dockerfile.env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert not pod.allow_privilege_escalation
    assert pod.cap_drop == ["ALL"]
    assert pod.cap_add == []


def test_drain_budget_ends_within_the_grace_period(pod: PodSpec) -> None:
    settings = ServiceSettings.from_env({**pod.config, "SLACK_BOT_TOKEN": "xoxb-manifest-check"})
    assert float(pod.config["WORKER_DRAIN_TIMEOUT_S"]) == settings.drain_timeout_s
    assert settings.drain_timeout_s < pod.grace_s


def test_kafka_identity_and_ca_match_the_catalog_and_the_volumes(pod: PodSpec) -> None:
    # The SASL user is the principal the catalog grants the worker's group to (its ACLs).
    (principal,) = [
        p.name
        for p in CATALOG.principals
        if any(
            b.resource_type == "GROUP" and b.resource_name == REMINDER_WORKER_GROUP.name
            for b in p.acl_bindings()
        )
    ]
    assert f"User:{pod.config['KAFKA_SASL_USERNAME']}" == principal
    ca_folder = pod.config["KAFKA_SSL_CAFILE"].rsplit("/", 1)[0]
    assert ca_folder in pod.read_only_mounts
    assert set(pod.secret_env) == {"SLACK_BOT_TOKEN", "KAFKA_SASL_PASSWORD"}
