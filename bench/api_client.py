"""What a user does, as the benches need it: upload a zip through POST /api/upload, wait for the job's end."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx

FINAL_STATES = frozenset({"completed", "failed", "expired"})


@dataclass(frozen=True)
class Upload:
    job_id: str
    user_hash: str
    images: int
    seconds: float  # from the first byte sent to the 202 (receive + zip scan + queueing)


@dataclass(frozen=True)
class Finished:
    state: str
    done: int
    failed: int
    errors: list[dict[str, str]]
    seen_at: float  # time.perf_counter() when the final state was first seen


def upload_zip(client: httpx.Client, zip_path: Path) -> Upload:
    """Stream the zip from disk as the `file` field; raise on anything but 202."""
    t0 = time.perf_counter()
    with zip_path.open("rb") as f:
        response = client.post("/api/upload", files={"file": (zip_path.name, f, "application/zip")})
    seconds = time.perf_counter() - t0
    if response.status_code != 202:
        raise RuntimeError(f"upload failed: {response.status_code} {response.text[:300]}")
    body = response.json()
    return Upload(body["job_id"], body["user_hash"], body["images"], seconds)


def wait_job(
    client: httpx.Client, job_id: str, timeout: float, slow: float = 0.25, fast: float = 0.01
) -> Finished:
    """Poll GET /api/status/{job_id} until the job is no longer active.

    Polling fast all along would load the machine being measured, and polling slowly would see the end up to
    `slow` seconds late (several % of a short job). So the interval follows the job's expected time left
    (a quarter of it, from the rate at which images have finished so far), between `slow` and `fast`.
    """
    deadline = time.monotonic() + timeout
    first: tuple[float, int] | None = None
    while True:
        body = client.get(f"/api/status/{job_id}").raise_for_status().json()
        now = time.perf_counter()
        if body["state"] in FINAL_STATES:
            return Finished(body["state"], body["done"], body["failed"], body["errors"], now)
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {body['state']} after {timeout:.0f}s: {body}")
        finished = body["done"] + body["failed"]
        first = first or (now, finished)
        rate = (finished - first[1]) / (now - first[0]) if now > first[0] else 0.0
        left = body["total"] - finished
        eta = left / rate if rate > 0 else (slow * 4 if left else 0.0)
        time.sleep(min(slow, max(fast, eta / 4)))
