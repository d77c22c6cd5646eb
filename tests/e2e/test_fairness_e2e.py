"""Fair shares between owners on real processes: a 1-image job of one owner, sent while another owner's big
job runs, is finished long before the big one (before, it waited for every image of it). Its timing is
bench/fairness.py's figure; here only the order, which first come first served could not produce."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from auth_helpers import bearer, scenes_zip, upload, wait_ended
from stack_harness import Stack, api_process

from backend.auth.keys import KeyStore

pytestmark = pytest.mark.e2e

BIG_IMAGES = 600


def test_a_small_job_is_not_starved_by_another_owners_big_one(stack: Stack, tmp_path: Path) -> None:
    keys = KeyStore(stack.redis())
    tag = str(time.time_ns())
    big_key, small_key = keys.create(f"big-{tag}"), keys.create(f"small-{tag}")
    big_zip, small_zip = scenes_zip(BIG_IMAGES, size=64), scenes_zip(1, size=64, seed=99)
    env = {"AUTH_MODE": "api-key", "RESULTS_DIR": str(stack.results_dir), "QUOTA_IMAGES_PER_DAY": "100000"}
    with api_process(stack, tmp_path, **env) as (api, _, _):
        big = upload(api, big_zip, bearer(big_key)).json()
        status = f"{api}/api/status/{big['job_id']}"
        deadline = time.monotonic() + 60
        while httpx.get(status, headers=bearer(big_key)).json()["done"] == 0:  # the workers are on it
            assert time.monotonic() < deadline, "the big job never started"
            time.sleep(0.1)
        small = upload(api, small_zip, bearer(small_key))
        assert small.status_code == 202, small.text
        assert wait_ended(api, small.json()["job_id"], bearer(small_key))["state"] == "completed"
        progress = httpx.get(status, headers=bearer(big_key)).json()
        # The small job went ahead of most of the big one (first come first served: after all of it).
        assert progress["state"] == "processing", progress
        assert progress["done"] + progress["failed"] < BIG_IMAGES // 2, progress
        assert wait_ended(api, big["job_id"], bearer(big_key), timeout=300)["done"] == BIG_IMAGES
