"""The API's HTTP protocol: uvicorn's httptools protocol with the limits a hostile client needs.

uvicorn (0.54) bounds neither the size of a request's head nor the time a client may take to send it: a 200 MB
header held the event loop for a minute, and slow clients could hold every file handle. This protocol
(`uvicorn --http backend.api.http:GuardedHttpTools`, see scripts/processes.py) adds:

- a 431 as soon as a request line and headers pass API_MAX_HEADER_BYTES, before more of them is buffered;
- a deadline of API_HEADER_TIMEOUT_SECONDS from a request's first byte (or the connection's start) to the end
  of its headers: a slowloris client is closed, however steadily it drips;
- at most API_MAX_CONNECTIONS connections: over that, a new connection evicts the one that has been sending
  its headers the longest (a slow client, never a request being served), so a health probe always gets in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from backend.core.config import settings

logger = logging.getLogger("uvicorn.error")

# Connections whose current request has not finished its headers yet, oldest first (insertion order).
_receiving_head: dict[GuardedHttpTools, float] = {}


def _plain_response(status: bytes, message: str) -> bytes:
    body = message.encode()
    head = [
        b"HTTP/1.1 " + status,
        b"content-type: text/plain; charset=utf-8",
        b"content-length: " + str(len(body)).encode(),
        b"connection: close",
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class GuardedHttpTools(HttpToolsProtocol):
    """HttpToolsProtocol with a head-size limit (431), a head deadline and a connection cap."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_head_bytes = settings.API_MAX_HEADER_BYTES
        self.head_timeout = settings.API_HEADER_TIMEOUT_SECONDS
        self.max_connections = settings.API_MAX_CONNECTIONS
        self.head_bytes = 0
        self.head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()
        if len(self.connections) > self.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_received()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.head_deadline is None and self.cycle is not None and self.cycle.response_complete:
            self._await_head()  # the first byte of the next request on a kept-alive connection
        super().data_received(data)
        if self.head_deadline is not None and not self.transport.is_closing():
            self.head_bytes += len(data)  # the whole chunk was head: the headers are not complete yet
            if self.head_bytes > self.max_head_bytes:
                self._refuse(b"431 Request Header Fields Too Large", "Request headers too large.")

    def on_headers_complete(self) -> None:
        self._head_received()
        super().on_headers_complete()

    def _await_head(self) -> None:
        self.head_bytes = 0
        self.head_deadline = self.loop.call_later(self.head_timeout, self._head_too_slow)
        _receiving_head[self] = time.monotonic()

    def _head_received(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None
        _receiving_head.pop(self, None)

    def _head_too_slow(self) -> None:
        self.head_deadline = None
        self._refuse(b"408 Request Timeout", "Request headers not received in time.")

    def _refuse(self, status: bytes, message: str) -> None:
        self._head_received()
        if not self.transport.is_closing():
            self.transport.write(_plain_response(status, message))
            self.transport.close()

    def _make_room(self) -> None:
        """Over the connection cap: close the oldest connection still sending its headers (maybe this one)."""
        oldest = next(iter(_receiving_head), self)
        if oldest is self:
            logger.warning("connection limit (%d) reached: connection refused", self.max_connections)
        oldest._refuse(b"503 Service Unavailable", "Too many connections; try again later.")
