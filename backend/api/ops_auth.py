"""Who may use the operator endpoints: the holder of the operator token, whatever address they come from.

The peer address grants nothing: behind a proxy on the same host every client is "loopback". The token is
OPS_TOKEN, or, when that is unset, a random one that the first API process writes to OPS_TOKEN_FILE (0600,
`var/ops-token` under `make run`); the CLI reads that file for a loopback API. A wrong token counts against
the client's address: after MAX_FAILURES within FAILURE_WINDOW_SECONDS every attempt from there gets 429
until the window has passed, so guessing is slow even for a short token; the right token clears the count.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
from collections import defaultdict, deque
from pathlib import Path

from fastapi import HTTPException, Request

from backend.core.config import MIN_OPS_TOKEN_LENGTH, Settings

log = logging.getLogger(__name__)

MAX_FAILURES = 5
FAILURE_WINDOW_SECONDS = 60.0
_file_tokens: dict[Path, str] = {}
_lock = threading.Lock()


def _read_or_create(path: Path) -> str:
    """The token in `path`, written there first (exclusively, 0600) by whichever process comes first."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        token = path.read_text().strip()
        if len(token) < MIN_OPS_TOKEN_LENGTH:
            raise RuntimeError(f"{path} holds a token under {MIN_OPS_TOKEN_LENGTH} characters") from None
        return token
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    log.warning("operator token written to %s (set OPS_TOKEN to choose one)", path.resolve())
    return token


def operator_token(settings: Settings) -> str:
    """OPS_TOKEN, or the token of OPS_TOKEN_FILE (created on first use)."""
    if settings.OPS_TOKEN:
        return settings.OPS_TOKEN
    path = settings.OPS_TOKEN_FILE
    with _lock:
        if path not in _file_tokens:
            _file_tokens[path] = _read_or_create(path)
        return _file_tokens[path]


class FailureLimiter:
    """Failed attempts per client address within a sliding window."""

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = FAILURE_WINDOW_SECONDS) -> None:
        self.max_failures = max_failures
        self.window = window
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)

    def retry_after(self, client: str, now: float) -> float:
        """Seconds until `client` may try again (0: now)."""
        failures = self._failures.get(client)
        if failures is None:
            return 0.0
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return 0.0
        return failures[0] + self.window - now if len(failures) >= self.max_failures else 0.0

    def fail(self, client: str, now: float) -> None:
        self._failures[client].append(now)

    def succeed(self, client: str) -> None:
        self._failures.pop(client, None)


limiter = FailureLimiter()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def bearer(authorization: str) -> str | None:
    """The credentials of an `Authorization: Bearer <token>` header (the scheme in any case), else None."""
    scheme, _, credentials = authorization.strip().partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def check(request: Request, settings: Settings) -> None:
    """Let the request through with the right token; 401 without or with a wrong one; 429 while locked out."""
    client = request.client.host if request.client else "?"
    now = time.monotonic()
    with _lock:
        wait = limiter.retry_after(client, now)
    if wait:
        raise HTTPException(
            429,
            f"Too many failed operator-token attempts; try again in {wait:.0f} s.",
            headers={"Retry-After": str(max(1, round(wait)))},
        )
    given = bearer(request.headers.get("authorization", ""))
    expected = operator_token(settings)
    # Digests of equal length: the comparison takes the same time whatever the given token's length.
    if given is not None and secrets.compare_digest(_digest(given), _digest(expected)):
        with _lock:
            limiter.succeed(client)
        return
    with _lock:
        limiter.fail(client, now)
    where = "OPS_TOKEN" if settings.OPS_TOKEN else f"OPS_TOKEN or the file {settings.OPS_TOKEN_FILE}"
    raise HTTPException(
        401,
        f"This operator endpoint needs `Authorization: Bearer <token>`, the token in {where}.",
        headers={"WWW-Authenticate": "Bearer"},
    )
