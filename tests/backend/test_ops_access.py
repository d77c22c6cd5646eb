"""Operator views list job ids (so download links): loopback only, or a bearer token once OPS_TOKEN is set."""

from __future__ import annotations

import pytest
from fastapi import HTTPException
from starlette.requests import Request

from backend.api.deps import operator_access
from backend.core.config import Settings


def request_from(host: str, authorization: str | None = None) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    return Request(
        {"type": "http", "method": "GET", "path": "/api/tasks", "headers": headers, "client": (host, 40000)}
    )


def settings(token: str = "") -> Settings:
    return Settings(_env_file=None, OPS_TOKEN=token)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_local_clients_pass_without_a_token(host: str) -> None:
    operator_access(request_from(host), settings())


def test_remote_clients_are_refused_without_a_token() -> None:
    with pytest.raises(HTTPException) as refused:
        operator_access(request_from("203.0.113.7"), settings())
    assert refused.value.status_code == 403 and "OPS_TOKEN" in refused.value.detail


def test_token_is_required_from_everyone_once_set() -> None:
    for host in ("127.0.0.1", "203.0.113.7"):
        with pytest.raises(HTTPException) as refused:
            operator_access(request_from(host, "Bearer wrong"), settings("s3cret"))
        assert refused.value.status_code == 401
        operator_access(request_from(host, "Bearer s3cret"), settings("s3cret"))
