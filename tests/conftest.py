"""Session fixtures over tests/stack_harness.py: a real redis-server, and the whole stack on demand.

The stack is session-scoped and reusable: tests may kill and restart pieces of it (`stack.kill_worker()`,
`stack.start_worker()`, `stack.restart_ml()`); every process is terminated at session end, also on failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

# In-process APIs without OPS_TOKEN write their operator token here, not into the repository's var/.
os.environ.setdefault("OPS_TOKEN_FILE", os.path.join(tempfile.mkdtemp(prefix="ops-token-"), "ops-token"))

import numpy as np
import pytest
from stack_harness import Stack, encode_image, free_port, sar_scene


@pytest.fixture(scope="session")
def stack_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A Stack with only redis-server running (enough for unit tests of the Redis-backed modules)."""
    stack = Stack(tmp_path_factory.mktemp("stack"))
    try:
        stack.start_redis()
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="session")
def redis_url(stack_base: Stack) -> str:
    """Database 1 of the session's redis-server, out of the way of the stack's sweeper (db 0)."""
    return stack_base.redis_url.removesuffix("/0") + "/1"


@pytest.fixture
def stack(stack_base: Stack) -> Stack:
    """The whole stack, (re)started if a test left a piece of it stopped."""
    try:
        stack_base.start_all()
    except Exception:
        for name in ("ml", "worker", "beat", "api"):
            print(f"--- {name} log ---\n{stack_base.log_tail(name)}", file=sys.stderr)
        raise
    return stack_base


@pytest.fixture(scope="session", name="free_port")
def free_port_fixture() -> Callable[[], int]:
    return free_port


@pytest.fixture(scope="session")
def make_sar() -> Callable[..., np.ndarray]:
    return sar_scene


@pytest.fixture(scope="session")
def encode() -> Callable[[np.ndarray, str], bytes]:
    return encode_image


SMALL_DISK_MB = 24


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on its own 24 MB tmpfs, so a full disk is a real ENOSPC; skipped where mounting is not allowed
    (it needs root, as in CI)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK_MB}m,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
