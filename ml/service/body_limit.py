"""Reject request bodies over ML_MAX_BODY_MB with a JSON 413, whether declared or streamed.

Starlette's own limiter answers a declared oversize body in plain text; the contract wants
`{"detail": ...}` everywhere, so this pure-ASGI middleware does both checks itself.
"""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimitMiddleware:
    """413 up front for a too-large Content-Length; 413 mid-stream once chunked bytes pass the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _detail(self, size: int) -> str:
        return f"request body ({size}+ bytes) is over the limit of {self.max_bytes} bytes (ML_MAX_BODY_MB)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse({"detail": self._detail(int(declared))}, status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised while FastAPI parses the form, so its handler turns it into a JSON 413.
                    raise HTTPException(status_code=413, detail=self._detail(received))
            return message

        await self.app(scope, limited_receive, send)
