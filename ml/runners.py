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
from typing import Any

import numpy as np
import onnxruntime as ort

_Work = tuple[int, int, np.ndarray | None, "Future[np.ndarray] | None"]  # ticket, order, batch, its future
_LAST = sys.maxsize  # the ticket of the stop signals: after every queued run
# Index expressions on (N, 1, T, T): as is, mirrored left-right, upside down, both. Each is its own inverse.
MIRRORS: tuple[tuple[Any, ...], ...] = (
    (Ellipsis,),
    (Ellipsis, slice(None, None, -1)),
    (Ellipsis, slice(None, None, -1), slice(None)),
    (Ellipsis, slice(None, None, -1), slice(None, None, -1)),
)


class ModelRunners:
    """`count` model runs at once, each on a session of `threads` intra-op threads; thread-safe.

    Use `submit` (a Future, so a caller keeps several runs queued) or `run`; `close` stops the threads.
    """

    def __init__(
        self,
        model_path: Path,
        count: int = 2,
        threads: int = 1,
        allow_spinning: bool = False,
        views: int = 1,
    ) -> None:
        if count < 1 or threads < 1:
            raise ValueError(f"runners and threads must be at least 1, got {count} and {threads}")
        if views not in (1, 2, 4):
            raise ValueError(f"views must be 1, 2 or 4, got {views}")
        self.count, self.threads, self.views = count, threads, views
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
                future.set_result(self._infer(s, batch))
            except BaseException as exc:  # handed to the caller, like concurrent.futures does
                future.set_exception(exc)

    def _infer(self, s: ort.InferenceSession, batch: np.ndarray) -> np.ndarray:
        """One model run; with `views` 2 or 4, the mean over the tiles' mirror images (one run of 2N or 4N).

        A slick has no handedness, the model's errors partly do: averaging mirrored views is the cheapest
        test-time augmentation, at `views` times the model time (figures: ml/models/MODEL_CARD.md).
        """
        if self.views == 1:
            return np.asarray(s.run(None, {self.input_name: batch})[0])
        flips = MIRRORS[: self.views]
        stacked = np.ascontiguousarray(np.concatenate([batch[flip] for flip in flips]))
        out = np.asarray(s.run(None, {self.input_name: stacked})[0])
        n = len(batch)
        total = sum(out[i * n : (i + 1) * n][flip] for i, flip in enumerate(flips))
        return np.asarray(total * np.float32(1 / self.views), dtype=out.dtype)

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
