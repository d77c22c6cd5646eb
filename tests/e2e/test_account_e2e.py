"""GET /api/account and per-owner quotas on real processes: the answer by credential (none, wrong, revoked,
right, admin, OIDC tokens with and without overrides), the day's counters moving with an upload, the CLI's
`oilspill account`, a 413 mid-stream that names max_upload_mb, and `oilspill keys quota SUBJECT` giving an
OIDC subject a 429 at its own limit with nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from auth_helpers import bearer, keys_cli, new_key, scenes_zip, upload, wait_ended
from oidc_issuer import AUDIENCE, Issuer
from stack_harness import ROOT, Stack, api_process

from backend.jobs.keys import CREATED_INDEX

pytestmark = pytest.mark.e2e

MB = 1024 * 1024


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    found = Issuer()
    yield found
    found.server.shutdown()


def account(api: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{api}/api/account", headers=headers)


def test_the_account_by_key_and_its_counters(long_lived_archives: Stack, tmp_path: Path) -> None:
    stack, tag = long_lived_archives, os.urandom(3).hex()
    alice = new_key(stack, f"alice-{tag}", "--images-per-day", "40", "--max-upload-mb", "1")
    admin = new_key(stack, f"admin-{tag}", "--admin")
    revoked = new_key(stack, f"gone-{tag}")
    assert keys_cli(stack, "revoke", f"gone-{tag}").returncode == 0
    env = {"AUTH_MODE": "api-key", "RESULTS_DIR": str(stack.results_dir)}
    with api_process(stack, tmp_path, **env) as (api, _, _):
        for headers in ({}, bearer("osk_wrong"), bearer(revoked)):
            refused = account(api, headers)
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "revoked" in account(api, bearer(revoked)).json()["detail"]

        mine = account(api, {"X-API-Key": alice}).json()
        assert (mine["auth"], mine["auth_mode"], mine["owner"], mine["via"], mine["admin"]) == (
            True,
            "api-key",
            f"alice-{tag}",
            "api-key",
            False,
        )
        assert mine["quotas"] == {
            "jobs_in_flight": 4,
            "images_per_day": 40,
            "mb_per_day": 20480,
            "max_upload_mb": 1,
        }
        assert mine["usage"]["images_today"] == 0 and mine["usage"]["jobs_in_flight"] == 0
        assert account(api, bearer(admin)).json()["admin"] is True

        body = scenes_zip(3)
        job = upload(api, body, bearer(alice)).json()
        assert wait_ended(api, job["job_id"], bearer(alice))["state"] == "completed"
        used = account(api, bearer(alice)).json()
        assert used["usage"]["images_today"] == 3 and used["remaining"]["images_today"] == 37
        assert used["usage"]["mb_today"] == round(len(body) / MB, 3) > 0
        assert used["usage"]["jobs_in_flight"] == 0  # the job has ended: its slot is free
        assert account(api, bearer(admin)).json()["usage"]["images_today"] == 0  # per owner

        # Past max_upload_mb with no Content-Length (chunked): cut off mid-stream, and the 413 says whose
        # limit it was.
        chunked = httpx.post(f"{api}/api/upload", headers=bearer(alice) | MULTIPART, content=big_body())
        assert chunked.status_code == 413, chunked.text
        assert "max_upload_mb" in chunked.json()["detail"] and "1 MB" in chunked.json()["detail"]
        after = account(api, bearer(alice)).json()["usage"]
        assert (after["images_today"], after["jobs_in_flight"]) == (3, 0)  # the refusal cost nothing

        shown = oilspill(api, "account", key=alice)
        assert shown.returncode == 0, shown.stderr
        assert f"owner alice-{tag} (via api-key)" in shown.stdout
        assert "images today     3 of 40 (37 left)" in shown.stdout
        assert oilspill(api, "account", key=None).returncode == 4


MULTIPART = {"Content-Type": "multipart/form-data; boundary=b0undary"}


def big_body() -> Iterator[bytes]:
    """A 1.5 MB file field sent in chunks, so no Content-Length announces it."""
    yield b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="x.zip"\r\n\r\n'
    for _ in range(24):
        yield os.urandom(64 * 1024)
    yield b"\r\n--b0undary--\r\n"


def oilspill(api: str, *args: str, key: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OILSPILL_OPS_TOKEN", "OILSPILL_API_KEY")}
    if key:
        env["OILSPILL_API_KEY"] = key
    command = [sys.executable, "-m", "backend.cli", "--api", api, *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_auth_off_says_so(stack: Stack) -> None:
    answer = account(stack.api_url, {})
    assert answer.status_code == 200
    assert answer.json()["auth"] is False and "AUTH_MODE=none" in answer.json()["message"]
    shown = oilspill(stack.api_url, "account", key=None)
    assert shown.returncode == 0 and "Accounts are off" in shown.stdout


def test_an_oidc_subject_gets_its_own_quotas(stack: Stack, issuer: Issuer, tmp_path: Path) -> None:
    tag = os.urandom(3).hex()
    erin, frank = f"auth0|erin-{tag}", f"auth0|frank-{tag}"
    env = {"AUTH_MODE": "oidc", "OIDC_ISSUER": issuer.url, "OIDC_AUDIENCE": AUDIENCE}
    with api_process(stack, tmp_path, **env) as (api, _, _):
        expired = bearer(issuer.token(erin, exp=int(time.time()) - 120))
        assert account(api, expired).status_code == 401
        assert account(api, {}).status_code == 401
        plain = account(api, bearer(issuer.token(erin))).json()
        assert (plain["owner"], plain["via"], plain["admin"]) == (erin, "oidc", False)
        assert plain["quotas"]["images_per_day"] == 50_000  # QUOTA_IMAGES_PER_DAY
        admin = bearer(issuer.token(f"auth0|ops-{tag}", permissions=["oilspill:admin"]))
        assert account(api, admin).json()["admin"] is True

        granted = keys_cli(stack, "quota", erin, "--images-per-day", "3", "--jobs-in-flight", "2")
        assert granted.returncode == 0, granted.stderr
        assert "images_per_day=3 (set)" in granted.stdout
        quotas = account(api, bearer(issuer.token(erin))).json()["quotas"]
        assert (quotas["images_per_day"], quotas["jobs_in_flight"]) == (3, 2)  # at once, no restart
        assert account(api, bearer(issuer.token(frank))).json()["quotas"]["images_per_day"] == 50_000

        results, client = tmp_path / "results", stack.redis()
        assert upload(api, scenes_zip(2), bearer(issuer.token(erin))).status_code == 202
        before = (sorted(p.name for p in results.iterdir()), client.zcard(CREATED_INDEX))
        over = upload(api, scenes_zip(2, seed=3), bearer(issuer.token(erin)))  # 2 + 2 > 3 today
        assert over.status_code == 429, over.text
        assert "images per day" in over.json()["detail"] and "2 of 3" in over.json()["detail"]
        assert 0 < int(over.headers["retry-after"]) <= 86400
        assert (sorted(p.name for p in results.iterdir()), client.zcard(CREATED_INDEX)) == before
        left = account(api, bearer(issuer.token(erin))).json()
        assert (left["usage"]["images_today"], left["remaining"]["images_today"]) == (2, 1)
        assert upload(api, scenes_zip(2), bearer(issuer.token(frank))).status_code == 202  # not frank's

        assert keys_cli(stack, "quota", erin, "--clear").returncode == 0
        assert account(api, bearer(issuer.token(erin))).json()["quotas"]["images_per_day"] == 50_000
