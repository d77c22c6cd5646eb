"""The benches (bench/) run end to end and print their labelled figures: small sizes, the session's stack.

The figures themselves are not asserted (CI machines differ); what is checked is that each bench measures
what it claims: the pipeline job completes with every image, the upload goes through the real API and its
memory stays flat, the pollers get answers, and the CPU accounting sees a process tree's work.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from bench import pipeline, status_latency, upload_memory
from bench.harness import cpu_seconds

if TYPE_CHECKING:
    from stack_harness import Stack

pytestmark = pytest.mark.e2e


def figure(output: str, label: str) -> float:
    """The first number after `label` in the bench's output."""
    match = re.search(re.escape(label) + r"[^0-9]*([0-9.]+)", output)
    assert match, f"no {label!r} in:\n{output}"
    return float(match.group(1))


BUSY_GRANDCHILD = """
import subprocess, sys
busy = "import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.3: pass\\ntime.sleep(30)"
subprocess.run([sys.executable, "-c", busy])
"""


def test_cpu_seconds_counts_the_whole_process_tree() -> None:
    parent = subprocess.Popen([sys.executable, "-c", BUSY_GRANDCHILD], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while cpu_seconds(parent.pid) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert cpu_seconds(parent.pid) >= 0.3  # the grandchild's busy loop, not the idle parent
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def test_pipeline_bench_completes_a_job_and_prints_the_ratio_last(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline.main(["-n", "3", "--size", "64", "--api", stack.api_url, "--timeout", "120"])
    out = capsys.readouterr().out.strip()
    assert figure(out, "bare model:") > 0
    assert figure(out, "pipeline (upload start to archive ready):") > 0
    assert out.splitlines()[-1].startswith("ratio pipeline/bare model: ")
    assert 0 < figure(out, "ratio pipeline/bare model:") < 10

    pipeline.main(["-n", "2", "--size", "64", "--api", stack.api_url, "--timeout", "120", "--rounds", "3"])
    out = capsys.readouterr().out.strip()
    assert out.count("bare model:") == 3 and out.count("pipeline (upload start to archive ready):") == 3
    ratios = [float(r) for r in re.findall(r"[0-9.]+", out.splitlines()[-2].split(":", 1)[1])]
    assert len(ratios) == 3
    assert out.splitlines()[-1] == f"ratio pipeline/bare model (median of 3): {sorted(ratios)[1]:.3f}"


def test_status_bench_gets_answers_from_every_poller(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    status_latency.main(
        ["--api", stack.api_url, "--pollers", "5", "--interval", "0.1", "--seconds", "1", "--images", "2"]
    )
    out = capsys.readouterr().out
    assert "non-200: 0" in out
    assert figure(out, "requests:") >= 5
    assert figure(out, "p99") >= figure(out, "p50") > 0


def test_upload_bench_streams_through_the_api_with_flat_memory(capsys: pytest.CaptureFixture[str]) -> None:
    upload_memory.main(["--mb", "48"])
    out = capsys.readouterr().out
    assert "3 images" in out  # every entry scanned and queued: the upload went all the way through
    assert figure(out, "growth") < 64
    assert figure(out, "receive:") > 0
