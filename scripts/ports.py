"""Ports before `make run` starts anything, and whether what answers on one is really ours.

A taken port is said at once, with the setting that moves it ("port 8000 is taken; set API_PORT"), instead of
a service that exits, is restarted and exits again. Readiness asks each service something only it answers,
so a foreign server on the port (or one of ours from another checkout that the check raced) is never
reported as this stack being ready.
"""

from __future__ import annotations

import errno
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx

API_TITLE = "Oil-spill detection"  # backend.api.main's app title, in its /openapi.json


def taken(host: str, port: int) -> bool:
    """Whether binding host:port as the service will is refused because something already listens there."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError:
        return False  # a bad host is for the service itself to report
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and redis-server do
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def taken_ports(wanted: list[tuple[str, str, int]]) -> list[str]:
    """A line for each (setting, host, port) whose port is taken: "port 8000 is taken; set API_PORT"."""
    return [f"port {port} is taken; set {setting}" for setting, host, port in wanted if taken(host, port)]


def is_our_ml(body: Any) -> bool:
    return isinstance(body, dict) and body.get("status") == "ok" and "model_version" in body


def is_our_api(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and isinstance(body.get("info"), dict)
        and body["info"].get("title") == API_TITLE
    )


def wait_ours(
    url: str, ours: Callable[[Any], bool], proc: subprocess.Popen[bytes] | None, timeout: float
) -> str | None:
    """None once `url` answers 200 with a body that `ours` recognises while `proc` runs; else why not."""
    deadline = time.monotonic() + timeout
    seen = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return f"it exited with code {proc.returncode}"
        try:
            answer = httpx.get(url, timeout=1)
            body = answer.json() if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            body = None
        else:
            if ours(body):
                return None
            seen = f"something else answers {url} (HTTP {answer.status_code})"
        time.sleep(0.3)
    return f"{seen} after {timeout:.0f} s"
