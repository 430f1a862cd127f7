"""A frozen Stripe for tests: a loopback TCP server that accepts connections and never answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from types import TracebackType

__all__ = ["BlackHole", "until"]


class BlackHole:
    """Accepts connections, reads whatever is sent and never answers. ``open`` counts the
    connections still held; each is dropped after ``hold_seconds`` at the latest, and all of
    them when the ``async with`` block ends, so a test cannot leave it running."""

    def __init__(self, hold_seconds: float = 60.0) -> None:
        self._hold = hold_seconds
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.accepted = 0
        self.open = 0

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def __aenter__(self) -> BlackHole:
        self._server = await asyncio.start_server(self._swallow, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _swallow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self._writers.add(writer)
        try:
            with contextlib.suppress(TimeoutError, ConnectionError):
                async with asyncio.timeout(self._hold):
                    while await reader.read(65_536):
                        pass  # the client closes its end when it gives up
        finally:
            self.open -= 1
            self._writers.discard(writer)
            writer.close()


async def until(condition: Callable[[], bool], what: str, *, within: float = 30.0) -> None:
    """Wait for ``condition`` (polling); fail with ``what`` if it does not happen in time. A
    bound on a wait, never an assertion about speed."""
    try:
        async with asyncio.timeout(within):
            while True:
                if condition():
                    return
                await asyncio.sleep(0.01)  # polled: the condition is a counter, not an event
    except TimeoutError:
        raise AssertionError(f"still waiting for: {what}") from None
