"""The model's runners: a few threads, each with its own ONNX Runtime session, fed from one queue.

Every segmentation in the process hands its tile batches to the same runners, so the cores stay busy
whatever the requests do: a request alone (one large scene, the last request of a job) spreads its tiles
over all of them, and the number of intra-op threads never exceeds the budget. On 2 cores, two
single-threaded runs at once beat one run on two threads by 3-15 % per tile depending on the CPU
(docs/benchmarks.md, round 5).

The queue serves the oldest request first (each run carries its request's ticket). Served run by run in
turn, two workers' requests would end together, and both workers would then spend the ~10 ms between two
requests (answer, bookkeeping, next task, next upload) at the same moment, with the cores idle; served one
after the other, one request is always ending while the other still has runs queued. A request behind a
large scene waits for it, as it would at the ML_MAX_CONCURRENT semaphore; ML_TIMEOUT_SECONDS (the worker's)
is sized for the largest scene alone.
"""

from __future__ import annotations

import itertools
import queue
import sys
import threading
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import onnxruntime as ort

_Work = tuple[int, int, np.ndarray | None, "Future[np.ndarray] | None"]  # ticket, order, batch, its future
_LAST = sys.maxsize  # the ticket of the stop signals: after every queued run


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
        # A session per runner: concurrent runs on one multi-threaded session would share its thread pool.
        self.sessions = [session(model_path, threads, allow_spinning) for _ in range(count)]
        self.input_name = self.sessions[0].get_inputs()[0].name
        self._queue: queue.PriorityQueue[_Work] = queue.PriorityQueue()
        self._order = itertools.count()  # FIFO among the runs of one ticket
        self._tickets = itertools.count(1)
        self._closed = False
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._serve, args=(s,), name=f"model-runner-{i}", daemon=True)
            for i, s in enumerate(self.sessions)
        ]
        for thread in self._threads:
            thread.start()

    def ticket(self) -> int:
        """A new request's place in line: its runs go after those of every earlier ticket."""
        return next(self._tickets)

    def submit(self, batch: np.ndarray, ticket: int = 0) -> Future[np.ndarray]:
        """Queue one model call on (N, 1, T, T) float32 in [0, 1]; the lowest ticket runs first."""
        future: Future[np.ndarray] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the model runners are closed")
            self._queue.put((ticket, next(self._order), batch, future))
        return future

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.submit(batch).result()

    def _serve(self, s: ort.InferenceSession) -> None:
        while True:
            _, _, batch, future = self._queue.get()
            if future is None or batch is None:  # stop signal
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(s.run(None, {self.input_name: batch})[0])
            except BaseException as exc:  # handed to the caller, like concurrent.futures does
                future.set_exception(exc)

    def close(self) -> None:
        """Stop the threads once the queued runs are done (they hold no other resource)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._queue.put((_LAST, next(self._order), None, None))
        for thread in self._threads:
            thread.join()


def session(model_path: Path, threads: int, allow_spinning: bool = False) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Spinning threads keep a core busy between runs and while a sibling waits for a core it shares.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
