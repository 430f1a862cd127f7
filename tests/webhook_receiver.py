"""A webhook receiver on loopback for the outgoing webhook tests: a minimal HTTP/1.1 server
(asyncio streams) that verifies every delivery's signature with the secrets it is given,
records each request, and can be told to fail or to stall."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from app.outgoing_webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, verify


@dataclass
class Received:
    event_id: str
    event_type: str
    body: bytes
    signature: str
    verified_with: list[str]  # which of the receiver's secrets verified it

    @property
    def envelope(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    secrets: list[str] = field(default_factory=list)
    fail_first: int = 0  # answer 500 to this many requests first
    stall_first: int = 0  # then hold this many requests without answering (until closed)
    stall_seconds: float = 30.0
    requests: list[Received] = field(default_factory=list)
    answered: Counter[int] = field(default_factory=Counter)
    unverified: list[Received] = field(default_factory=list)
    port: int = 0
    _stalls: int = 0
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def accepted_ids(self) -> Counter[str]:
        """Event ids answered 2xx, with how many times each was."""
        return Counter(r.event_id for r in self._ok)

    async def wait(self, count: int, seconds: float = 60) -> None:
        """Until ``count`` requests were answered 2xx."""
        deadline = asyncio.get_running_loop().time() + seconds
        while len(self._ok) < count:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"{len(self._ok)} of {count} deliveries arrived")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(remaining, 0.5))

    def __post_init__(self) -> None:
        self._ok: list[Received] = []
        self._closing = asyncio.Event()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                signature = headers.get(SIGNATURE_HEADER.lower(), "")
                got = Received(
                    event_id=headers.get(EVENT_ID_HEADER.lower(), ""),
                    event_type=headers.get("billing-event-type", ""),
                    body=body,
                    signature=signature,
                    verified_with=[s for s in self.secrets if verify(s, signature, body)],
                )
                self.requests.append(got)
                status = 200
                if not got.verified_with:
                    self.unverified.append(got)
                    status = 400
                elif self.fail_first > 0:
                    self.fail_first -= 1
                    status = 500
                elif self._stalls < self.stall_first:
                    self._stalls += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), self.stall_seconds)
                    return  # the connection is dropped without an answer
                if status == 200:
                    self._ok.append(got)
                    self._arrived.set()
                self.answered[status] += 1
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok".encode("latin-1")
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    server = await asyncio.start_server(receiver._handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        receiver._closing.set()
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)
