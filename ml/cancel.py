"""Stop a segmentation whose client has gone: its queued model runs are dropped, not done for nobody.

A worker that times out sends the image again; without this the service would go on segmenting the
abandoned request, doubling its work exactly when it is overloaded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

Submit = Callable[[np.ndarray], "np.ndarray | Future[np.ndarray]"]


class Cancelled(Exception):
    """The segmentation was stopped because its client gave up."""


def cancellable(submit: Submit, cancelled: Callable[[], bool]) -> Submit:
    """`submit`, checking `cancelled()` first: then every run it queued and that has not started is
    cancelled (the runners skip it) and Cancelled is raised into the segmentation."""
    queued: deque[Future[np.ndarray]] = deque()

    def predict(batch: np.ndarray) -> np.ndarray | Future[np.ndarray]:
        while queued and queued[0].done():
            queued.popleft()
        if cancelled():
            for future in queued:
                future.cancel()
            raise Cancelled("the client gave up: its remaining model runs were dropped")
        outcome = submit(batch)
        if isinstance(outcome, Future):
            queued.append(outcome)
        return outcome

    return predict
