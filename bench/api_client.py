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
    seconds: float  # from the first byte sent to the 202 (receive + extraction + queueing)


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

    Slowly while images are being segmented (polling fast would load the machine being measured), fast once
    every image has a result and only the archive is left, so the end is seen within about `fast` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/status/{job_id}").raise_for_status().json()
        if body["state"] in FINAL_STATES:
            seen = time.perf_counter()
            return Finished(body["state"], body["done"], body["failed"], body["errors"], seen)
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {body['state']} after {timeout:.0f}s: {body}")
        time.sleep(fast if body["done"] + body["failed"] >= body["total"] else slow)
