"""Bot tokens of the CoffeeBuddy Slack app (slack-bolt `AsyncApp`) for `SlackDMSender.from_app`:
an app installed in many workspaces keeps them in its installation store (rotated when token
rotation is on); each reminder's comes from bolt's own `AsyncInstallationStoreAuthorize` for its
team. Needs the `[bolt]` extra."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

__all__ = ["BotTokens", "app_bot_tokens"]

BotTokens = Callable[[str], Awaitable[str | None]]
"""team id -> that workspace's bot token (None: the app is not installed there)."""


def app_bot_tokens(app: Any, client: AsyncWebClient) -> BotTokens | None:
    """The per-team token lookup of `app`, or None when the app has one token on its client;
    token rotation calls oauth.v2.access through `client` (retry-free, the app's session)."""
    store = app.installation_store
    if store is None or client.token:
        return None
    try:
        from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
        from slack_bolt.context.async_context import AsyncBoltContext
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "SlackDMSender.from_app needs slack-bolt: install coffeebuddy-reminder-worker[bolt]"
        ) from exc
    flow = app.oauth_flow
    settings = flow.settings if flow is not None else None
    authorize = AsyncInstallationStoreAuthorize(
        logger=app.logger,
        installation_store=store,
        client_id=settings.client_id if settings is not None else None,
        client_secret=settings.client_secret if settings is not None else None,
        token_rotation_expiration_minutes=(
            settings.token_rotation_expiration_minutes if settings is not None else None
        ),
        bot_only=True,
        cache_enabled=True,  # bolt checks each new token with auth.test once, not per call
        client=client,
    )

    async def bot_token(team_id: str) -> str | None:
        result = await authorize(
            context=AsyncBoltContext(client=client),
            enterprise_id=None,
            team_id=team_id,
            user_id=None,
        )
        return result.bot_token if result is not None else None

    return bot_token
