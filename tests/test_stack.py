"""`make run`'s supervisor: starts an embedded Redis and every service, and stops them all on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited for our purpose.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


STARTED = re.compile(r"\[stack\] started (\w+) \(pid (\d+)\)")


def read_until(proc: subprocess.Popen[str], lines: list[str], marker: str, timeout: float) -> None:
    """Append the supervisor's output lines to `lines` until one contains `marker`."""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return
    raise AssertionError(f"no {marker!r} in:\n{''.join(lines[-40:])}")


@pytest.mark.e2e
def test_stack_starts_embedded_redis_restarts_a_dead_child_and_stops_everything_on_sigint(
    tmp_path: Path,
) -> None:
    api, ml, redis_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env |= {
        "API_PORT": str(api),
        "ML_PORT": str(ml),
        "ML_SERVICE_URL": f"http://127.0.0.1:{ml}",
        "EMBEDDED_REDIS_PORT": str(redis_port),
        "RESULTS_DIR": str(tmp_path / "results"),
        "WORKER_CONCURRENCY": "1",
        "ML_THREADS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.stack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        read_until(proc, lines, "[stack] ready", timeout=120)
        started = {m.group(1): int(m.group(2)) for ln in lines if (m := STARTED.search(ln))}
        assert list(started) == ["redis", "ml", "worker", "beat", "api"]
        assert httpx.get(f"http://127.0.0.1:{api}/docs", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{ml}/health", timeout=5).status_code == 200

        os.kill(started["worker"], signal.SIGKILL)  # as if Celery had crashed: a service manager restarts it
        read_until(proc, lines, "[stack] started worker", timeout=30)
        assert "[stack] worker exited with code -9; restarting it\n" in lines
        pids = [int(m.group(2)) for ln in lines if (m := STARTED.search(ln))]
        assert len(pids) == 6 and pids[-1] != started["worker"]

        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert "[stack] all stopped" in out
        time.sleep(0.5)
        assert [p for p in pids if alive(p)] == []
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()  # the children get SIGTERM from PR_SET_PDEATHSIG
                proc.wait()


def test_a_child_that_keeps_dying_stops_the_stack_instead_of_looping() -> None:
    from scripts.stack import RESTART_LIMIT, RESTART_WINDOW_SECONDS, Child

    child = Child("worker", [])
    assert [child.may_restart(float(t)) for t in range(RESTART_LIMIT)] == [True] * (RESTART_LIMIT - 1) + [
        False
    ]
    later = Child("worker", [])
    spaced = [later.may_restart(t * RESTART_WINDOW_SECONDS) for t in range(2 * RESTART_LIMIT)]
    assert all(spaced)  # one exit a minute is a hiccup each time
