"""Operator tooling against the real stack: CLI as a subprocess, health, queue status, metrics, JSON logs."""

from __future__ import annotations

import json
import subprocess
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families
from stack_harness import OPS_HEADERS, Stack, free_port, wait_for
from test_pipeline_e2e import truncated_png, zip_of

from backend.core.config import settings
from backend.worker.lanes import lane_name
from scripts import processes
from scripts.processes import PY, ROOT

pytestmark = pytest.mark.e2e

Encode = Callable[[np.ndarray, str], bytes]
MakeSar = Callable[..., np.ndarray]


def run_cli(stack: Stack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "backend.cli", *args],
        cwd=ROOT,
        env=stack.env(OILSPILL_API=stack.api_url),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def scrape(stack: Stack) -> dict[str, float]:
    """Every sample of /metrics as 'name{label="value"}' -> value."""
    response = httpx.get(f"{stack.api_url}/metrics")
    assert response.status_code == 200, response.text
    return {
        sample.name + "".join(f'{{{k}="{v}"}}' for k, v in sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def poll(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not seen within {timeout:.0f} s")
        time.sleep(0.25)
    return result


def test_cli_round_trip_and_the_metrics_it_moves(
    stack: Stack, tmp_path: Path, make_sar: MakeSar, encode: Encode
) -> None:
    before = scrape(stack)
    names = ["a/one.png", "b/one.png", "two.jpg"]
    scenes = tmp_path / "scenes.zip"
    formats = {"png": "PNG", "jpg": "JPEG"}
    scenes.write_bytes(
        zip_of({n: encode(make_sar(96, 128, seed=i), formats[n[-3:]]) for i, n in enumerate(names)})
    )

    out = tmp_path / "masks.zip"
    done = run_cli(stack, "upload", str(scenes), "--wait", "--out", str(out), "--poll", "0.2")
    assert done.returncode == 0, done.stderr
    assert "100%" in done.stderr and "upload scenes.zip [" in done.stderr  # the progress bars
    job_id, user_hash = done.stdout.split()[1].rstrip(":"), done.stdout.split("user hash ")[1].split()[0]
    assert f"job {job_id} completed: 3 of 3 images segmented, 0 failed" in done.stdout
    with zipfile.ZipFile(out) as archive:
        members = set(archive.namelist())
    expected = {"report.json", "report.csv"} | {f"{d}/{n}" for d in ("masks", "overlays") for n in
                                               ("a/one.png", "b/one.png", "two.png")}  # fmt: skip
    assert expected <= members, members
    assert not list(tmp_path.glob("*.part"))

    again = tmp_path / "again.zip"  # at once: the test stack deletes archives after 6 s
    fetched = run_cli(stack, "download", user_hash, "--out", str(again))
    assert fetched.returncode == 0, fetched.stderr
    assert again.read_bytes() == out.read_bytes()
    shown = run_cli(stack, "status", job_id)
    assert shown.returncode == 0 and shown.stdout.startswith(f"job {job_id}: "), shown.stderr
    assert shown.stdout.split(": ", 1)[1].split("\n")[0] in (  # the archive may be gone already
        "completed, 3 of 3 images, 0 failed",
        "expired, 3 of 3 images, 0 failed",
    )
    listed = run_cli(stack, "tasks", "--json", "--limit", "200")
    assert listed.returncode == 0, listed.stderr
    assert job_id in [task["job_id"] for task in json.loads(listed.stdout)["items"]]
    assert user_hash not in listed.stdout

    after = scrape(stack)
    delta = {key: after[key] - before.get(key, 0.0) for key in after}
    assert delta['oilspill_uploads_total{outcome="accepted"}'] == 1
    assert delta['oilspill_images_segmented_total{status="ok"}'] >= 3
    assert delta['oilspill_jobs_finished_total{state="completed"}'] >= 1
    assert (
        delta["oilspill_segmentation_seconds_count"] >= 3 and delta["oilspill_segmentation_seconds_sum"] > 0
    )
    assert delta["oilspill_archive_bytes_total"] >= out.stat().st_size

    # The archive expires (ARCHIVE_TTL_SECONDS=6 in the test stack) and the worker counts the deletion.
    expired = 'oilspill_deletions_total{reason="expired"}'
    poll(lambda: scrape(stack)[expired] > before.get(expired, 0.0), 40, "the deletion")
    # The counter is shared with the other modules' jobs: wait for this job's own expiry too.
    status_url = f"{stack.api_url}/api/status/{job_id}"
    poll(lambda: httpx.get(status_url).json()["state"] == "expired", 40, "this job's expiry")
    gone = run_cli(stack, "download", user_hash, "--out", str(tmp_path / "late.zip"))
    assert gone.returncode == 4 and "HTTP 410" in gone.stderr and not (tmp_path / "late.zip").exists()


def test_cli_failures_have_their_own_exit_codes(
    stack: Stack, tmp_path: Path, make_sar: MakeSar, encode: Encode
) -> None:
    not_zip = tmp_path / "notes.zip"
    not_zip.write_bytes(b"just text")
    refused = run_cli(stack, "upload", str(not_zip))
    assert refused.returncode == 4 and "\nerror: HTTP 400: not a zip" in refused.stderr, refused.stderr
    missing = run_cli(stack, "status", "0" * 32)
    assert missing.returncode == 4 and "HTTP 404: No such job" in missing.stderr
    bad = tmp_path / "broken.zip"
    bad.write_bytes(zip_of({"broken.png": truncated_png(make_sar, encode)}))
    failed = run_cli(stack, "upload", str(bad), "--out", str(tmp_path / "none.zip"), "--poll", "0.2")
    assert failed.returncode == 1, failed.stderr
    assert "failed broken.png: " in failed.stderr and "failed: 0 of 1 images segmented" in failed.stdout
    assert not (tmp_path / "none.zip").exists()


def test_health_names_the_ml_service_when_it_is_down(stack: Stack) -> None:
    healthy = httpx.get(f"{stack.api_url}/api/health", timeout=15)
    assert healthy.status_code == 200, healthy.text
    body = healthy.json()
    assert body["status"] == "ok"
    assert {body[c]["status"] for c in ("redis", "ml_service", "workers")} == {"ok"}
    assert body["workers"]["answered_by"].startswith("test") and body["redis"]["response_ms"] >= 0
    stack.stop("ml")
    try:
        sick = httpx.get(f"{stack.api_url}/api/health", timeout=15)
        assert sick.status_code == 503, sick.text
        body = sick.json()
        assert body["status"] == "unavailable" and body["ml_service"]["status"] == "error"
        assert "ConnectError" in body["ml_service"]["error"]
        assert body["redis"]["status"] == "ok" and body["workers"]["status"] == "ok"
    finally:
        stack.start_ml()
    assert httpx.get(f"{stack.api_url}/api/health", timeout=15).status_code == 200


def test_queue_status_shows_what_the_worker_holds(stack: Stack) -> None:
    """A timer (countdown task) sits in the worker's memory as 'scheduled', not in the queue's list."""
    with Celery(broker=stack.redis_url) as sender:
        hash_of_nobody = "f" * 32  # delete_results on a hash without job or folder: harmless when it runs
        sender.send_task("backend.tasks.delete_results", args=[hash_of_nobody], countdown=20)

    def holding() -> dict[str, Any] | None:
        body: dict[str, Any] = httpx.get(
            f"{stack.api_url}/api/queues/status", headers=OPS_HEADERS, timeout=15
        ).json()
        return body if any(w["scheduled"] >= 1 for w in body["workers"]) else None

    body = poll(holding, 20, "a scheduled task in /api/queues/status")
    lanes = [lane_name(i) for i in range(settings.FAIR_LANES)]  # the owners' lanes (backend/worker/lanes.py)
    assert sorted(queue["name"] for queue in body["queues"]) == sorted(["celery", *lanes])
    assert body["workers_error"] is None
    worker = next(w for w in body["workers"] if w["scheduled"] >= 1)
    assert worker["name"].startswith("test")
    assert {key: type(value) for key, value in worker.items()} == {
        "name": str, "active": int, "reserved": int, "scheduled": int
    }  # fmt: skip


@pytest.fixture
def json_logging_processes(stack: Stack, tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    """An extra API and a solo worker on a queue of its own, both with LOG_JSON=true."""
    port = free_port()
    env = stack.env(LOG_JSON="true")
    logs = tmp_path / "api.log", tmp_path / "worker.log"
    argvs = (
        processes.api("127.0.0.1", port),
        processes.worker(f"logcheck{port}@%h", pool="solo", queues="logcheck", gossip=False),
    )
    procs = []
    for argv, log in zip(argvs, logs, strict=True):
        with log.open("wb") as sink:
            procs.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT))
    try:
        yield logs[0], logs[1], f"http://127.0.0.1:{port}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def json_lines(log: Path) -> list[dict[str, Any]]:
    """The log's lines from the first JSON object on (Celery prints its banner on stdout before logging)."""
    lines = log.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("{")), len(lines))
    return [json.loads(line) for line in lines[start:] if line.strip()]


def test_log_json_applies_to_api_and_worker(json_logging_processes: tuple[Path, Path, str]) -> None:
    api_log, worker_log, api = json_logging_processes
    wait_for(
        lambda: httpx.get(f"{api}/api/tasks?limit=1", headers=OPS_HEADERS).status_code == 200,
        90,
        "JSON-logging API",
    )
    wait_for(lambda: b" ready." in worker_log.read_bytes(), 90, "JSON-logging worker")
    time.sleep(0.3)  # let the API write its access line
    access = [line for line in json_lines(api_log) if line["logger"] == "uvicorn.access"]
    assert any("GET /api/tasks?limit=1" in line["message"] for line in access), api_log.read_text()
    assert any(line["message"].endswith(" ready.") for line in json_lines(worker_log))
