"""What a new user trips over with the CLI: the installed command, exit codes, pipes, --out, the file name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from json_server import serve_json

from backend.cli import main as cli

REPO = Path(__file__).resolve().parents[2]
JOB, USER = "b" * 32, "a" * 32


def failed_job(errors: int = 1) -> dict[str, object]:
    return {
        "job_id": JOB,
        "state": "failed",
        "total": errors,
        "done": 0,
        "failed": errors,
        "errors": [
            {"name": f"scene{i:05d}.png", "error": "cannot decode image " + "x" * 60} for i in range(errors)
        ],
        "created_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:00:01Z",
        "expires_at": None,
        "download_url": f"/api/download/{USER}",
    }


def use_api(monkeypatch: pytest.MonkeyPatch, handler: httpx.MockTransport) -> None:
    monkeypatch.setattr(cli, "_client", lambda args: httpx.Client(base_url="http://api", transport=handler))


def test_status_of_a_failed_job_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_api(monkeypatch, httpx.MockTransport(lambda request: httpx.Response(200, json=failed_job())))
    assert cli.main(["status", JOB]) == cli.EXIT_JOB_FAILED
    assert "failed scene00000.png: cannot decode image" in capsys.readouterr().out
    assert cli.main(["status", JOB, "--json"]) == cli.EXIT_JOB_FAILED
    assert json.loads(capsys.readouterr().out)["state"] == "failed"


@pytest.mark.parametrize("command", ["upload", "download"])
def test_a_bad_out_path_is_refused_before_any_request(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request expected, got {request.url}")

    use_api(monkeypatch, httpx.MockTransport(never))
    zip_path = tmp_path / "scenes.zip"
    zip_path.write_bytes(b"PK\x05\x06" + bytes(18))
    target = [str(zip_path)] if command == "upload" else [USER]
    assert cli.main([command, *target, "--out", "/nodir/x.zip"]) == cli.EXIT_USAGE
    assert "cannot write /nodir/x.zip: no folder /nodir" in capsys.readouterr().err
    assert cli.main([command, *target, "--out", str(tmp_path)]) == cli.EXIT_USAGE
    assert "it is a folder" in capsys.readouterr().err


def test_download_takes_the_name_the_api_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/api/download/{USER}"
        headers = {"content-disposition": f'attachment; filename="oilspill-{JOB}.zip"'}
        return httpx.Response(200, content=b"PK\x05\x06" + bytes(18), headers=headers)

    use_api(monkeypatch, httpx.MockTransport(handler))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["download", USER]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"oilspill-{JOB}.zip"]  # as the browser, curl -OJ
    assert f"saved oilspill-{JOB}.zip" in capsys.readouterr().out


@pytest.fixture
def stub_api() -> Iterator[str]:
    """A real HTTP server answering every status with a failed job of 2000 errors (a long --json)."""
    with serve_json(failed_job(2000)) as port:
        yield f"http://127.0.0.1:{port}"


def test_installed_command_works_from_any_folder_and_ends_quietly_when_the_reader_stops(
    stub_api: str, tmp_path: Path
) -> None:
    command = Path(sys.executable).with_name("oilspill")
    assert command.exists(), "make install installs the project into .venv (pip install -e .)"
    env = {**os.environ, "OILSPILL_API": stub_api, "PYTHONPATH": ""}
    shown = subprocess.run(
        [str(command), "status", JOB], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == cli.EXIT_JOB_FAILED, shown.stderr
    assert f"job {JOB}: failed, 0 of 2000 images" in shown.stdout
    # `oilspill status --json | head -1`: head reads one line and goes away; no traceback, SIGPIPE's status.
    piped = subprocess.run(
        f"'{command}' status {JOB} --json | head -1; echo \"rc=${{PIPESTATUS[0]}}\"",
        shell=True,
        executable="/bin/bash",
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.stdout.splitlines() == ["{", f"rc={cli.EXIT_BROKEN_PIPE}"], piped.stdout
    assert "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr, piped.stderr
    module = subprocess.run(
        [sys.executable, "-m", "backend.cli", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert module.returncode == 0 and "oilspill" in module.stdout, module.stderr
