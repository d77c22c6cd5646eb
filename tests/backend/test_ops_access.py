"""Operator views list job ids (so download links): the operator token from every address, a case-insensitive
Bearer scheme, rate-limited failures. With a real API process and proxy: tests/security/test_ops_token.py."""

from __future__ import annotations

import pytest
from fastapi import HTTPException
from starlette.requests import Request

from backend.api import ops_auth
from backend.api.deps import operator_access
from backend.core.config import Settings

TOKEN = "s3cret-operator-token-0123456789"


def request_from(host: str, authorization: str | None = None, **headers: str) -> Request:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    if authorization:
        raw.append((b"authorization", authorization.encode()))
    return Request(
        {"type": "http", "method": "GET", "path": "/api/tasks", "headers": raw, "client": (host, 1)}
    )


@pytest.fixture(autouse=True)
def fresh_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops_auth, "limiter", ops_auth.FailureLimiter())


def settings() -> Settings:
    return Settings(_env_file=None, OPS_TOKEN=TOKEN)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "testclient", "203.0.113.7"])
def test_no_address_passes_without_the_token(host: str) -> None:
    for authorization in (None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer{TOKEN}"):
        with pytest.raises(HTTPException) as refused:
            operator_access(request_from(host, authorization, x_forwarded_for="127.0.0.1"), settings())
        assert refused.value.status_code == 401


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_token_passes_from_anywhere_with_any_case_of_bearer(scheme: str) -> None:
    for host in ("127.0.0.1", "203.0.113.7"):
        operator_access(request_from(host, f"{scheme} {TOKEN}"), settings())


def test_failures_lock_out_the_address_for_the_window() -> None:
    limiter = ops_auth.limiter
    for _ in range(ops_auth.MAX_FAILURES):
        with pytest.raises(HTTPException):
            operator_access(request_from("203.0.113.7", "Bearer x"), settings())
    with pytest.raises(HTTPException) as locked:
        operator_access(request_from("203.0.113.7", f"Bearer {TOKEN}"), settings())
    assert locked.value.status_code == 429
    operator_access(request_from("198.51.100.1", f"Bearer {TOKEN}"), settings())  # others are not locked out
    assert limiter.retry_after("203.0.113.7", 1e12) == 0.0  # the window passes
