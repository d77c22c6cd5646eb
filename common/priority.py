"""Run batch work (the model, the Celery worker) at a lower CPU priority than the API on a shared machine.

The cores are fully used while a job runs; at equal priority the API's short requests (status polls, uploads)
queue behind model runs and their tail latency reaches hundreds of ms. With the batch processes niced, the
kernel runs the API first whenever it is runnable; the batch work loses only the CPU the API really uses.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def lower_process_priority(increment: int) -> None:
    """Add `increment` to the nice value of every thread of this process (Linux nice is per thread).

    Threads and children created afterwards inherit it from their creator. Best effort: no error where the
    platform or permissions do not allow it.
    """
    if increment <= 0:
        return
    tasks = Path("/proc/self/task")
    tids = [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]
    for tid in tids:
        with contextlib.suppress(OSError):
            current = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, current + increment))
