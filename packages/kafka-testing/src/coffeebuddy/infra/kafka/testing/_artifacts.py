"""Where the Apache Kafka broker comes from: Java, and the pinned jars from Maven Central.

Either ``$KAFKA_HOME`` names an unpacked Apache Kafka distribution (its ``libs/``), or the pinned
``apache-kafka.pom.xml`` beside this module is resolved once with ``mvn`` into a cache outside
the repository (``$COFFEEBUDDY_KAFKA_CACHE``, default ``~/.cache/coffeebuddy/apache-kafka``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.resources
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from coffeebuddy.infra.kafka.testing._embedded import BrokerStartError

__all__ = [
    "JAVA_MISSING",
    "KAFKA_CACHE_ENV",
    "KAFKA_HOME_ENV",
    "KAFKA_VERSION",
    "ApacheKafkaUnavailableError",
    "KafkaRuntime",
    "apache_kafka_unavailable",
    "find_java",
    "resolve_kafka_runtime",
]

#: The Apache Kafka version the test broker runs (also pinned in ``apache-kafka.pom.xml``).
KAFKA_VERSION = "4.1.1"
#: An unpacked Apache Kafka distribution to use instead of resolving jars with Maven.
KAFKA_HOME_ENV = "KAFKA_HOME"
#: Folder holding the resolved jars (default ``~/.cache/coffeebuddy/apache-kafka``).
KAFKA_CACHE_ENV = "COFFEEBUDDY_KAFKA_CACHE"

JAVA_MISSING = (
    "Apache Kafka needs Java 17 or newer and Maven to fetch its jars: install them "
    "(Debian: apt-get install openjdk-17-jre-headless maven), or set KAFKA_HOME to an unpacked "
    "Apache Kafka 4.x distribution"
)
_POM = "apache-kafka.pom.xml"
_MIN_JAVA = 17
_JAVA_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


class ApacheKafkaUnavailableError(BrokerStartError):
    """Java, Maven or the Kafka jars are missing: the Apache Kafka broker cannot run here."""


@dataclass(frozen=True)
class KafkaRuntime:
    """A Java binary and the classpath that runs Apache Kafka with it."""

    java: Path
    classpath: str
    source: str
    """Where the jars came from (``KAFKA_HOME=...`` or the Maven cache folder)."""


def find_java(environ: Mapping[str, str] | None = None) -> Path:
    """``$JAVA_HOME/bin/java``, else ``java`` on PATH; at least Java 17 (Kafka 4.x brokers)."""
    env = os.environ if environ is None else environ
    candidates: list[str] = []
    if env.get("JAVA_HOME"):
        candidates.append(str(Path(env["JAVA_HOME"]) / "bin" / "java"))
    found = shutil.which("java", path=env.get("PATH"))
    if found:
        candidates.append(found)
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            major = _java_major(candidate)
            if major is not None and major >= _MIN_JAVA:
                return Path(candidate)
            raise ApacheKafkaUnavailableError(
                f"{candidate} is Java {major or 'of unknown version'}; {JAVA_MISSING}"
            )
    raise ApacheKafkaUnavailableError(f"no java found; {JAVA_MISSING}")


def _java_major(java: str) -> int | None:
    try:
        done = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _JAVA_VERSION.search(done.stderr + done.stdout)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8" is Java 8


def _cache_root(env: Mapping[str, str]) -> Path:
    if env.get(KAFKA_CACHE_ENV):
        return Path(env[KAFKA_CACHE_ENV])
    base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "coffeebuddy" / "apache-kafka"


def _pom_text() -> str:
    return importlib.resources.files(__package__ or "").joinpath(_POM).read_text("utf-8")


def _libs_dir(env: Mapping[str, str]) -> Path:
    digest = hashlib.sha256(_pom_text().encode()).hexdigest()[:12]
    return _cache_root(env) / f"{KAFKA_VERSION}-{digest}" / "libs"


def apache_kafka_unavailable(environ: Mapping[str, str] | None = None) -> str | None:
    """``None`` when an Apache Kafka broker can be started here, else why not (cheap check)."""
    env = os.environ if environ is None else environ
    try:
        find_java(env)
    except ApacheKafkaUnavailableError as exc:
        return str(exc)
    if env.get(KAFKA_HOME_ENV):
        libs = Path(env[KAFKA_HOME_ENV]) / "libs"
        return None if libs.is_dir() else f"{KAFKA_HOME_ENV}={env[KAFKA_HOME_ENV]} has no libs/"
    if (_libs_dir(env) / ".complete").exists() or shutil.which("mvn", path=env.get("PATH")):
        return None
    return f"the Kafka {KAFKA_VERSION} jars are not cached and mvn is missing; {JAVA_MISSING}"


def resolve_kafka_runtime(environ: Mapping[str, str] | None = None) -> KafkaRuntime:
    """Java and the Kafka classpath, resolving the pinned jars with ``mvn`` on first use."""
    env = os.environ if environ is None else environ
    java = find_java(env)
    if env.get(KAFKA_HOME_ENV):
        libs = Path(env[KAFKA_HOME_ENV]) / "libs"
        if not libs.is_dir():
            raise ApacheKafkaUnavailableError(
                f"{KAFKA_HOME_ENV}={env[KAFKA_HOME_ENV]} is not an Apache Kafka distribution "
                "(no libs/ folder)"
            )
        return KafkaRuntime(java, f"{libs}/*", f"{KAFKA_HOME_ENV}={env[KAFKA_HOME_ENV]}")
    libs = _libs_dir(env)
    if not (libs / ".complete").exists():
        with _lock(libs.parent):
            if not (libs / ".complete").exists():
                _resolve_with_maven(libs, env)
    return KafkaRuntime(java, f"{libs}/*", str(libs))


@contextlib.contextmanager
def _lock(folder: Path) -> Iterator[None]:
    """One resolver at a time (parallel test sessions share the cache)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _resolve_with_maven(libs: Path, env: Mapping[str, str]) -> None:
    mvn = shutil.which("mvn", path=env.get("PATH"))
    if mvn is None:
        raise ApacheKafkaUnavailableError(f"mvn is not installed; {JAVA_MISSING}")
    staging = Path(tempfile.mkdtemp(prefix="resolve-", dir=libs.parent))
    try:
        pom = staging / "pom.xml"
        pom.write_text(_pom_text(), "utf-8")
        out = staging / "libs"
        command = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={out}",
            "-DincludeScope=runtime",
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=900, check=False, env=dict(env)
            )
        except subprocess.TimeoutExpired as exc:
            raise ApacheKafkaUnavailableError(
                f"resolving Apache Kafka {KAFKA_VERSION} with Maven took over 900 s"
            ) from exc
        jars = list(out.glob("*.jar")) if out.is_dir() else []
        if done.returncode != 0 or not jars:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
            raise ApacheKafkaUnavailableError(
                f"mvn could not resolve Apache Kafka {KAFKA_VERSION} (exit {done.returncode}):\n"
                f"{tail}"
            )
        (out / ".complete").write_text(f"{len(jars)} jars\n")
        if libs.exists():
            shutil.rmtree(libs)
        out.rename(libs)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
