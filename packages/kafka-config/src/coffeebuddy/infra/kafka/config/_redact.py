"""Keep SASL credentials out of aiokafka's DEBUG log.

aiokafka logs every request struct at DEBUG on ``aiokafka.conn``, including the
``SaslAuthenticateRequest`` whose bytes hold the PLAIN password in clear
(``user\\0user\\0password``). The filter below replaces that argument; it is installed
when this package is imported, i.e. wherever clients get their settings from here.
"""

from __future__ import annotations

import logging

AIOKAFKA_CONN_LOGGER = "aiokafka.conn"
_REDACTED = "SaslAuthenticateRequest(sasl_auth_bytes=<redacted>)"


def _is_sasl_payload(arg: object) -> bool:
    return type(arg).__name__.startswith("SaslAuthenticateRequest")


class SaslPayloadRedactor(logging.Filter):
    """Replace SASL authentication payloads in log record arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(_is_sasl_payload(a) for a in args):
            record.args = tuple(_REDACTED if _is_sasl_payload(a) else a for a in args)
        return True


def install_sasl_log_redaction() -> None:
    """Attach the redactor to aiokafka's connection logger (idempotent)."""
    logger = logging.getLogger(AIOKAFKA_CONN_LOGGER)
    if not any(isinstance(f, SaslPayloadRedactor) for f in logger.filters):
        logger.addFilter(SaslPayloadRedactor())
