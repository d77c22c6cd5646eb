"""Operator endpoints trust no address: through a plain TCP proxy on 127.0.0.1 (every client "loopback"), with
`X-Forwarded-For: testclient`, or with a short guess, /api/tasks answers only the operator token; failures
are rate-limited. A real API process, a real proxy and real sockets, all on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from stack_harness import OPS_TOKEN, ROOT, Stack, api_process

from backend.api import ops_auth
from backend.core.config import Settings


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            sock.close()


@pytest.fixture(scope="module")
def proxied(stack_base: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(the API's URL, the URL of a plain TCP proxy to it on 127.0.0.1)."""
    with api_process(stack_base, tmp_path_factory.mktemp("ops-token")) as (url, port, _):
        listener = socket.create_server(("127.0.0.1", 0))
        proxy_port = listener.getsockname()[1]

        def serve() -> None:
            while True:
                try:
                    client, _ = listener.accept()
                except OSError:
                    return
                upstream = socket.create_connection(("127.0.0.1", port))
                threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
                threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        try:
            yield url, f"http://127.0.0.1:{proxy_port}"
        finally:
            listener.close()


def test_loopback_and_forwarded_for_grant_nothing_only_the_token_does(proxied: tuple[str, str]) -> None:
    url, proxy = proxied
    for base in (url, proxy):
        assert httpx.get(f"{base}/api/tasks").status_code == 401
        assert httpx.get(f"{base}/api/queues/status").status_code == 401
    forwarded = httpx.get(f"{proxy}/api/tasks", headers={"X-Forwarded-For": "testclient"})
    assert forwarded.status_code == 401 and forwarded.headers["www-authenticate"] == "Bearer"
    for scheme in ("Bearer", "bearer", "BEARER"):
        answer = httpx.get(f"{proxy}/api/tasks", headers={"Authorization": f"{scheme} {OPS_TOKEN}"})
        assert answer.status_code == 200, answer.text
    assert httpx.get(f"{url}/api/health").status_code in (200, 503)  # open, reveals no job id


def test_failed_attempts_are_rate_limited_and_the_token_still_counts_after_the_window(
    proxied: tuple[str, str],
) -> None:
    _, proxy = proxied
    started = time.monotonic()
    codes = [
        httpx.get(f"{proxy}/api/tasks", headers={"Authorization": f"Bearer {guess:02d}"}).status_code
        for guess in range(ops_auth.MAX_FAILURES + 20)
    ]
    assert codes[: ops_auth.MAX_FAILURES - 1].count(401) == ops_auth.MAX_FAILURES - 1, codes
    assert set(codes[ops_auth.MAX_FAILURES :]) == {429}, codes  # a 2-character token no longer falls in 1.6 s
    locked = httpx.get(f"{proxy}/api/tasks", headers={"Authorization": f"Bearer {OPS_TOKEN}"})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
    assert time.monotonic() - started < 10


def test_a_short_ops_token_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="at least 20 characters"):
        Settings(_env_file=None, OPS_TOKEN="ab")
    env = {"OPS_TOKEN": "ab", "PATH": "/usr/bin:/bin"}
    started = subprocess.run(
        [sys.executable, "-c", "import backend.core.config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert started.returncode != 0 and b"OPS_TOKEN" in started.stderr


def test_without_ops_token_a_private_token_file_is_written_once(tmp_path: Path) -> None:
    path = tmp_path / "var" / "ops-token"
    settings = Settings(_env_file=None, OPS_TOKEN="", OPS_TOKEN_FILE=path)
    token = ops_auth.operator_token(settings)
    assert len(token) >= 40 and path.read_text().strip() == token
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    ops_auth._file_tokens.clear()
    assert ops_auth.operator_token(settings) == token  # another process reads the same one


def test_the_cli_sends_the_token_file_to_a_loopback_api_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.cli.main import _ops_token

    (tmp_path / "ops-token").write_text("file-token-0123456789abcdef\n")
    monkeypatch.delenv("OILSPILL_OPS_TOKEN", raising=False)
    monkeypatch.setenv("OILSPILL_OPS_TOKEN_FILE", str(tmp_path / "ops-token"))
    assert _ops_token("http://127.0.0.1:8000") == "file-token-0123456789abcdef"
    assert _ops_token("https://api.example.org") is None
    monkeypatch.setenv("OILSPILL_OPS_TOKEN", "env-token")
    assert _ops_token("https://api.example.org") == "env-token"
