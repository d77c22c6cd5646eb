"""The model's runners: a few threads, each with its own ONNX Runtime session, fed from one queue.

Every segmentation in the process hands its tile batches to the same runners, so the cores stay busy
whatever the requests do: two requests share them run by run, a request alone (one large scene, the last
request of a job, or one whose neighbour is between two requests) spreads its tiles over all of them, and
the number of intra-op threads never exceeds the budget. On 2 cores, two single-threaded runs at once beat
one run on two threads by 3-15 % per tile depending on the CPU (docs/benchmarks.md, round 5).
"""

from __future__ import annotations

import queue
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort


class ModelRunners:
    """`count` model runs at once, each on a session of `threads` intra-op threads; thread-safe.

    Use `submit` (a Future, so a caller keeps several runs queued) or `run`; `close` stops the threads.
    """

    def __init__(
        self, model_path: Path, count: int = 2, threads: int = 1, allow_spinning: bool = False
    ) -> None:
        if count < 1 or threads < 1:
            raise ValueError(f"runners and threads must be at least 1, got {count} and {threads}")
        self.count, self.threads = count, threads
        self.sessions = [session(model_path, threads, allow_spinning) for _ in range(count)]
        self.input_name = self.sessions[0].get_inputs()[0].name
        # As many sessions as pool threads, so a run never waits for one; a session per runner because
        # concurrent runs on one multi-threaded session would share (and fight over) its thread pool.
        self._idle: queue.SimpleQueue[ort.InferenceSession] = queue.SimpleQueue()
        for s in self.sessions:
            self._idle.put(s)
        self._pool = ThreadPoolExecutor(count, thread_name_prefix="model-runner")

    def submit(self, batch: np.ndarray) -> Future[np.ndarray]:
        """Queue one model call on (N, 1, T, T) float32 in [0, 1]; runs start in the order submitted."""
        return self._pool.submit(self._run, batch)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.submit(batch).result()

    def _run(self, batch: np.ndarray) -> np.ndarray:
        s = self._idle.get()
        try:
            return s.run(None, {self.input_name: batch})[0]
        finally:
            self._idle.put(s)

    def close(self) -> None:
        """Stop the threads once the queued runs are done (they hold no other resource)."""
        self._pool.shutdown(wait=True)


def session(model_path: Path, threads: int, allow_spinning: bool = False) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Spinning threads keep a core busy between runs and while a sibling waits for a core it shares.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
