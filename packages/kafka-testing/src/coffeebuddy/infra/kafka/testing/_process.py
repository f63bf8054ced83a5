"""Child processes (brokers, stunnel) that never outlive the Python process that started them.

Four layers: each child runs in its own session/process group and is stopped with SIGTERM, then
SIGKILL after a deadline; ``atexit`` stops whatever is still running; SIGTERM/SIGHUP handlers do the
same before the default action; and on Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` makes the kernel
kill the child even when Python itself is SIGKILLed.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["ManagedProcess", "stop_all"]

_PR_SET_PDEATHSIG = 1
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

_live: dict[int, ManagedProcess] = {}
_live_lock = threading.RLock()  # re-entered when a signal handler runs stop_all()
_hooks_installed = False


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    prctl: Callable[..., int] = libc.prctl
    return prctl


_PRCTL = _load_prctl()


def _make_preexec(parent_pid: int) -> Callable[[], None] | None:
    prctl = _PRCTL
    if prctl is None:
        return None

    def _preexec() -> None:  # runs in the forked child, before exec
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died between fork and prctl: then nobody will signal us.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)

    return _preexec


class _Spawner:
    """One long-lived daemon thread that forks children started from non-main threads.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, so children must not be
    forked from short-lived worker threads (for example ``asyncio.to_thread``).
    """

    def __init__(self) -> None:
        self._requests: queue.Queue[
            tuple[Callable[[], subprocess.Popen[bytes]], queue.Queue[Any]]
        ] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, spawn: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        if threading.current_thread() is threading.main_thread():
            return spawn()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="coffeebuddy-kafka-spawner", daemon=True
                )
                self._thread.start()
        reply: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._requests.put((spawn, reply))
        result = reply.get()
        if isinstance(result, BaseException):
            raise result
        proc: subprocess.Popen[bytes] = result
        return proc

    def _loop(self) -> None:
        while True:
            spawn, reply = self._requests.get()
            try:
                reply.put(spawn())
            except BaseException as exc:  # handed back to the caller's thread
                reply.put(exc)


_spawner = _Spawner()


class ManagedProcess:
    """A child process with its output in a log file, stopped for sure when Python ends."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.name = name
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the child in its own session, output to ``log_path``."""
        if self._proc is not None:
            raise RuntimeError(f"{self.name} was already started (pid {self._proc.pid})")
        _install_hooks()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        preexec = _make_preexec(os.getpid())

        def spawn() -> subprocess.Popen[bytes]:
            with open(self.log_path, "ab") as log:
                return subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    start_new_session=True,
                    preexec_fn=preexec,  # only prctl + getppid: no locks taken after fork
                    close_fds=True,
                )

        self._proc = _spawner.run(spawn)
        with _live_lock:
            _live[self._proc.pid] = self

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the child's process group, SIGKILL after ``timeout`` s; return the exit code."""
        proc = self._proc
        if proc is None:
            return None
        try:
            if proc.poll() is None:
                self._signal_group(signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self._signal_group(signal.SIGKILL)
                    proc.wait(timeout=timeout)
            # The child may have left helpers in its group; make sure none survive it.
            self._signal_group(signal.SIGKILL)
        finally:
            with _live_lock:
                _live.pop(proc.pid, None)
        return proc.returncode

    def wait(self, timeout: float) -> int:
        """Wait for the child to exit (``subprocess.TimeoutExpired`` after ``timeout`` s)."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        code = self._proc.wait(timeout=timeout)
        with _live_lock:
            _live.pop(self._proc.pid, None)
        return code

    def send_signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the child's process group (no-op once it has exited)."""
        if self._proc is not None and self._proc.poll() is None:
            self._signal_group(sig)

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the child's output, without colour codes."""
        try:
            data = self.log_path.read_bytes()[-65536:]
        except OSError:
            return ""
        text = _ANSI.sub("", data.decode("utf-8", errors="replace"))
        return "\n".join(text.splitlines()[-lines:])

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited {self.returncode}"
        return f"<ManagedProcess {self.name} pid={self.pid} {state}>"


def stop_all(timeout: float = 5.0) -> None:
    """Stop every child still running (atexit and signal handlers call this)."""
    with _live_lock:
        procs = list(_live.values())
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.stop(timeout=timeout)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Stop the children, then let the default action (terminate) happen as if we were absent."""
    stop_all(timeout=2.0)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(stop_all)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; PDEATHSIG still applies
    for sig in (signal.SIGTERM, signal.SIGHUP):
        # Only take over the default action; a program with its own handler keeps it.
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, _on_signal)
