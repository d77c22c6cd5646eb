"""Retry policy of the ML client, against an in-memory transport standing in for the remote service."""

from __future__ import annotations

import os
from collections.abc import Callable

import httpx
import pytest

from backend import ml_client
from backend.core.config import settings

Reply = httpx.Response | Exception
Serve = Callable[[list[Reply]], list[httpx.Request]]


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Serve:
    """serve(replies): the process's client answers with `replies` in order; returns the requests it gets."""
    monkeypatch.setattr(settings, "ML_RETRIES", 3)
    monkeypatch.setattr(settings, "ML_RETRY_BACKOFF_SECONDS", 0.001)

    def install(replies: list[Reply]) -> list[httpx.Request]:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            reply = replies.pop(0)
            if isinstance(reply, Exception):
                raise reply
            return reply

        client = httpx.Client(base_url="http://ml", transport=httpx.MockTransport(handler))
        monkeypatch.setattr(ml_client, "_client", client)
        monkeypatch.setattr(ml_client, "_client_pid", os.getpid())
        return seen

    return install


def test_success_parses_headers_and_sends_multipart(serve: Serve) -> None:
    seen = serve(
        [httpx.Response(200, content=b"PNG", headers={"X-Oil-Fraction": "0.25", "X-Model-Version": "m-3"})]
    )
    result = ml_client.segment(b"image-bytes", "x.tif")
    assert (result.mask_png, result.oil_fraction, result.model_version) == (b"PNG", 0.25, "m-3")
    (request,) = seen
    assert request.url.path == "/segment"
    assert request.headers["content-type"].startswith("multipart/form-data")
    body = request.read()
    assert b'name="file"; filename="x.tif"' in body and b"image-bytes" in body


def test_transient_failures_are_retried(serve: Serve) -> None:
    seen = serve(
        [
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("slow"),
            httpx.Response(503, json={"detail": "model not loaded"}),
            httpx.Response(200, content=b"PNG", headers={"X-Oil-Fraction": "0"}),
        ]
    )
    assert ml_client.segment(b"x", "x.png").mask_png == b"PNG"
    assert len(seen) == 4


def test_gives_up_after_the_retries(serve: Serve) -> None:
    seen = serve([httpx.Response(500, text="boom") for _ in range(4)])
    with pytest.raises(ml_client.MLServiceError, match=r"error 500: boom \(gave up after 4 attempts\)"):
        ml_client.segment(b"x", "x.png")
    assert len(seen) == 4


def test_client_errors_are_not_retried(serve: Serve) -> None:
    seen = serve([httpx.Response(413, json={"detail": "image has too many pixels"})])
    with pytest.raises(
        ml_client.MLServiceError, match="rejected the image: image has too many pixels"
    ) as err:
        ml_client.segment(b"x", "x.png")
    assert err.value.status_code == 413
    assert len(seen) == 1


def test_a_new_process_gets_its_own_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ml_client, "_client", None)
    first = ml_client.get_client()
    assert ml_client.get_client() is first
    monkeypatch.setattr(ml_client, "_client_pid", -1)  # as seen from a forked pool child
    assert ml_client.get_client() is not first
