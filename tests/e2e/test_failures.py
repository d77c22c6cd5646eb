"""Failing parts, with real processes: the ML service down or dead, Redis restarted, many users at once.

Each scenario must end with every good image segmented and archived, or the job clearly `failed` with a
reason, never stuck. The module runs its own stack, because it kills Redis and the ML service under the
other modules' shared one. Worker crashes, and expiry after the worker holding the timer was killed, are in
test_pipeline_e2e.py.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from PIL import Image
from stack_harness import Stack, encode_image, sar_scene
from test_pipeline_e2e import download, status, upload, wait_until_finished, zip_of

from scripts import processes

pytestmark = pytest.mark.e2e

# The ML client's retry window is ML_RETRY_BACKOFF_SECONDS * (2**ML_RETRIES - 1), +-20 %: ~31 s, longer
# than the ML service takes to start on a busy CI machine (~15 s); the short one is ~1.5 s.
LONG_RETRIES = {"ML_RETRIES": "6", "ML_RETRY_BACKOFF_SECONDS": "0.5"}
SHORT_RETRIES = {"ML_RETRIES": "2", "ML_RETRY_BACKOFF_SECONDS": "0.5"}
# Unacked messages come back after 45 s (longer than any task here); a job not done 90 s after its upload
# is closed by the sweeper, with the images it lacks failed; archives outlive the checks on a busy machine.
# Chord members of two images: several members per job even for the small jobs here.
FAILURE_SETTINGS = {
    "IMAGES_PER_TASK": "2",
    "VISIBILITY_TIMEOUT_SECONDS": "45",
    "JOB_DEADLINE_SECONDS": "90",
    "ARCHIVE_TTL_SECONDS": "40",
}
DEADLINE_ERROR = "not processed before the job deadline"
REDIS_DOWN_SECONDS = 6.0  # longer than an image takes: the images in progress need Redis meanwhile
ACTIVE = ("queued", "processing", "archiving")
REPORTS = {"report.json", "report.csv", "slicks.geojson", "slicks.csv"}


class DurableStack(Stack):
    """The test stack with Redis run as on a server: AOF on (fsync at every write; compose: every second)."""

    worker_env: dict[str, str] = LONG_RETRIES

    def env(self, **overrides: str) -> dict[str, str]:
        return super().env(**(FAILURE_SETTINGS | overrides))

    def _argv(self, name: str) -> list[str]:
        if name != "redis":
            return super()._argv(name)
        data = self.workdir / "redis"
        data.mkdir(exist_ok=True)
        return processes.redis_server(self.redis_port, data, aof="always")

    def use_worker(self, **env: str) -> None:
        """Make sure a worker with these settings runs; restart it only if it runs with others."""
        if self.running("worker") and self.worker_env == env:
            return
        self.stop("worker")
        self.start_worker(**env)
        self.worker_env = env


@pytest.fixture(scope="module")
def fstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DurableStack]:
    stack = DurableStack(tmp_path_factory.mktemp("failures"))
    try:
        stack.start_redis()
        stack.start("ml", "beat", "api", "worker", **stack.worker_env)
        yield stack
    finally:
        stack.close()


@pytest.fixture
def stack(fstack: DurableStack) -> DurableStack:
    """This module's stack with every process up, whatever the previous test stopped."""
    if not fstack.running("redis"):
        fstack.start_redis()
    fstack.start(*(name for name in ("ml", "beat", "api") if not fstack.running(name)))
    fstack.use_worker(**fstack.worker_env)
    return fstack


def images(prefix: str, count: int, size: int = 64) -> dict[str, bytes]:
    return {f"{prefix}{i}.png": encode_image(sar_scene(size, size, seed=i), "PNG") for i in range(count)}


def wait_for_done(stack: Stack, job_id: str, done: int) -> None:
    deadline = time.monotonic() + 60
    while status(stack, job_id)["done"] < done:
        assert time.monotonic() < deadline, stack.log_tail("worker")
        time.sleep(0.05)


def wait_for_log(stack: Stack, name: str, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in stack.log_tail(name, lines=10_000):
        assert time.monotonic() < deadline, f"no {text!r} in the {name} log:\n{stack.log_tail(name)}"
        time.sleep(0.1)


def assert_archive_matches(stack: Stack, final: dict[str, Any], user_hash: str) -> dict[str, Any]:
    """The archive holds a mask and an overlay for each image done, the report the status's errors."""
    with download(stack, user_hash) as archive:
        report: dict[str, Any] = json.loads(archive.read("report.json"))
        names = set(archive.namelist())
    ok = {image["name"] for image in report["images"] if image["status"] == "ok"}
    failed = {image["name"]: image["error"] for image in report["images"] if image["status"] == "failed"}
    assert (len(ok), len(failed)) == (final["done"], final["failed"])
    slicks = {f"slicks/{name.removesuffix('.png')}.geojson" for name in ok}  # PNG inputs: no COG masks
    assert names == {f"{kind}/{name}" for name in ok for kind in ("masks", "overlays")} | slicks | REPORTS
    assert failed == {e["name"]: e["error"] for e in final["errors"]}
    return report


def check_when_finished(
    stack: DurableStack,
    jobs: list[dict[str, Any]],
    check: Callable[[dict[str, Any], dict[str, Any]], None],
    *,
    supervise: bool = False,
) -> dict[str, dict[str, Any]]:
    """Poll the jobs together; run `check(job, final status)` on each as soon as it is done (before its
    archive expires, however long the others take). Returns the final statuses by job id.

    With `supervise`, a worker that has exited is started again, as `make run` and compose's restart
    policy do.
    """
    pending = {job["job_id"]: job for job in jobs}
    finals: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 150
    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} jobs unfinished:\n{stack.log_tail('worker')}"
        if supervise and not stack.running("worker"):
            assert "Unrecoverable error" in stack.log_tail("worker", lines=1000), stack.log_tail("worker")
            stack.start_worker(**stack.worker_env)
        for job_id, job in list(pending.items()):
            final = status(stack, job_id)
            if final["state"] not in ACTIVE:
                check(job, final)
                finals[job_id] = final
                del pending[job_id]
        time.sleep(0.2)
    return finals


def test_ml_down_at_job_start_and_back_within_the_retry_window(stack: DurableStack) -> None:
    stack.use_worker(**LONG_RETRIES)
    stack.stop("ml", signal.SIGKILL)
    job = upload(stack, images("late", 3))
    wait_for_log(stack, "worker", "ML service unreachable")  # a worker has tried, and waits to retry
    stack.start_ml()
    final = wait_until_finished(stack, job["job_id"], timeout=120)[-1]
    assert (final["state"], final["done"], final["failed"]) == ("completed", 3, 0), final
    assert_archive_matches(stack, final, job["user_hash"])


def test_ml_dead_for_good_mid_job_fails_the_rest_with_a_reason(stack: DurableStack) -> None:
    stack.use_worker(**SHORT_RETRIES)
    total = 12  # six chord members of two
    job = upload(stack, images("mid", total, size=256))
    wait_for_done(stack, job["job_id"], 2)
    stack.stop("ml", signal.SIGKILL)
    final = wait_until_finished(stack, job["job_id"], timeout=60)[-1]

    assert final["state"] == "completed", final
    assert final["done"] >= 2 and final["failed"] >= 1 and final["done"] + final["failed"] == total
    errors = [e["error"] for e in final["errors"]]
    assert all(error.startswith("ML service unreachable") for error in errors), errors
    # Only the images in flight when the service died (one batch of two per pool process) waited out the
    # retry window; then each process knew the service was down and failed the others after one attempt.
    assert sum("gave up after 3 attempts" in error for error in errors) <= 2 * 2, errors
    assert_archive_matches(stack, final, job["user_hash"])


def received_images(stack: Stack, job_id: str) -> set[str]:
    """Images of this job the worker has taken from the broker so far (its own log says which)."""
    pattern = re.compile(rf"segment_images\[[^]]+\] received .*'args': \"\('{job_id}', \[([^]]*)\]\)")
    groups = pattern.findall(stack.log_tail("worker", lines=100_000))
    return {name for group in groups for name in re.findall(r"'([^']+)'", group)}


def test_redis_restart_mid_job_503_meanwhile_and_every_job_completes(stack: DurableStack) -> None:
    running = upload(stack, images("running", 8, size=256))
    queued = upload(stack, images("queued", 2))  # its tasks wait in Redis behind the running job's
    wait_for_done(stack, running["job_id"], 1)
    stack.stop("redis", signal.SIGKILL)
    taken = received_images(stack, running["job_id"])

    started = time.monotonic()
    down = [
        httpx.get(f"{stack.api_url}/api/status/{queued['job_id']}", timeout=30),
        httpx.post(f"{stack.api_url}/api/upload", files={"file": ("x.zip", zip_of(images("x", 1)))}),
    ]
    assert time.monotonic() - started < 10, "a dead Redis must be answered fast"
    for response in down:
        assert response.status_code == 503, response.text
        assert "Redis" in response.json()["detail"]
    time.sleep(max(0.0, started + REDIS_DOWN_SECONDS - time.monotonic()))
    stack.start_redis()  # same data directory: the append-only file brings the jobs and queues back

    # The API was not restarted: it reconnects by itself, and so does the worker, usually. Now and then
    # Celery's Redis transport crashes the worker's main process instead ("Unrecoverable error:
    # AttributeError: 'NoneType' object has no attribute 'hostname'": a task acknowledged as the broker
    # connection drops, celery/kombu#582); then the supervisor starts it again (supervise=True below), and
    # the messages it held come back from the unacked set.
    after = upload(stack, images("after", 2))
    totals = {running["job_id"]: 8, queued["job_id"]: 2, after["job_id"]: 2}

    def check(job: dict[str, Any], final: dict[str, Any]) -> None:
        assert final["state"] == "completed", final
        assert final["done"] + final["failed"] == totals[job["job_id"]], final
        # A message Redis handed out just as it died, before the worker took it, can be lost; the sweeper
        # then fails that image at the job deadline instead of leaving the job stuck.
        assert all(e["error"] == DEADLINE_ERROR for e in final["errors"]), final
        assert_archive_matches(stack, final, job["user_hash"])

    finals = check_when_finished(stack, [running, queued, after], check, supervise=True)
    # The images the worker held (in progress or reserved) all made it: the ones in progress waited for
    # Redis (REDIS_RETRY_SECONDS), the others came back from the broker's unacked set.
    lost = {e["name"] for e in finals[running["job_id"]]["errors"]}
    assert taken and not taken & lost, (taken, lost)


def user_images(user: int) -> dict[str, tuple[int, int]]:
    """Two images whose names and sizes (height, width) belong to this user alone."""
    return {f"user{user:02d}/scene{j}.png": (40 + 2 * user, 48 + 2 * j) for j in range(2)}


def test_twenty_users_at_once_each_get_exactly_their_own_results(stack: DurableStack) -> None:
    users = 20
    start = threading.Barrier(users)

    def one_user(user: int) -> tuple[int, dict[str, Any]]:
        files = {
            name: encode_image(sar_scene(h, w, user), "PNG") for name, (h, w) in user_images(user).items()
        }
        body = zip_of(files)
        start.wait()  # all uploads at once
        response = httpx.post(f"{stack.api_url}/api/upload", files={"file": ("mine.zip", body)}, timeout=120)
        assert response.status_code == 202, response.text
        return user, response.json()

    with ThreadPoolExecutor(users) as pool:
        pending = dict(pool.map(one_user, range(users)))
    assert len({job["user_hash"] for job in pending.values()}) == users
    assert len({job["job_id"] for job in pending.values()}) == users

    by_job = {job["job_id"]: user for user, job in pending.items()}

    def check(job: dict[str, Any], final: dict[str, Any]) -> None:
        assert (final["state"], final["done"], final["failed"]) == ("completed", 2, 0), final
        assert_only_own_results(stack, by_job[job["job_id"]], job)

    check_when_finished(stack, list(pending.values()), check)


def assert_only_own_results(stack: Stack, user: int, job: dict[str, Any]) -> None:
    mine = user_images(user)
    with download(stack, job["user_hash"]) as archive:
        expected = {f"{kind}/{name}" for name in mine for kind in ("masks", "overlays")}
        expected |= {f"slicks/{name.removesuffix('.png')}.geojson" for name in mine}  # PNGs: no COG masks
        assert set(archive.namelist()) == expected | REPORTS
        report = json.loads(archive.read("report.json"))
        for name, (h, w) in mine.items():
            for kind in ("masks", "overlays"):
                with Image.open(io.BytesIO(archive.read(f"{kind}/{name}"))) as im:
                    assert im.size == (w, h), (user, kind, name)
    assert report["job_id"] == job["job_id"]
    assert {(i["name"], i["height"], i["width"]) for i in report["images"]} == {
        (name, h, w) for name, (h, w) in mine.items()
    }


PAUSE_SECONDS = 14.0  # past the worker's REDIS_RETRY_SECONDS below and its 10 s socket timeout
PAUSE_RETRY = LONG_RETRIES | {"REDIS_RETRY_SECONDS": "3"}


def test_redis_paused_past_the_retry_window_503_fast_and_no_job_is_left_stuck(stack: DurableStack) -> None:
    """Redis SIGSTOPped while jobs run (no connection refused: every call times out): uploads get 503 within
    about a second, and every job completes with all its images, before the deadline would close it."""
    stack.use_worker(**PAUSE_RETRY)
    jobs = [upload(stack, images(f"pause{j}_", 6, size=256)) for j in range(3)]
    wait_for_done(stack, jobs[0]["job_id"], 1)
    redis_pid = stack.procs["redis"].pid
    os.kill(redis_pid, signal.SIGSTOP)
    paused = time.monotonic()
    try:
        started = time.monotonic()
        response = httpx.post(
            f"{stack.api_url}/api/upload", files={"file": ("x.zip", zip_of(images("x", 1)))}, timeout=30
        )
        took = time.monotonic() - started
        assert response.status_code == 503 and "Redis" in response.json()["detail"], response.text
        assert took < 3, f"an upload during the pause took {took:.1f} s"
        time.sleep(max(0.0, paused + PAUSE_SECONDS - time.monotonic()))
    finally:
        os.kill(redis_pid, signal.SIGCONT)
    resumed = time.monotonic()

    def check(job: dict[str, Any], final: dict[str, Any]) -> None:
        assert final["state"] == "completed", final
        assert (final["done"], final["failed"]) == (6, 0), final  # no image lost or failed for the pause
        assert_archive_matches(stack, final, job["user_hash"])

    check_when_finished(stack, jobs, check, supervise=True)
    # JOB_DEADLINE_SECONDS is 90 here: the jobs were closed by their chords or the stalled-job sweep, not it.
    assert time.monotonic() - resumed < 75, "the jobs waited for their deadline"
