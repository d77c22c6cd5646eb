"""What the area search's sea check costs: `python -m bench.sea_check [--windows 100] [--repeat 3]`.

The worker asks the ML service (POST /land/sea-fraction, backend.sources.sea) which windows touch the sea
before reading any: this prints the land mask's one-off load in the service (time, resident memory of this
process before and after: what each worker process would pay if it loaded the mask itself) and, once it is
loaded, the best of `--repeat` requests of `--windows` 3 km windows (along the Gulf coast, land and sea) at
several sample counts, through the service app (FastAPI TestClient: validation, JSON both ways) and as the
bare function (ml.geo.sea.sea_fractions).
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from functools import partial

from fastapi.testclient import TestClient
from shapely.geometry import box, mapping

from ml.geo.landmask import default_landmask
from ml.geo.sea import sea_fractions
from ml.service.config import Settings
from ml.service.main import create_app


def rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--windows", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    before = rss_mb()
    start = time.perf_counter()
    default_landmask()
    print(f"land mask load: {time.perf_counter() - start:.2f} s, peak RSS {before:.0f} -> {rss_mb():.0f} MB")
    windows = [
        box(51.0 + 0.004 * i, 25.0 + 0.003 * i, 51.03 + 0.004 * i, 25.03 + 0.003 * i)
        for i in range(args.windows)
    ]
    areas = [mapping(w) for w in windows]
    print(f"{args.windows} windows of ~3 km; best of {args.repeat}")
    print(f"{'samples':>8} {'HTTP (ms)':>10} {'function (ms)':>14} {'points':>8}")
    with TestClient(create_app(Settings())) as client:
        for samples in (256, 1024, 4096):
            body = {"areas": areas, "samples": samples}
            answer = client.post("/land/sea-fraction", json=body).json()
            http = best(partial(client.post, "/land/sea-fraction", json=body), args.repeat)
            bare = best(partial(sea_fractions, windows, samples), args.repeat)
            print(f"{samples:>8} {http * 1000:>10.1f} {bare * 1000:>14.1f} {sum(answer['points']):>8}")


if __name__ == "__main__":
    main()
