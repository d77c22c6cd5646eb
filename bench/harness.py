"""The service's processes for a bench: redis-server, ML service, Celery worker and API on free ports.

Unlike the test stack (tests/conftest.py), nothing is tuned here: every process reads `.env` and the
environment like `make run` does, so a bench measures the defaults. Only ports, the Redis URL and the results
folder are set, so a bench never touches a running stack's data. Logs go to <workdir>/<name>.log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx
import redis

from scripts import processes
from scripts.processes import ROOT

STARTUP_TIMEOUT = 180.0  # a loaded 2-core machine imports torch-free stacks slowly, but not this slowly


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class BenchStack:
    """Start with `with BenchStack(workdir) as stack:`; every process is stopped on exit, also on error."""

    NAMES = ("redis", "ml", "worker", "api")

    def __init__(self, workdir: Path, names: tuple[str, ...] = NAMES) -> None:
        self.workdir = workdir
        self.names = names
        self.redis_port, self.ml_port, self.api_port = free_port(), free_port(), free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def ml_url(self) -> str:
        return f"http://127.0.0.1:{self.ml_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def env(self) -> dict[str, str]:
        return dict(os.environ) | {
            "REDIS_URL": self.redis_url,
            "RESULTS_DIR": str(self.workdir / "results"),
            "ML_SCENE_DIR": str(self.workdir / "results"),  # the same folder: scenes are read there in place
            "ML_SERVICE_URL": self.ml_url,
            "ML_PORT": str(self.ml_port),
            "PYTHONUNBUFFERED": "1",
        }

    def argv(self, name: str) -> list[str]:
        """The processes as `make run` starts them, with the access logs off (a line per request)."""
        match name:
            case "redis":
                return processes.redis_server(self.redis_port, self.workdir)
            case "ml":
                return processes.ml_service("127.0.0.1", self.ml_port, access_log=False)
            case "worker":
                return processes.worker("bench@%h")
            case "api":
                return processes.api("127.0.0.1", self.api_port, access_log=False)
        raise ValueError(f"no process {name!r} in a bench stack")

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def log_tail(self, name: str, lines: int = 30) -> str:
        return "\n".join(self.log_path(name).read_text(errors="replace").splitlines()[-lines:])

    def ready(self, name: str) -> bool:
        try:
            if name == "redis":
                return bool(redis.Redis.from_url(self.redis_url).ping())
            if name == "ml":
                return httpx.get(f"{self.ml_url}/health").status_code == 200
            if name == "api":
                return httpx.get(f"{self.api_url}/openapi.json").status_code == 200
        except (OSError, httpx.HTTPError, redis.RedisError):
            return False
        return b" ready." in self.log_path(name).read_bytes()

    def start(self, name: str) -> None:
        with self.log_path(name).open("wb") as log:
            self.procs[name] = subprocess.Popen(
                self.argv(name),
                cwd=ROOT,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own group: stopping it reaches the worker's pool children
            )

    def wait_ready(self, name: str) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        proc = self.procs[name]
        while not self.ready(name):
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} not ready in {STARTUP_TIMEOUT:.0f}s:\n{self.log_tail(name)}")
            time.sleep(0.2)

    def __enter__(self) -> BenchStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self.start("redis")
            self.wait_ready("redis")
            for name in self.names[1:]:
                self.start(name)
            for name in self.names[1:]:
                self.wait_ready(name)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for name in reversed(list(self.procs)):
            proc = self.procs.pop(name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def _descendants(pid: int) -> list[int]:
    """The process and its live descendants (a prefork worker's pool children), from /proc (Linux)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in task.read_text().split())
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by a process tree (threads included, dead children not)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in _descendants(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / tick


def rss_bytes(pid: int) -> int:
    """Resident set size of one process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def peak_rss_bytes(pid: int) -> int:
    """Peak resident set size of one process since it started (VmHWM), from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def process_tree(pid: int) -> list[int]:
    """The process and its live descendants (a prefork worker's pool children)."""
    return _descendants(pid)
