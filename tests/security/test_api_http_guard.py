"""The API's HTTP guard (backend/api/http.py) under a real uvicorn API process and raw loopback sockets:
huge headers get a 431 after a few KB, slow clients are closed at the head deadline, and a connection flood
evicts the slow clients so /api/health still answers."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
import redis
from stack_harness import Stack, api_process

from backend.jobs.models import JobState
from backend.jobs.store import JobStore
from backend.storage.layout import new_token

HEAD_TIMEOUT = 2.0
MAX_CONNECTIONS = 120
MAX_HEADER_BYTES = 16384
MAX_WAITERS = 40
REDIS_DB = 2  # out of the way of the session stack's sweeper (db 0) and the unit tests (db 1)


@pytest.fixture(scope="module")
def api(stack_base: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, int]]:
    with api_process(
        stack_base,
        tmp_path_factory.mktemp("guard"),
        API_HEADER_TIMEOUT_SECONDS=str(HEAD_TIMEOUT),
        API_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        API_MAX_HEADER_BYTES=str(MAX_HEADER_BYTES),
        STATUS_MAX_WAITERS=str(MAX_WAITERS),
        REDIS_URL=stack_base.redis_url.removesuffix("/0") + f"/{REDIS_DB}",
    ) as api:
        yield api


def health_answers(url: str, within: float = 4.0) -> bool:
    """/api/health gives its JSON answer (200 or 503: the ML service is absent here) within `within` s."""
    started = time.monotonic()
    response = httpx.get(url + "/api/health", timeout=within)
    return "redis" in response.text and time.monotonic() - started < within


def rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) >> 10
    raise LookupError(pid)


def read_reply(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def test_a_huge_header_gets_431_after_a_few_kb_and_health_keeps_answering(api: tuple[str, int, int]) -> None:
    url, port, pid = api
    rss_before = rss_mib(pid)
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        block = b"a" * (1 << 20)
        started = time.monotonic()
        try:
            while sent < 200 << 20:  # the 200 MB header of the issue, if the server let it through
                sock.sendall(block)
                sent += len(block)
        except (BrokenPipeError, ConnectionResetError):
            pass
        elapsed = time.monotonic() - started
        reply = read_reply(sock)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]
    assert sent < 32 << 20, f"the server read {sent >> 20} MB of header before refusing"
    assert elapsed < 5
    assert rss_mib(pid) - rss_before < 32
    assert health_answers(url)
    # A request with ordinary headers (a few KB) is served as before.
    response = httpx.get(url + "/api/health", headers={"X-Note": "n" * 4000}, timeout=5)
    assert response.status_code in (200, 503) and "redis" in response.text


def test_slow_clients_are_closed_at_the_head_deadline(api: tuple[str, int, int]) -> None:
    url, port, _ = api
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /api/health HTTP/1.1\r\n")
    started = time.monotonic()
    closed_after, reply = None, b""
    with sock:
        sock.settimeout(0.5)
        for _ in range(int(HEAD_TIMEOUT * 2) + 8):  # one header byte every 0.5 s: never a complete head
            try:
                sock.sendall(b"X")
                reply = sock.recv(4096)  # b"" or the 408: the server closed the connection
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                pass
            closed_after = time.monotonic() - started
            break
    assert closed_after is not None, "a client dripping its headers was never closed"
    assert HEAD_TIMEOUT - 0.5 <= closed_after <= HEAD_TIMEOUT + 2
    assert reply in (b"",) or reply.startswith(b"HTTP/1.1 408")
    # An idle connection that never sends a byte is closed at the same deadline.
    with socket.create_connection(("127.0.0.1", port)) as idle:
        started = time.monotonic()
        assert read_reply(idle, timeout=HEAD_TIMEOUT + 3).startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started <= HEAD_TIMEOUT + 2
    assert health_answers(url)


def test_a_flood_of_slow_clients_cannot_shut_out_health(api: tuple[str, int, int]) -> None:
    url, port, _ = api
    flood: list[socket.socket] = []
    try:
        for _ in range(3 * MAX_CONNECTIONS):  # 360 half-sent requests, all on loopback
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
            flood.append(sock)
        # Every new connection evicted an older slow one, so health gets in while the flood holds on.
        for _ in range(3):
            assert health_answers(url)
            for sock in flood[-MAX_CONNECTIONS // 2 :]:
                with contextlib.suppress(OSError):
                    sock.send(b"X")
        evicted = 0
        for sock in flood[:MAX_CONNECTIONS]:
            if read_reply(sock, timeout=0.2).startswith(b"HTTP/1.1 503"):
                evicted += 1
        assert evicted >= MAX_CONNECTIONS // 2
    finally:
        for sock in flood:
            sock.close()
    assert health_answers(url)


def test_a_hundred_long_polls_get_a_clear_429_beyond_the_bound_never_a_false_503(
    api: tuple[str, int, int], stack_base: Stack
) -> None:
    url, _, _ = api
    client = redis.Redis.from_url(
        stack_base.redis_url.removesuffix("/0") + f"/{REDIS_DB}", decode_responses=True
    )
    store = JobStore(client, record_ttl=600, deadline_s=600, archive_ttl=60)
    job_id, user_hash = new_token(), new_token()
    store.create_job(job_id, user_hash, {"a.png": "a.png"}, {})
    answers: list[httpx.Response] = []
    health: list[httpx.Response] = []

    async def poll(http: httpx.AsyncClient) -> None:
        answers.append(await http.get(f"/api/status/{job_id}", params={"wait": 20}))

    async def main() -> None:
        limits = httpx.Limits(max_connections=200)
        async with (
            httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http,
            anyio.create_task_group() as tg,
        ):
            for _ in range(100):
                tg.start_soon(poll, http)
            await anyio.sleep(3)  # every poll has arrived: MAX_WAITERS wait, the rest were answered
            health.append(await http.get("/api/health"))
            assert len(answers) == 100 - MAX_WAITERS
            store.transition(job_id, JobState.COMPLETED, [JobState.QUEUED], finished_at=0)

    anyio.run(main)
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * MAX_WAITERS + [429] * (100 - MAX_WAITERS), codes
    refused = next(r for r in answers if r.status_code == 429)
    assert "Too many long polls" in refused.json()["detail"] and refused.headers["retry-after"] == "2"
    assert all(r.json()["state"] == "completed" for r in answers if r.status_code == 200)
    assert health[0].json()["redis"]["status"] == "ok"  # Redis's pool was never exhausted
    # The slots are free again.
    assert httpx.get(f"{url}/api/status/{job_id}", params={"wait": 1}, timeout=5).status_code == 200
