"""What the CLI lets through to the terminal from Python logging.

Without `--verbose` only this project's own warnings reach stderr: a third-party library
(aiokafka's "Unable connect to ...", asyncio's task reports) would otherwise print before, or
instead of, the one message the CLI gives for the same failure. `--verbose` shows every
logger's INFO and above.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

OWN_LOGGERS = "coffeebuddy"
"""Logger name prefix of this project's own loggers (the ones shown without --verbose)."""


def _own(record: logging.LogRecord) -> bool:
    return record.name == OWN_LOGGERS or record.name.startswith(OWN_LOGGERS + ".")


@contextlib.contextmanager
def cli_logging(verbose: bool) -> Iterator[None]:
    """Route log records to stderr for one CLI call, then restore the root logger.

    A handler on the root logger (even one that filters everything out) also keeps Python's
    last-resort handler from printing third-party WARNING lines.
    """
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if verbose:
        level = logging.INFO
    else:
        level = logging.WARNING
        handler.addFilter(_own)
    previous = root.level
    root.addHandler(handler)
    root.setLevel(min(level, previous) if previous != logging.NOTSET else level)
    handler.setLevel(level)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
