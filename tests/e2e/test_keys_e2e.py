"""Download keys never leak (a real stack): no user hash in a Celery task argument or any log line, the
results private on disk (0700 folders, 0600 files), Flower behind a login, Redis and Flower locked down."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from stack_harness import ROOT, Stack, encode_image, free_port, sar_scene, wait_for
from test_pipeline_e2e import download, upload, wait_until_finished

from scripts import processes

pytestmark = pytest.mark.e2e


def modes(root: Path) -> dict[str, int]:
    found = {str(root): stat.S_IMODE(root.stat().st_mode)}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            found[str(path)] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_no_user_hash_in_task_arguments_or_logs_and_results_are_private(stack: Stack) -> None:
    scenes = {f"k{i}.png": encode_image(sar_scene(64, 64, seed=i), "PNG") for i in range(3)}
    job = upload(stack, scenes)
    user_hash, job_id = job["user_hash"], job["job_id"]
    assert wait_until_finished(stack, job_id)[-1]["state"] == "completed"
    download(stack, user_hash).close()
    httpx.get(f"{stack.api_url}/api/results/{user_hash}/images")
    # The expiry timer was sent, with the job id as its argument (the worker logs what it receives).
    wait_for(lambda: "delete_results" in stack.log_tail("worker", lines=100_000), 30, "the expiry timer")
    time.sleep(0.5)  # the API's access lines of the download
    for name in ("api", "worker", "beat"):
        log = stack.log_path(name).read_text(errors="replace")
        assert user_hash not in log, f"the user hash is in the {name} log"
    assert job_id in stack.log_path("worker").read_text()  # the job is logged by its id
    # 0700 folders and 0600 files under RESULTS_DIR, the folder itself included.
    folder = stack.results_dir / user_hash
    assert folder.is_dir() and (folder / "upload.zip").is_file()
    found = modes(stack.results_dir)
    for path, mode in found.items():
        expected = 0o700 if Path(path).is_dir() else 0o600
        if Path(path).name.startswith(".") and not Path(path).exists():
            continue
        assert mode == expected, f"{path}: {oct(mode)}"


def test_flower_answers_only_with_its_login(stack: Stack, tmp_path: Path) -> None:
    port = free_port()
    env = stack.env(FLOWER_BASIC_AUTH="operator:flower-secret-123")
    log = (tmp_path / "flower.log").open("wb")
    proc = subprocess.Popen(
        processes.flower("127.0.0.1", port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(url + "/healthcheck").status_code in (200, 401), 60, "flower", proc)
        for page in ("/", "/tasks", "/api/tasks", "/task/x"):
            assert httpx.get(url + page).status_code == 401, page
        assert httpx.get(url + "/tasks", auth=("operator", "flower-secret-123")).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def test_compose_keeps_redis_and_flower_locked() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "--requirepass" in services["redis"]["command"]
    assert "${REDIS_PASSWORD" in compose["x-app"]["environment"]["REDIS_URL"]
    flower = services["flower"]
    assert flower["profiles"] == ["monitoring"]  # not started by default
    assert all(str(p).startswith("127.0.0.1:") for p in flower["ports"])  # never on all interfaces
    assert "FLOWER_BASIC_AUTH" in flower["environment"]
    assert flower["environment"]["FLOWER_UNAUTHENTICATED_API"] == "false"
