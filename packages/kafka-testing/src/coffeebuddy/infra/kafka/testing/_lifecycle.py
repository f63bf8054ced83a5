"""Sync and async context-manager plumbing shared by every broker started from tests."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["ContextManaged"]


class ContextManaged:
    """``with`` / ``async with`` for anything with ``start``/``stop`` and ``astart``/``astop``."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    async def astart(self) -> Self:
        raise NotImplementedError

    async def astop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()
