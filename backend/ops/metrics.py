"""Service metrics kept in Redis, rendered for Prometheus by the API's GET /metrics.

Counters are incremented where things happen (API, worker processes, beat) with HINCRBY on one hash, so every
process and every compose replica adds to the same numbers and the API can render them without
prometheus-client's multiprocess mode. Recording never raises: a metric is not worth failing a job for.

  oilspill:metrics   hash   "<counter>:<label value>" -> count, "segmentation_seconds:<bucket>" -> count,
                            "segmentation_seconds:sum" -> float
"""

from __future__ import annotations

import bisect
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from backend.jobs.keys import ACTIVE_INDEX, PREFIX

log = logging.getLogger("backend.metrics")  # the module's name before it moved, for log filters

METRICS_KEY = f"{PREFIX}metrics"
LATENCY = "segmentation_seconds"
# Upper bounds (s) of the segmentation latency buckets: a 256 px tile takes ~0.1 s, a 4000 px scene ~10 s.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


@dataclass(frozen=True)
class CounterSpec:
    name: str
    help: str
    label: str | None = None
    values: tuple[str, ...] = ()


COUNTERS = {
    "uploads": CounterSpec(
        "oilspill_uploads", "Uploads by outcome.", "outcome", ("accepted", "rejected", "error")
    ),
    "jobs": CounterSpec("oilspill_jobs_finished", "Jobs by final state.", "state", ("completed", "failed")),
    "images": CounterSpec(
        "oilspill_images_segmented", "Images processed by outcome.", "status", ("ok", "failed")
    ),
    "archive_bytes": CounterSpec("oilspill_archive_bytes", "Bytes of result archives written."),
    "deletions": CounterSpec(
        "oilspill_deletions", "User folders deleted, by reason.", "reason", ("expired", "orphan")
    ),
}


def _field(counter: str, value: str | None) -> str:
    spec = COUNTERS[counter]
    if (value is None) != (spec.label is None) or (value is not None and value not in spec.values):
        raise ValueError(f"{counter}: unexpected label value {value!r}")
    return f"{counter}:{value or ''}"


def _safely(what: str, pipe: redis.client.Pipeline) -> None:
    try:
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("metric %s not recorded: %s", what, exc)


class Metrics:
    """The counters in one Redis; every method records in one round trip and never raises."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def incr(self, counter: str, value: str | None = None, amount: int = 1) -> None:
        """Add `amount` to a counter (value = its label value, checked against COUNTERS)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(METRICS_KEY, _field(counter, value), amount)
        _safely(counter, pipe)

    def count_upload(self, outcome: str) -> None:
        self.incr("uploads", outcome)

    def count_job(self, state: str) -> None:
        self.incr("jobs", state)

    def count_image(self, status: str) -> None:
        self.incr("images", status)

    def add_archive_bytes(self, size: int) -> None:
        self.incr("archive_bytes", None, size)

    def count_deletion(self, reason: str) -> None:
        self.incr("deletions", reason)

    def observe_segmentation(self, seconds: float) -> None:
        """One sample of the latency histogram: its bucket (non-cumulative here) and the running sum."""
        self.record_images({}, [seconds])

    def record_images(self, statuses: dict[str, int], seconds: list[float]) -> None:
        """A chord member's images in one round trip: counts by status, a latency sample per segmented one."""
        pipe = self.client.pipeline(transaction=False)
        for status, count in statuses.items():
            if count:
                pipe.hincrby(METRICS_KEY, _field("images", status), count)
        buckets = Counter(bisect.bisect_left(LATENCY_BUCKETS, sample) for sample in seconds)
        for bucket, count in buckets.items():
            pipe.hincrby(METRICS_KEY, f"{LATENCY}:{bucket}", count)
        if seconds:
            pipe.hincrbyfloat(METRICS_KEY, f"{LATENCY}:sum", sum(seconds))
        _safely("images", pipe)

    def render(self, waiting: dict[str, int], accept: str = "") -> tuple[bytes, str]:
        """Every metric, encoded as the scraper asked (Accept), and its content type; raises Redis errors."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(RedisCollector(self.client, waiting))
        encode, content_type = choose_encoder(accept)
        return encode(registry), content_type


def _cumulative(raw: dict[str, str]) -> tuple[list[tuple[str, float]], float]:
    bounds = [*(str(b) for b in LATENCY_BUCKETS), "+Inf"]
    total, buckets = 0, []
    for i, bound in enumerate(bounds):
        total += int(raw.get(f"{LATENCY}:{i}", 0))
        buckets.append((bound, float(total)))
    return buckets, float(raw.get(f"{LATENCY}:sum", 0.0))


class RedisCollector:
    """Reads the counters from Redis at scrape time, plus live gauges (active jobs, waiting messages)."""

    def __init__(self, client: redis.Redis, waiting: dict[str, int]) -> None:
        self.client = client
        self.waiting = waiting  # queue name -> messages waiting (monitor.queue_depths)

    def collect(self) -> Iterator[Metric]:
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(METRICS_KEY)
        pipe.zcard(ACTIVE_INDEX)
        raw, active = pipe.execute()
        for counter, spec in COUNTERS.items():
            family = CounterMetricFamily(spec.name, spec.help, labels=[spec.label] if spec.label else [])
            for value in spec.values or ("",):
                family.add_metric([value] if spec.label else [], float(raw.get(f"{counter}:{value}", 0)))
            yield family
        buckets, total = _cumulative(raw)
        yield HistogramMetricFamily(
            f"oilspill_{LATENCY}",
            "Time to segment one image (ML call, PNGs, writes; a batch's time is shared by its images).",
            buckets,
            total,
        )
        yield GaugeMetricFamily("oilspill_jobs_active", "Jobs queued, processing or archiving.", active)
        waiting = GaugeMetricFamily(
            "oilspill_queue_waiting", "Messages waiting in a queue.", labels=["queue"]
        )
        for name, count in self.waiting.items():
            waiting.add_metric([name], float(count))
        yield waiting
