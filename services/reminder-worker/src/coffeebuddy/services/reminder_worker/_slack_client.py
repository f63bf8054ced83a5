"""The slack_sdk client the sender posts through: one pooled aiohttp session, no retry handlers.

Slack has no idempotency key, so slack_sdk's default connection-error retry handler could post a
DM twice: the sender only ever uses a client without retry handlers and lets the worker decide.
"""

from __future__ import annotations

import logging

import aiohttp
from pydantic import SecretStr
from slack_sdk.web.async_client import AsyncWebClient

__all__ = ["DEFAULT_BASE_URL", "SDK_LOGGER", "new_client", "sdk_logger", "without_retries"]

DEFAULT_BASE_URL = "https://slack.com/api/"
SDK_LOGGER = "coffeebuddy.reminder_worker.slack_sdk"


def sdk_logger() -> logging.Logger:
    """slack_sdk's logger, at INFO unless configured: slack_sdk checks `logger.level <= DEBUG`
    (not the effective level) and formats every request into a debug string when it holds, so a
    logger left at NOTSET pays that per call. Set it to DEBUG explicitly to get those lines."""
    logger = logging.getLogger(SDK_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.INFO))
    return logger


def new_client(
    token: SecretStr | str,
    *,
    base_url: str = DEFAULT_BASE_URL,
    timeout: float = 10.0,
    max_connections: int = 100,
) -> AsyncWebClient:
    """A client for `token` against `base_url` on its own pooled session (call it in the loop:
    without a session slack_sdk opens a new connection, TLS handshake included, per call)."""
    secret = token.get_secret_value() if isinstance(token, SecretStr) else token
    if not secret:
        raise ValueError("SLACK_BOT_TOKEN is empty: set it to the app's xoxb- bot token")
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout),
        connector=aiohttp.TCPConnector(limit=max_connections),
    )
    return AsyncWebClient(
        token=secret,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=int(max(1, timeout)),
        session=session,
        retry_handlers=[],
        logger=sdk_logger(),
    )


def without_retries(client: AsyncWebClient) -> AsyncWebClient:
    """`client` itself when it has no retry handlers; else a sibling sharing its session, token,
    base URL, timeout, SSL context, proxy, headers and team, without retry handlers."""
    if not client.retry_handlers:
        return client
    team_id = client.default_params.get("team_id")
    return AsyncWebClient(
        token=client.token,
        base_url=client.base_url,
        timeout=client.timeout,
        ssl=client.ssl,
        proxy=client.proxy,
        session=client.session,
        trust_env_in_session=client.trust_env_in_session,
        headers=dict(client.headers),
        team_id=str(team_id) if team_id else None,
        logger=sdk_logger(),
        retry_handlers=[],
    )
