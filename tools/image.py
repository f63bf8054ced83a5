"""`hatch run image`: build the reminder-worker image with podman or docker, with no network in
the build.

1. Base: `python:3.12-slim` when the engine has it or can pull it; otherwise (no registry, as on
   these machines) a local Debian base made with debootstrap, cached as a root filesystem tarball
   under ~/.cache/coffeebuddy/reminder-worker-image and imported into the engine.
2. Wheelhouse: the third-party wheels of every package the Dockerfile copies (and hatchling, to
   build them), for the base image's Python and platform, downloaded on the host with pip into
   build/reminder-worker-image/wheelhouse. Versions are pinned to this environment's (under
   `hatch run image`, the ones the tests run against).
3. Build: services/reminder-worker/Dockerfile with `--network none`; prints the image's size and
   how much it adds to its base.

Podman needs three settings on these machines (runc, cgroupfs, no default ulimits; see
shared notes/containers.md): `Engine` passes them in a containers.conf of its own. The container
tests import `Engine` and `build_image` from here, so there is one way to call the engine.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "services" / "reminder-worker" / "Dockerfile"
WHEELHOUSE = ROOT / "build" / "reminder-worker-image" / "wheelhouse"
CACHE = Path(
    os.environ.get("COFFEEBUDDY_IMAGE_CACHE")
    or Path.home() / ".cache" / "coffeebuddy" / "reminder-worker-image"
)
REGISTRY_BASE = "docker.io/library/python:3.12-slim"
IMAGE_NAME = "localhost/coffeebuddy-reminder-worker"

# The local base: what the official slim images give the Dockerfile (python, pip in
# /usr/local/bin, useradd, CA certificates), from Debian's own packages.
DEBIAN_SUITE = "bookworm"
DEBIAN_PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEBIAN_MIRROR = os.environ.get("COFFEEBUDDY_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Left out of the base tarball: package lists and caches, documentation, translations.
ROOTFS_PRUNE = (
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/debconf",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)
BASE_RECIPE = {
    "suite": DEBIAN_SUITE,
    "variant": "minbase",
    "include": DEBIAN_PACKAGES,
    "prune": ROOTFS_PRUNE,
    "venv": "python3 -m venv /usr/local",  # python and pip where the slim images have them
}
BASE_KEY = hashlib.sha256(json.dumps(BASE_RECIPE, sort_keys=True).encode()).hexdigest()[:12]
LOCAL_BASE = f"localhost/coffeebuddy-python-base:{DEBIAN_SUITE}-{BASE_KEY}"

# Each one needed by podman 4.3 on these machines: crun refuses their hybrid cgroups, the
# systemd cgroup manager is absent, and the default rlimits are refused (setrlimit EPERM).
PODMAN_CONF = """\
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""


class ImageError(RuntimeError):
    """A step of the image build failed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Engine:
    """A container engine CLI (`podman` or `docker`) and the environment to call it with."""

    name: str
    executable: str

    @classmethod
    def find(cls, preferred: str = "auto") -> Engine:
        """`podman` (daemonless, works here) before `docker`; ImageError naming what to install."""
        names = ("podman", "docker") if preferred == "auto" else (preferred,)
        for name in names:
            executable = shutil.which(name)
            if executable is None:
                continue
            engine = cls(name, executable)
            if name == "podman" or engine.run("info", check=False, timeout=30).returncode == 0:
                return engine
        raise ImageError(
            f"no usable container engine ({' or '.join(names)}): install podman and runc "
            "(Debian: apt-get install podman runc), or run a Docker engine"
        )

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.name == "podman" and "CONTAINERS_CONF" not in env:
            conf = CACHE / "containers.conf"
            if not conf.exists() or conf.read_text() != PODMAN_CONF:
                conf.parent.mkdir(parents=True, exist_ok=True)
                conf.write_text(PODMAN_CONF)
            env["CONTAINERS_CONF"] = str(conf)
        return env

    def command(self, *args: str) -> list[str]:
        return [self.executable, *args]

    def run(
        self, *args: str, check: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the engine with its output captured (shown in the error when it fails)."""
        result = subprocess.run(
            self.command(*args),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise ImageError(
                f"`{self.name} {' '.join(args)}` failed ({result.returncode}):\n{result.stdout}"
            )
        return result

    def has_image(self, image: str) -> bool:
        verb = ("image", "exists") if self.name == "podman" else ("image", "inspect")
        return self.run(*verb, image, check=False, timeout=60).returncode == 0

    def image_size(self, image: str) -> int:
        out = self.run("image", "inspect", "--format", "{{.Size}}", image, timeout=60).stdout
        return int(out.strip().splitlines()[-1])


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    base: str
    size: int
    base_size: int
    seconds: float

    def summary(self) -> str:
        mb = 1_000_000
        return (
            f"{self.tag}: {self.size / mb:.0f} MB, {(self.size - self.base_size) / mb:.1f} MB over "
            f"its base {self.base} ({self.base_size / mb:.0f} MB); built in {self.seconds:.0f} s"
        )


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """One builder at a time per machine for `name` (parallel sessions share the cache)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# ---------------------------------------------------------------------------------- base image
def _debootstrap_rootfs(tarball: Path) -> None:
    """Debian minbase with python3 into a tarball (about 1-3 minutes, once per machine)."""
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise ImageError(
            "no registry answered for python:3.12-slim and debootstrap is missing to make a "
            "local base: apt-get install debootstrap (or pass --base IMAGE)"
        )
    if os.geteuid() != 0:
        raise ImageError("making the local base with debootstrap needs root (or --base IMAGE)")
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        print(f"making the local base: debootstrap {DEBIAN_SUITE} from {DEBIAN_MIRROR}", flush=True)
        result = subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={','.join(DEBIAN_PACKAGES)}",
                DEBIAN_SUITE,
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ImageError(f"debootstrap failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        for relative in ROOTFS_PRUNE:
            for child in (rootfs / relative).glob("*"):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        partial = tarball.with_suffix(".partial")
        with tarfile.open(partial, "w:gz", compresslevel=1) as tar:
            tar.add(rootfs, arcname=".")
        partial.rename(tarball)


def local_base(engine: Engine) -> str:
    """The local Debian base in the engine, made (or imported from the cached tarball) once."""
    with _locked("base"):
        if engine.has_image(LOCAL_BASE):
            return LOCAL_BASE
        tarball = CACHE / f"rootfs-{DEBIAN_SUITE}-{BASE_KEY}.tar.gz"
        if not tarball.exists():
            _debootstrap_rootfs(tarball)
        rootfs_image = f"localhost/coffeebuddy-debian-rootfs:{DEBIAN_SUITE}-{BASE_KEY}"
        engine.run("import", str(tarball), rootfs_image, timeout=600)
        with tempfile.TemporaryDirectory() as context:
            (Path(context) / "Containerfile").write_text(
                f'FROM {rootfs_image}\nRUN {BASE_RECIPE["venv"]}\nCMD ["python3"]\n'
            )
            engine.run(
                "build",
                "--network",
                "none",
                "-t",
                LOCAL_BASE,
                "-f",
                str(Path(context) / "Containerfile"),
                context,
                timeout=600,
            )
        return LOCAL_BASE


def resolve_base(engine: Engine, base: str) -> str:
    """`auto`: the registry's python:3.12-slim if present or pullable, else the local base."""
    if base == "local":
        return local_base(engine)
    if base != "auto":
        if not engine.has_image(base):
            engine.run("pull", base, timeout=600)
        return base
    if engine.has_image(REGISTRY_BASE):
        return REGISTRY_BASE
    if engine.run("pull", REGISTRY_BASE, check=False, timeout=600).returncode == 0:
        return REGISTRY_BASE
    print(f"no registry answered for {REGISTRY_BASE}: using the local Debian base", flush=True)
    return local_base(engine)


# ---------------------------------------------------------------------------------- wheelhouse
def dockerfile_packages() -> list[str]:
    """The monorepo folders the Dockerfile copies into its build stage, in its order."""
    return re.findall(r"^COPY (\S+) \1$", DOCKERFILE.read_text(), flags=re.MULTILINE)


def _requirements(packages: Sequence[str]) -> list[str]:
    """Third-party runtime and build requirements of `packages` (the local names left out)."""
    projects = [tomllib.loads((ROOT / p / "pyproject.toml").read_text()) for p in packages]
    local = {project["project"]["name"] for project in projects}
    wanted: set[str] = set()
    for project in projects:
        wanted.update(project["build-system"]["requires"])
        for dep in project["project"].get("dependencies", []):
            if re.split(r"[<>=!~ \[;]", dep, maxsplit=1)[0] not in local:
                wanted.add(dep)
    return sorted(wanted)


def _constraints() -> str:
    """`name==version` of every distribution in this environment (the tested versions)."""
    pins = {
        dist.metadata["Name"].lower(): dist.version
        for dist in importlib.metadata.distributions()
        if dist.metadata["Name"] and not dist.metadata["Name"].lower().startswith("coffeebuddy")
    }
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def _target(engine: Engine, base: str) -> dict[str, str]:
    """The base image's Python version, machine and glibc, asked of the image itself."""
    script = (
        "import json, os, platform, sys; print(json.dumps({'python': '%d.%d' % sys.version_info"
        "[:2], 'machine': platform.machine(), 'libc': os.confstr('CS_GNU_LIBC_VERSION') or ''}))"
    )
    out = engine.run(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "python",
        base,
        "-c",
        script,
        timeout=120,
    ).stdout
    target: dict[str, str] = json.loads(out.strip().splitlines()[-1])
    if not target["libc"].startswith("glibc "):
        raise ImageError(f"base {base} has no glibc ({target['libc']!r}): manylinux wheels only")
    return target


def _platforms(machine: str, glibc: str) -> list[str]:
    """Every manylinux tag a glibc `glibc` on `machine` runs (pip does not expand them)."""
    major, minor = (int(part) for part in glibc.split(".")[:2])
    tags = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 4, -1)]
    return [*tags, f"manylinux2014_{machine}", f"manylinux2010_{machine}", f"manylinux1_{machine}"]


def _pip() -> list[str]:
    """pip of this interpreter, else of a venv made once from it (ensurepip, no download)."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    venv = CACHE / "pip-venv"
    if not (venv / "bin" / "pip").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    return [str(venv / "bin" / "python"), "-m", "pip"]


def make_wheelhouse(engine: Engine, base: str) -> Path:
    """Wheels for `base` of everything the build needs; downloaded again only when the
    requirements, the pins or the target change."""
    target = _target(engine, base)
    requirements = _requirements(dockerfile_packages())
    constraints = _constraints()
    key = hashlib.sha256(json.dumps([target, requirements, constraints]).encode()).hexdigest()
    stamp = WHEELHOUSE / ".key"
    if stamp.exists() and stamp.read_text() == key:
        return WHEELHOUSE
    if WHEELHOUSE.exists():
        shutil.rmtree(WHEELHOUSE)
    WHEELHOUSE.mkdir(parents=True)
    (WHEELHOUSE.parent / "constraints.txt").write_text(constraints)
    platforms = _platforms(target["machine"], target["libc"].split()[1])
    print(
        f"downloading wheels for Python {target['python']} on {platforms[0]} into "
        f"{WHEELHOUSE.relative_to(ROOT)}",
        flush=True,
    )
    command = [
        *_pip(),
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        target["python"],
        *(arg for platform in platforms for arg in ("--platform", platform)),
        "--constraint",
        str(WHEELHOUSE.parent / "constraints.txt"),
        "--dest",
        str(WHEELHOUSE),
        *requirements,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ImageError(f"pip download failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    stamp.write_text(key)
    return WHEELHOUSE


# ---------------------------------------------------------------------------------- the image
def _version() -> str:
    text = (DOCKERFILE.parent / "src/coffeebuddy/services/reminder_worker/_version.py").read_text()
    found = re.search(r"__version__\s*=\s*[\"']([^\"']+)", text)
    return found.group(1) if found else "dev"


def default_tag() -> str:
    return f"{IMAGE_NAME}:{_version()}"


def build_image(
    engine: Engine | None = None, *, base: str = "auto", tag: str | None = None
) -> BuiltImage:
    """Base, wheelhouse, then `build --network none` of the Dockerfile from the repo root."""
    started = time.monotonic()
    engine = engine or Engine.find()
    tag = tag or default_tag()
    base_image = resolve_base(engine, base)
    make_wheelhouse(engine, base_image)
    with _locked("build"):
        engine.run(
            "build",
            "--network",
            "none",
            "--build-arg",
            f"PYTHON_IMAGE={base_image}",
            "-f",
            str(DOCKERFILE),
            "-t",
            tag,
            str(ROOT),
            timeout=1200,
        )
    return BuiltImage(
        tag=tag,
        base=base_image,
        size=engine.image_size(tag),
        base_size=engine.image_size(base_image),
        seconds=time.monotonic() - started,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("auto", "podman", "docker"), default="auto")
    parser.add_argument(
        "--base",
        default="auto",
        help="auto (python:3.12-slim if a registry answers, else local), local, or an image",
    )
    parser.add_argument("--tag", default=None, help=f"default {default_tag()}")
    args = parser.parse_args(argv)
    try:
        built = build_image(Engine.find(args.engine), base=args.base, tag=args.tag)
    except ImageError as exc:
        print(f"image: {exc}", file=sys.stderr)
        return 1
    print(built.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
