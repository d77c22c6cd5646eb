"""`make run` with a port already taken: said at once, with the setting to change, before anything starts;
and a foreign server answering on a port is never taken for one of ours."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from json_server import serve_json

from scripts import ports

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def foreign() -> Iterator[int]:
    """A real HTTP server, not ours, answering 200 with JSON to every GET; its port."""
    with serve_json({"status": "ok", "info": {"title": "someone else's app"}}) as port:
        yield port


@pytest.mark.parametrize("setting", ["API_PORT", "ML_PORT", "EMBEDDED_REDIS_PORT"])
def test_a_taken_port_stops_make_run_before_anything_starts(
    setting: str, foreign: int, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env |= {
        "API_HOST": "127.0.0.1",
        "API_PORT": str(free_port()),
        "ML_PORT": str(free_port()),
        "EMBEDDED_REDIS_PORT": str(free_port()),
        "RESULTS_DIR": str(tmp_path / "results"),
    }
    env[setting] = str(foreign)
    run = subprocess.run(
        [sys.executable, "-m", "scripts.stack"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1
    assert f"[stack] port {foreign} is taken; set {setting}" in run.stderr
    assert "[stack] started" not in run.stdout and "ready" not in run.stdout


def test_taken_sees_a_listener_and_only_a_listener(foreign: int) -> None:
    assert ports.taken("127.0.0.1", foreign)
    assert ports.taken("0.0.0.0", foreign)  # the API listening everywhere would clash too
    assert not ports.taken("127.0.0.1", free_port())
    assert ports.taken_ports([("API_PORT", "127.0.0.1", foreign)]) == [
        f"port {foreign} is taken; set API_PORT"
    ]


def test_a_foreign_server_is_never_ready(foreign: int) -> None:
    url = f"http://127.0.0.1:{foreign}"
    assert ports.wait_ours(f"{url}/health", ports.is_our_ml, None, 1.5) == (
        f"something else answers {url}/health (HTTP 200) after 2 s"
    )
    why = ports.wait_ours(f"{url}/openapi.json", ports.is_our_api, None, 1.0)
    assert why is not None and why.startswith("something else answers")
    assert ports.is_our_api({"info": {"title": ports.API_TITLE}})
    assert ports.is_our_ml({"status": "ok", "model_version": "slicknet-1"})


def test_our_service_exiting_is_not_ready() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    assert (
        ports.wait_ours(f"http://127.0.0.1:{free_port()}/", ports.is_our_api, proc, 5)
        == "it exited with code 3"
    )
