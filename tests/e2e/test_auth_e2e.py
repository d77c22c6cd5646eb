"""AUTH_MODE=api-key on real processes: keys made and revoked with the CLI, every endpoint asked with no
credential, a wrong, a revoked, another owner's and the right key; admin keys and the operator token; links
kept shareable by setting; quotas answering 429 (or 413) with nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from auth_helpers import (
    bearer,
    job_endpoints,
    keys_cli,
    new_key,
    scenes_zip,
    statuses,
    upload,
    wait_ended,
)
from stack_harness import OPS_HEADERS, ROOT, Stack, api_process

from backend.jobs.keys import CREATED_INDEX

pytestmark = pytest.mark.e2e

ALL_OK = {
    "status": 200,
    "images": 200,
    "overlay": 200,
    "slicks": 200,
    "download": 200,
    "archive_time_left": 200,
}


@pytest.fixture(scope="module")
def keys(stack_base: Stack) -> dict[str, str]:
    """alice and bob, an admin, and a key already revoked; unique names per run of the module."""
    tag = os.urandom(3).hex()
    made = {who: new_key(stack_base, f"{who}-{tag}") for who in ("alice", "bob", "revoked")}
    made["admin"] = new_key(stack_base, f"admin-{tag}", "--admin")
    assert keys_cli(stack_base, "revoke", f"revoked-{tag}").returncode == 0
    made["tag"] = tag
    return made


@pytest.fixture
def keyed_api(long_lived_archives: Stack, tmp_path: Path) -> Iterator[str]:
    env = {"AUTH_MODE": "api-key", "RESULTS_DIR": str(long_lived_archives.results_dir)}
    with api_process(long_lived_archives, tmp_path, **env) as (url, _, _):
        yield url


def test_keys_are_listed_without_the_key_and_revoked_keys_are_gone(
    stack: Stack, keys: dict[str, str]
) -> None:
    listed = keys_cli(stack, "list")
    assert listed.returncode == 0, listed.stderr
    tag = keys["tag"]
    assert f"alice-{tag}" in listed.stdout and f"revoked-{tag}" not in listed.stdout
    assert keys["alice"] not in listed.stdout  # never the key itself
    stored = " ".join(str(v) for k in stack.redis().scan_iter("oilspill:apikey*") for v in [k])
    assert keys["alice"] not in stored  # nor in Redis: only its hash
    assert keys_cli(stack, "create", f"alice-{tag}").returncode == 2  # names are unique
    assert keys_cli(stack, "revoke", f"nobody-{tag}").returncode == 2


def test_every_endpoint_by_credential(keyed_api: str, keys: dict[str, str], stack: Stack) -> None:
    answer = upload(keyed_api, scenes_zip(2), bearer(keys["alice"]))
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert wait_ended(keyed_api, job["job_id"], bearer(keys["alice"]))["state"] == "completed"
    paths = job_endpoints(job["job_id"], job["user_hash"])

    assert statuses(keyed_api, paths, bearer(keys["alice"])) == ALL_OK
    assert statuses(keyed_api, paths, {"X-API-Key": keys["alice"]}) == ALL_OK
    assert statuses(keyed_api, paths, bearer(keys["admin"])) == ALL_OK
    assert set(statuses(keyed_api, paths, bearer(keys["bob"])).values()) == {404}  # never 403
    for headers in ({}, bearer("osk_wrong"), bearer(keys["revoked"]), {"X-API-Key": "nonsense"}):
        assert set(statuses(keyed_api, paths, headers).values()) == {401}, headers
    refused = httpx.get(keyed_api + paths["status"])
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert "API key" in refused.json()["detail"]
    revoked = httpx.get(keyed_api + paths["status"], headers=bearer(keys["revoked"]))
    assert "revoked" in revoked.json()["detail"]
    # Another owner's job says what a job that never existed says: ids cannot be probed.
    unknown = httpx.get(f"{keyed_api}/api/status/{'0' * 32}", headers=bearer(keys["bob"]))
    bobs = httpx.get(keyed_api + paths["status"], headers=bearer(keys["bob"]))
    assert unknown.json() == bobs.json()

    # Uploads need a key too; 401 before a byte is stored.
    for headers in ({}, bearer(keys["revoked"])):
        assert upload(keyed_api, scenes_zip(1), headers).status_code == 401

    # The job list: one's own jobs; every job for an admin key and for the operator token.
    def listed(headers: dict[str, str]) -> tuple[int, set[str]]:
        page = httpx.get(f"{keyed_api}/api/tasks", params={"limit": 200}, headers=headers)
        return page.status_code, {i["job_id"] for i in page.json().get("items", [])}

    assert listed(bearer(keys["alice"])) == (200, {job["job_id"]})
    assert listed(bearer(keys["bob"])) == (200, set())
    assert job["job_id"] in listed(bearer(keys["admin"]))[1]
    assert job["job_id"] in listed(OPS_HEADERS)[1]
    for headers in ({}, bearer("osk_wrong"), bearer(keys["revoked"])):
        assert listed(headers)[0] == 401
    owners = httpx.get(f"{keyed_api}/api/tasks", headers=bearer(keys["alice"])).json()["items"]
    assert owners[0]["owner"] == f"alice-{keys['tag']}"
    # Its last use is recorded.
    assert f"alice-{keys['tag']}" in keys_cli(stack, "list").stdout


AREA_BODY = {
    "bboxes": [[51.52, 26.93, 51.55, 26.96]],
    "date": "2026-06-01",
    "temporal_tolerance": 1,
    "data_source": "planetary-computer-grd",
    "max_scenes": 1,
}


def test_area_jobs_need_a_key_and_belong_to_their_owner(
    keyed_api: str, keys: dict[str, str], stack: Stack
) -> None:
    """An area job is a job like an upload: a credential to ask for one, its owner's alone afterwards."""

    def folders() -> set[Path]:
        return set(stack.results_dir.iterdir()) if stack.results_dir.exists() else set()

    before = folders()
    for headers in ({}, bearer("osk_wrong"), bearer(keys["revoked"])):
        refused = httpx.post(f"{keyed_api}/api/area-jobs", json=AREA_BODY, headers=headers)
        assert refused.status_code == 401, (headers, refused.text)
        assert refused.headers["www-authenticate"].startswith("Bearer")
    assert folders() == before  # refused before anything was written

    answer = httpx.post(f"{keyed_api}/api/area-jobs", json=AREA_BODY, headers=bearer(keys["alice"]))
    assert answer.status_code == 202, answer.text
    job = answer.json()
    status = f"{keyed_api}/api/status/{job['job_id']}"
    assert httpx.get(status, headers=bearer(keys["alice"])).json()["kind"] == "area"
    assert httpx.get(status, headers=bearer(keys["bob"])).status_code == 404  # never 403
    assert httpx.get(status).status_code == 401
    items = httpx.get(f"{keyed_api}/api/tasks", params={"limit": 200}, headers=bearer(keys["alice"])).json()
    mine = [item for item in items["items"] if item["job_id"] == job["job_id"]]
    assert [(item["kind"], item["owner"]) for item in mine] == [("area", f"alice-{keys['tag']}")]
    bobs = httpx.get(f"{keyed_api}/api/tasks", params={"limit": 200}, headers=bearer(keys["bob"])).json()
    assert job["job_id"] not in {item["job_id"] for item in bobs["items"]}


def test_shareable_links_open_results_by_hash_but_not_status(
    long_lived_archives: Stack, keys: dict[str, str], tmp_path: Path
) -> None:
    env = {"AUTH_MODE": "api-key", "AUTH_SHAREABLE_LINKS": "true"}
    with api_process(
        long_lived_archives, tmp_path, RESULTS_DIR=str(long_lived_archives.results_dir), **env
    ) as (
        api,
        _,
        _,
    ):
        job = upload(api, scenes_zip(1), bearer(keys["alice"])).json()
        wait_ended(api, job["job_id"], bearer(keys["alice"]))
        paths = job_endpoints(job["job_id"], job["user_hash"])
        status = paths.pop("status")
        assert set(statuses(api, paths, {}).values()) == {200}  # the hash is the key
        assert httpx.get(api + status).status_code == 401


def test_quotas_answer_429_and_write_nothing(stack: Stack, keys: dict[str, str], tmp_path: Path) -> None:
    tag = keys["tag"]
    small = new_key(stack, f"small-{tag}", "--images-per-day", "3", "--max-upload-mb", "1")
    light = new_key(stack, f"light-{tag}", "--mb-per-day", "1")
    client = stack.redis()
    with api_process(stack, tmp_path, AUTH_MODE="api-key") as (api, _, _):
        results = tmp_path / "results"
        accepted = upload(api, scenes_zip(2), bearer(small))
        assert accepted.status_code == 202, accepted.text
        before = (sorted(p.name for p in results.iterdir()), client.zcard(CREATED_INDEX))

        over = upload(api, scenes_zip(2, seed=5), bearer(small))  # 2 + 2 > 3 images today
        assert over.status_code == 429, over.text
        assert "images per day" in over.json()["detail"] and "resets at" in over.json()["detail"]
        assert 0 < int(over.headers["retry-after"]) <= 86400
        big = upload(api, os.urandom(1_200_000), bearer(small))  # over its largest upload, 1 MB
        assert big.status_code == 413 and "max_upload_mb" in big.json()["detail"]
        assert (sorted(p.name for p in results.iterdir()), client.zcard(CREATED_INDEX)) == before

        noisy = scenes_zip(3, size=384)  # incompressible speckle: ~0.45 MB a zip
        assert upload(api, noisy, bearer(light)).status_code == 202
        assert upload(api, noisy, bearer(light)).status_code == 202
        refused = upload(api, noisy, bearer(light))  # over 1 MB today
        assert refused.status_code == 429 and "megabytes per day" in refused.json()["detail"]
        assert "retry-after" in refused.headers
        assert len(list(results.iterdir())) == len(before[0]) + 2


def test_the_cli_sends_its_key(keyed_api: str, keys: dict[str, str], stack: Stack, tmp_path: Path) -> None:
    scenes = tmp_path / "scenes.zip"
    scenes.write_bytes(scenes_zip(1))

    def oilspill(*args: str, key: str | None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in stack.env().items() if k not in ("OILSPILL_OPS_TOKEN", "OILSPILL_API_KEY")}
        if key:
            env["OILSPILL_API_KEY"] = key
        command = [sys.executable, "-m", "backend.cli", "--api", keyed_api, *args]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    refused = oilspill("upload", str(scenes), key=None)
    assert refused.returncode == 4 and "HTTP 401" in refused.stderr and "API key" in refused.stderr
    done = oilspill("upload", str(scenes), "--wait", key=keys["bob"])
    assert done.returncode == 0, done.stderr
    listed = oilspill("tasks", "--json", key=None)
    assert listed.returncode == 4
    mine = oilspill("--key", keys["bob"], "tasks", "--json", key=None)
    assert mine.returncode == 0 and len(json.loads(mine.stdout)["items"]) >= 1
