"""Test harness: the real processes of the service (redis-server, ML service, Celery worker and beat, API)
on free ports, and synthetic SAR-like images made in code. tests/conftest.py turns these into fixtures;
test modules import from here (a uniquely named module, unlike the several conftest.py files).

The stack is session-scoped and reusable: tests may kill and restart pieces of it (`stack.kill_worker()`,
`stack.start_worker()`, `stack.restart_ml()`); every process is terminated at session end, also on failure.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import redis
from PIL import Image

from scripts import processes
from scripts.processes import ROOT

STARTUP_TIMEOUT = 90.0
OPS_TOKEN = "test-operator-token-0123456789abcdef"
OPS_HEADERS = {"Authorization": f"Bearer {OPS_TOKEN}"}

# Settings every process of the test stack gets: short timers so expiry is observable within a test.
STACK_SETTINGS = {
    "ARCHIVE_TTL_SECONDS": "6",
    "SWEEP_INTERVAL_SECONDS": "1",
    "JOB_DEADLINE_SECONDS": "600",
    "VISIBILITY_TIMEOUT_SECONDS": "600",
    "WORKER_CONCURRENCY": "2",
    "ML_RETRIES": "3",
    "ML_RETRY_BACKOFF_SECONDS": "0.5",
    "ML_TIMEOUT_SECONDS": "60",
    "MIN_FREE_DISK_MB": "1",
    "ML_THREADS": "1",
    "LOG_LEVEL": "INFO",
    "MONITOR_CACHE_SECONDS": "1",
    "OPS_TOKEN": OPS_TOKEN,
    "OILSPILL_OPS_TOKEN": OPS_TOKEN,  # the CLI's
}


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILLed if the test process dies without its teardown (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(
    check: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll `check` until true; fail fast if `proc` died meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting")
        try:
            if check():
                return
        except (OSError, httpx.HTTPError, redis.RedisError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


class Stack:
    """The service's processes on free ports, each logging to workdir/logs/<name>.log."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.results_dir = workdir / "results"
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.redis_port, self.ml_port, self.api_port = free_port(), free_port(), free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._starts: dict[str, int] = {}

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def ml_url(self) -> str:
        return f"http://127.0.0.1:{self.ml_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_", "CELERY"))}
        env |= STACK_SETTINGS
        env |= {
            "REDIS_URL": self.redis_url,
            "RESULTS_DIR": str(self.results_dir),
            "ML_SCENE_DIR": str(self.results_dir),  # the same folder: scenes are read there in place
            "ML_SERVICE_URL": self.ml_url,
            "PYTHONUNBUFFERED": "1",
        }
        return env | overrides

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, decode_responses=True)

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.{self._starts.get(name, 0)}.log"

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_path(name)
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def _spawn(self, name: str, **env: str) -> subprocess.Popen[bytes]:
        if self.running(name):
            raise RuntimeError(f"{name} is already running")
        self._starts[name] = self._starts.get(name, 0) + 1
        log = self.log_path(name).open("wb")
        # Own process group: a kill reaches the worker's prefork children too, as a crash would.
        proc = subprocess.Popen(
            self._argv(name),
            cwd=ROOT,
            env=self.env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def running(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def _ready(self, name: str) -> bool:
        """Whether the process `name` serves (each kind has its own sign of life)."""
        if name == "redis":
            return bool(self.redis().ping())
        if name == "ml":
            return httpx.get(f"{self.ml_url}/health").status_code == 200
        if name == "api":
            return httpx.get(f"{self.api_url}/openapi.json").status_code == 200
        marker = {"worker": b" ready.", "beat": b"beat: Starting"}[name]
        return marker in self.log_path(name).read_bytes()

    def _argv(self, name: str) -> list[str]:
        match name:
            case "redis":
                return processes.redis_server(self.redis_port, self.workdir)
            case "ml":
                return processes.ml_service("127.0.0.1", self.ml_port)
            case "worker":
                return processes.worker(f"test{self._starts.get('worker', 0)}@%h")
            case "beat":
                return processes.beat(self.workdir / "beat-schedule")
            case "api":
                return processes.api("127.0.0.1", self.api_port)
        raise ValueError(f"no process {name!r} in the stack")

    def start(self, *names: str, **env: str) -> None:
        """Start these processes together (with `env` on top of the stack's) and wait until each serves."""
        procs = {name: self._spawn(name, **env) for name in names}
        for name, proc in procs.items():
            wait_for(lambda name=name: self._ready(name), STARTUP_TIMEOUT, name, proc)

    def start_redis(self) -> None:
        self.start("redis")

    def start_ml(self) -> None:
        self.start("ml")

    def restart_ml(self) -> None:
        self.stop("ml")
        self.start("ml")

    def start_worker(self, **env: str) -> None:
        """Start a worker; `env` overrides settings for this worker only (e.g. VISIBILITY_TIMEOUT_SECONDS)."""
        self.start("worker", **env)

    def kill_worker(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Kill the worker and its pool children at once (SIGKILL: like a crash, nothing is acked)."""
        self.stop("worker", sig)

    def worker_children(self) -> list[int]:
        """Pids of the worker's prefork pool processes."""
        pid = self.procs["worker"].pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [int(c) for c in children]

    def start_beat(self) -> None:
        self.start("beat")

    def stop_beat(self) -> None:
        self.stop("beat")

    def start_api(self) -> None:
        self.start("api")

    def start_all(self) -> None:
        """Start whatever of the stack is not running (redis first: the others connect to it)."""
        if not self.running("redis"):
            self.start("redis")
        self.start(*(name for name in ("ml", "worker", "beat", "api") if not self.running(name)))

    def stop(self, name: str, sig: signal.Signals = signal.SIGTERM, timeout: float = 15.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        except ProcessLookupError:
            pass
        # Reap leftovers of the group (pool children that outlived a SIGTERMed parent).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def close(self) -> None:
        for name in ("api", "beat", "worker", "ml", "redis"):
            self.stop(name)
        for name in list(self.procs):
            self.stop(name)


def sar_scene(height: int = 256, width: int = 256, seed: int = 0) -> np.ndarray:
    """Speckled sea (gamma noise around grey 110) with a dark elongated slick ellipse (grey ~35); uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    cy, cx, angle = height * 0.5, width * 0.45, np.deg2rad(25.0)
    u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
    slick = (u / (0.35 * width)) ** 2 + (v / (0.09 * height)) ** 2 <= 1.0
    sea = 110.0 * rng.gamma(4.0, 1 / 4.0, size=(height, width))
    oil = 35.0 * rng.gamma(16.0, 1 / 16.0, size=(height, width))
    return np.clip(np.where(slick, oil, sea), 0, 255).astype(np.uint8)


def encode_image(gray: np.ndarray, fmt: str) -> bytes:
    """Encode a grey uint8 scene as one of the test formats: PNG, JPEG, TIFF16 (16-bit grey), RGBA (PNG)."""
    if fmt == "TIFF16":
        image = Image.fromarray(gray.astype(np.uint16) * 257)
        fmt = "TIFF"
    elif fmt == "RGBA":
        image = Image.fromarray(np.dstack([gray, gray, gray, np.full_like(gray, 255)]))
        fmt = "PNG"
    else:
        image = Image.fromarray(gray)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@contextlib.contextmanager
def api_process(stack: Stack, workdir: Path, **env: str) -> Iterator[tuple[str, int, int]]:
    """One more API process, started as `make run` starts it, on the stack's Redis with `env` on top:
    yields its URL, port and pid. No ML service unless `env` names one (health answers 503 fast)."""
    port = free_port()
    settings = {
        "RESULTS_DIR": str(workdir / "results"),
        "ML_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
        "LOG_LEVEL": "WARNING",
    }
    log = (workdir / f"api-{port}.log").open("wb")
    command = processes.api("127.0.0.1", port, access_log=False)
    proc = subprocess.Popen(
        command, cwd=ROOT, env=stack.env(**settings | env), stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(url + "/openapi.json").status_code == 200, 60, "api", proc)
        yield url, port, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def fill_disk(folder: Path, leave_mb: float) -> Path:
    """Write a ballast file in `folder` until only about `leave_mb` MB are free on its filesystem."""
    ballast = folder / "ballast.bin"
    free = shutil.disk_usage(folder).free - int(leave_mb * 1024 * 1024)
    with ballast.open("ab") as fh:
        fh.write(bytes(max(0, free)))
    return ballast
