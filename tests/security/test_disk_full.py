"""A full disk, for real (a 24 MB tmpfs as RESULTS_DIR, a real API process): uploads reserve what their jobs
will write, so parallel ones cannot fill the disk; ENOSPC mid-upload is a 507 that leaves nothing behind;
/api/health reports the disk."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from PIL import Image
from stack_harness import Stack, api_process, fill_disk

from backend.storage.reserve import RESERVED_KEY

REDIS_DB = 4  # nobody consumes this database's queue: accepted jobs stay queued, their reservations held
FLOOR_MB = 2
REDIS: list[str] = []  # the URL of the API's Redis, once the fixture has made it


def noise_zip(mb: float, seed: int = 0) -> bytes:
    """A zip (stored) of one PNG of random grey pixels, about `mb` MB."""
    side = int((mb * 1024 * 1024) ** 0.5)
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)
    image = io.BytesIO()
    Image.fromarray(pixels).save(image, format="PNG", compress_level=0)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("noise.png", image.getvalue())
    return out.getvalue()


@pytest.fixture
def api(stack_base: Stack, small_disk: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    url = stack_base.redis_url.removesuffix("/0") + f"/{REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    REDIS[:] = [url]
    results = small_disk / "results"
    env = {"RESULTS_DIR": str(results), "MIN_FREE_DISK_MB": str(FLOOR_MB), "REDIS_URL": url}
    with api_process(stack_base, tmp_path, **env) as (api_url, _, _):
        yield api_url, results
    redis.Redis.from_url(url).flushdb()


def post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{url}/api/upload", files={"file": ("scenes.zip", body)}, timeout=60)


def test_parallel_uploads_cannot_fill_the_disk_reserved_for_an_accepted_job(api: tuple[str, Path]) -> None:
    url, results = api
    body = noise_zip(4)  # 4 MB: its job reserves 4 x (1 + 2.7) = 15 MB of the 22 above the floor
    first = post(url, body)
    assert first.status_code == 202, first.text
    with ThreadPoolExecutor(3) as pool:
        later = list(pool.map(lambda _: post(url, body), range(3)))
    assert [r.status_code for r in later] == [507] * 3, [r.text for r in later]
    assert "Not enough free disk space" in later[0].json()["detail"]
    assert sorted(p.name for p in results.iterdir()) == [first.json()["user_hash"]]  # nothing else left
    reserved = redis.Redis.from_url(REDIS[0], decode_responses=True).hgetall(RESERVED_KEY)
    assert list(reserved) == [first.json()["user_hash"]]
    assert httpx.get(f"{url}/api/health", timeout=10).json()["disk"]["status"] == "ok"


def test_enospc_mid_upload_is_507_and_leaves_nothing(api: tuple[str, Path], small_disk: Path) -> None:
    url, results = api
    fill_disk(small_disk, leave_mb=FLOOR_MB + 4)  # over the floor at the start; too little for the upload

    def chunked() -> Iterator[bytes]:  # no Content-Length: nothing to reserve before reading
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.zip"\r\n\r\n'
        for _ in range(12):
            yield bytes(1 << 20)
        yield b"\r\n--b--\r\n"

    headers = {"content-type": "multipart/form-data; boundary=b"}
    response = httpx.post(f"{url}/api/upload", content=chunked(), headers=headers, timeout=60)
    assert response.status_code == 507, response.text
    assert "ran out of disk space" in response.json()["detail"]
    assert not any(results.iterdir())
    assert httpx.get(f"{url}/api/health", timeout=10).json()["disk"]["status"] == "ok"


def test_health_reports_a_full_disk(api: tuple[str, Path], small_disk: Path) -> None:
    url, _ = api
    ballast = fill_disk(small_disk, leave_mb=FLOOR_MB / 2)
    response = httpx.get(f"{url}/api/health", timeout=10)
    assert response.status_code == 503
    disk = response.json()["disk"]
    assert disk["status"] == "error" and "under MIN_FREE_DISK_MB" in disk["error"], disk
    assert post(url, noise_zip(0.1)).status_code == 507
    ballast.unlink()
    assert httpx.get(f"{url}/api/health", timeout=10).json()["disk"]["status"] == "ok"
