"""Archiving on a full disk (a real ENOSPC on a 24 MB tmpfs): the job fails now with the reason, instead of
sitting in `archiving` until its deadline, and its disk reservation is released."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from stack_harness import fill_disk
from test_segment import record_done, start

from backend.jobs.models import JobState
from backend.storage.layout import ResultsDir
from backend.storage.reserve import RESERVED_KEY
from backend.worker import finalize
from backend.worker.context import WorkerContext


def test_enospc_while_archiving_fails_the_job_with_the_reason(ctx: WorkerContext, small_disk: Path) -> None:
    ctx = WorkerContext(store=ctx.store, results=ResultsDir(small_disk), ml=ctx.ml, metrics=ctx.metrics)
    job_id, folder = start(ctx, {"a.png": b"", "b.png": b""})
    for name in ("a.png", "b.png"):
        record_done(ctx, job_id, folder, name, np.full((4, 4), 255, np.uint8))
    ctx.store.client.hset(RESERVED_KEY, folder.root.name, 1 << 20)
    fill_disk(small_disk, leave_mb=0)
    assert finalize.finalize(ctx, job_id) is not None
    job = ctx.store.get_job(job_id)
    assert job is not None and (job.state, job.done, job.failed) == (JobState.FAILED, 0, 2)
    errors = ctx.store.images.errors(job_id)
    assert errors == dict.fromkeys(("a.png", "b.png"), "cannot write the archive: No space left on device")
    assert not folder.archive.exists() and not list(folder.root.glob(".archive*"))
    assert not ctx.store.client.hexists(RESERVED_KEY, folder.root.name)
    assert job.expires_at is not None  # its files are deleted on time, freeing the disk
