"""What the account tests share: `oilspill keys` as an operator runs it, zips of test scenes, an upload with
a credential, a job followed to its end, and every read endpoint of one job, to be asked with each kind of
credential."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import zipfile
from typing import Any

import httpx
from stack_harness import ROOT, Stack, encode_image, sar_scene

ACTIVE = ("queued", "processing", "archiving")


def scenes_zip(count: int, size: int = 64, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i in range(count):
            archive.writestr(f"s{i}.png", encode_image(sar_scene(size, size, seed=seed + i), "PNG"))
    return buffer.getvalue()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def upload(api: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{api}/api/upload", files={"file": ("x.zip", body, "application/zip")}, headers=headers
    )


def wait_ended(api: str, job_id: str, headers: dict[str, str], timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(f"{api}/api/status/{job_id}", params={"wait": 10}, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        job: dict[str, Any] = answer.json()
        if job["state"] not in ACTIVE:
            return job
        assert time.monotonic() < deadline, f"job still {job['state']}"


def job_endpoints(job_id: str, user_hash: str) -> dict[str, str]:
    """Every route that reads one job, by name."""
    return {
        "status": f"/api/status/{job_id}",
        "images": f"/api/results/{user_hash}/images",
        "overlay": f"/api/results/{user_hash}/overlays/s0.png",
        "slicks": f"/api/results/{user_hash}/slicks",
        "download": f"/api/download/{user_hash}",
        "archive_time_left": f"/api/archive_time_left/{user_hash}",
    }


def statuses(api: str, paths: dict[str, str], headers: dict[str, str]) -> dict[str, int]:
    return {name: httpx.get(api + path, headers=headers).status_code for name, path in paths.items()}


def keys_cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """`oilspill keys ...` as an operator runs it, on the stack's Redis."""
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", "keys", *args],
        cwd=ROOT,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def new_key(stack: Stack, name: str, *options: str) -> str:
    done = keys_cli(stack, "create", name, *options)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[0].strip()
