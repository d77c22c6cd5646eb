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


def wait_job(client: httpx.Client, job_id: str, timeout: float, wait: float = 30.0) -> Finished:
    """Wait for the job's end with the API's long poll, GET /api/status/{job_id}?wait=.

    The API answers the moment the job has ended, so the end is seen within milliseconds and nothing polls
    in the meantime: polling every 10-250 ms cost the measured machine ~0.5 ms of CPU per image of a
    200-tile job (API, Redis and this process; docs/benchmarks.md), on the cores the model needs.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = max(0.0, deadline - time.monotonic())
        answer = client.get(f"/api/status/{job_id}", params={"wait": min(wait, left)}, timeout=wait + 30)
        body = answer.raise_for_status().json()
        now = time.perf_counter()
        if body["state"] in FINAL_STATES:
            return Finished(body["state"], body["done"], body["failed"], body["errors"], now)
        if time.monotonic() >= deadline:
            raise TimeoutError(f"job {job_id} still {body['state']} after {timeout:.0f}s: {body}")
