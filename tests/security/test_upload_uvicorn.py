"""receive_upload under a real uvicorn process: memory stays flat for a big upload, oversized ones are cut."""

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).parent
UPLOAD_BYTES = 256 << 20
CHUNK = 1 << 20
# Peak RSS may grow by this much over the idle server while a 256 MiB upload streams through.
RSS_HEADROOM = 48 << 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, int]]:
    dest_dir = tmp_path_factory.mktemp("uvicorn-uploads")
    port = free_port()
    env = {**os.environ, "UPLOAD_TEST_DIR": str(dest_dir), "UPLOAD_TEST_MAX_BYTES": str(UPLOAD_BYTES)}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent.parent), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "uvicorn", "--factory", "upload_app:app_from_env"]
    command += ["--app-dir", str(HERE), "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/ping", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        yield url, dest_dir, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def multipart_stream(block: bytes, count: int) -> Iterator[bytes]:
    boundary = "uvicorn-test-boundary"
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.zip"\r\n\r\n'
    ).encode()
    for _ in range(count):
        yield block
    yield f"\r\n--{boundary}--\r\n".encode()


def test_big_upload_streams_with_flat_memory(server: tuple[str, Path, int]) -> None:
    url, dest_dir, pid = server
    idle_rss = memory_kib(pid, "VmRSS") << 10
    block, count = os.urandom(CHUNK), UPLOAD_BYTES // CHUNK
    started = time.perf_counter()
    response = httpx.post(
        url + "/upload",
        content=multipart_stream(block, count),
        headers={"content-type": "multipart/form-data; boundary=uvicorn-test-boundary"},
        timeout=120,
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    assert response.json() == {"size": UPLOAD_BYTES}
    peak_rss = memory_kib(pid, "VmHWM") << 10
    print(f"\n{UPLOAD_BYTES / elapsed / 1e6:.0f} MB/s, peak RSS +{(peak_rss - idle_rss) >> 20} MiB")
    assert peak_rss - idle_rss < RSS_HEADROOM
    expected, written = hashlib.sha256(), hashlib.sha256()
    for _ in range(count):
        expected.update(block)
    with (dest_dir / "upload.bin").open("rb") as fh:
        while data := fh.read(CHUNK):
            written.update(data)
    assert written.hexdigest() == expected.hexdigest()
    (dest_dir / "upload.bin").unlink()


def test_oversized_upload_gets_413_and_server_keeps_serving(server: tuple[str, Path, int]) -> None:
    url, dest_dir, _ = server
    offered = 0

    def endless() -> Iterator[bytes]:
        nonlocal offered
        yield b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\n'
        block = bytes(CHUNK)
        while offered < 4 * UPLOAD_BYTES:
            offered += CHUNK
            yield block

    headers = {"content-type": "multipart/form-data; boundary=b"}
    try:
        response = httpx.post(url + "/upload", content=endless(), headers=headers, timeout=120)
        assert response.status_code == 413
    except httpx.TransportError:
        pass  # the server may close the socket while the client is still writing: also a cut-off
    assert offered < UPLOAD_BYTES + 64 * CHUNK
    assert not (dest_dir / "upload.bin").exists()
    assert httpx.get(url + "/ping").json() == {"status": "ok"}


def test_twenty_mb_of_empty_parts_is_refused_fast_and_the_loop_stays_free(
    server: tuple[str, Path, int],
) -> None:
    url, dest_dir, _ = server
    empty_part = b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n\r\n'
    body = empty_part * (20_000_000 // len(empty_part))
    body += b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nPK\r\n--b--\r\n'
    headers = {"content-type": "multipart/form-data; boundary=b"}
    started = time.perf_counter()
    try:
        response = httpx.post(url + "/upload", content=body, headers=headers, timeout=30)
        assert response.status_code == 413
        assert "parts in the form" in response.json()["detail"]
    except httpx.TransportError:
        pass  # closed while the client still wrote: refused all the same
    assert time.perf_counter() - started < 3
    assert not (dest_dir / "upload.bin").exists()
    ping_started = time.perf_counter()
    assert httpx.get(url + "/ping").json() == {"status": "ok"}
    assert time.perf_counter() - ping_started < 0.5
