"""Batch processes lower their CPU priority on every thread, and later threads inherit it (Linux)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = """
import os, threading
from common.priority import lower_process_priority

def nice_of_thread() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

started, release, seen = threading.Event(), threading.Event(), {}
def early() -> None:
    started.set(); release.wait(); seen["early"] = nice_of_thread()
thread = threading.Thread(target=early); thread.start(); started.wait()
base = nice_of_thread()
lower_process_priority(3)
release.set(); thread.join()
late = threading.Thread(target=lambda: seen.setdefault("late", nice_of_thread())); late.start(); late.join()
lower_process_priority(0)
print(base, nice_of_thread(), seen["early"], seen["late"])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_every_thread_is_niced_and_new_threads_inherit() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout
    base, main, early, late = map(int, out.split())
    assert (main, early, late) == (min(19, base + 3),) * 3
