"""What a chord member does, as plain functions of (context, ids): segment a batch of a job's images.

Idempotent, because with acks_late a message can be delivered again after a worker dies: an image whose
result is recorded and whose part (backend.storage.parts) is on disk is not segmented again, and the
done/failed sets count each name once.
"""

from __future__ import annotations

import logging
import time
from pathlib import PurePosixPath

import redis

from backend.core.config import settings
from backend.core.logging import job_event
from backend.jobs.models import ImageResult, Job, JobState
from backend.storage import parts
from backend.storage.layout import UserDir
from backend.worker.context import WorkerContext
from backend.worker.inputs import Input, read_input, split_by_pixels
from backend.worker.ml_client import MLClient, MLServiceError, Segmentation
from backend.worker.outputs import checked_outputs, failed_result
from backend.worker.scenes import is_scene, segment_scene

log = logging.getLogger("backend.pipeline")  # the module's name before it moved, for log filters

# A member's outcomes are recorded after each ML request, so `done` moves at least this often: requests of at
# most this many pixels are about half a second of model work on 2 cores. Below it, smaller requests would
# cost throughput (more round trips and parts) for no progress a once-a-second poll could show.
PROGRESS_PIXELS = 4_000_000


def process_image(ctx: WorkerContext, job_id: str, name: str) -> dict[str, object]:
    """One image of a job (see process_images)."""
    return process_images(ctx, job_id, [name])[0]


def process_images(ctx: WorkerContext, job_id: str, names: list[str]) -> list[dict[str, object]]:
    """Segment a chord member's images and record the outcomes; never raises for a bad image or dead service.

    Returns one small dict per name (chord results travel in one message): name, status, error.
    On a first delivery the images go to the ML service in one batch request. A redelivered member (a
    worker died on it) goes one image at a time, each counted just before it is tried, so an image that
    kills the worker is given up after MAX_DELIVERIES without taking its batch-mates with it.
    """
    store = ctx.store
    job = store.get_job(job_id)
    if job is None or not job.active:
        return [_skipped(name, "job is no longer active") for name in names]
    if job.state == JobState.QUEUED and store.mark_started(job_id):
        job_event("started", job_id, images=job.total)
    outputs, entries = store.images.batch_inputs(job_id, names)
    batch = Batch(ctx, job, ctx.results.user(job.user_hash), outputs, entries)
    try:
        todo = batch.reuse_existing()
        started_before = store.images.deliveries(job_id, todo)
        if any(started_before.values()):
            for name in todo:
                batch.run([name])
        elif todo:
            batch.run(todo)
    except redis.RedisError:
        raise  # not the images' fault: the task requeues the member, and what is recorded is not redone
    except Exception as exc:  # the chord must complete whatever happens to the images
        log.exception("job %s: unexpected error in a batch of %d images", job_id, len(names))
        for name in outputs.keys() - batch.results.keys():
            batch.results[name] = failed_result(
                name, outputs[name], f"internal error: {type(exc).__name__}: {exc}"
            )
    _record(batch)
    return [
        _summary(batch.results[name]) if name in outputs else _skipped(name, "not an image of this job")
        for name in names
    ]


def _record(batch: Batch) -> None:
    """Record the outcomes, retrying a Redis that stops answering (the client retries refused connections,
    not timeouts) for REDIS_RETRY_SECONDS after the first failure, then raise: the task requeues it."""
    deadline: float | None = None
    while True:
        try:
            batch.record()
            return
        except redis.RedisError as exc:
            deadline = deadline or time.monotonic() + settings.REDIS_RETRY_SECONDS
            if time.monotonic() >= deadline:
                log.error("job %s: cannot record %d results: %s", batch.job.job_id, len(batch.results), exc)
                raise
            time.sleep(1.0)


class Batch:
    """The images of one chord member: what is done, what the ML service said, and recording it."""

    def __init__(
        self, ctx: WorkerContext, job: Job, folder: UserDir, outputs: dict[str, str], entries: dict[str, str]
    ) -> None:
        self.ctx, self.job, self.folder, self.outputs = ctx, job, folder, outputs
        self.images = ctx.store.images
        self.entries = entries  # name -> where its bytes lie in upload.zip (ZipEntry record)
        self.results: dict[str, ImageResult] = {}
        self.parts: dict[str, str] = {}  # output name -> part id, for the ok images
        self.version: str | None = None
        self.seconds: list[float] = []  # per segmented image not yet recorded: its share of its request
        self.recorded: set[str] = set()

    def reuse_existing(self) -> list[str]:
        """Keep what an earlier delivery finished (recorded ok, its part on disk); the names still to do."""
        recorded = self.images.recorded(self.job.job_id, list(self.outputs))
        ok = [self.outputs[name] for name, res in recorded.items() if res.status == "ok"]
        stored = self.images.parts(self.job.job_id, ok) if ok else {}
        todo = []
        for name, output in self.outputs.items():
            part = stored.get(output)
            if part is not None and name in recorded and _part_exists(self.folder, part):
                self.results[name], self.parts[output] = recorded[name], part
            else:
                todo.append(name)
        return todo

    def run(self, names: list[str]) -> None:
        """Count a delivery of `names`, then segment those under the limit in one ML request."""
        counts = self.images.count_deliveries(self.job.job_id, names)
        readable = []
        for name in names:
            if counts[name] > settings.MAX_DELIVERIES:
                self.results[name] = failed_result(
                    name,
                    self.outputs[name],
                    f"gave up after {settings.MAX_DELIVERIES} attempts: "
                    "the worker died while processing this image",
                )
            else:
                readable.append(name)
        for name in [name for name in readable if is_scene(name, self.entries.get(name))]:
            readable.remove(name)
            self._segment_scene(name)
            self._record_progress()
        budget = min(settings.REQUEST_MAX_PIXELS, PROGRESS_PIXELS)
        for request in split_by_pixels(self._read_inputs(readable), budget):
            self._segment(request)
            self._record_progress()

    def _record_progress(self) -> None:
        """Record the request just done, so `done` moves as the member runs, not only at its end."""
        try:
            self.record()
        except Exception as exc:  # retried with the rest when the member ends; the images must go on
            log.warning("job %s: progress not recorded yet (%s)", self.job.job_id, exc)

    def _read_inputs(self, names: list[str]) -> dict[str, Input]:
        """The images that can be sent, read from upload.zip (opened once); the others get a failed result."""
        if not names:
            return {}
        try:
            archive = self.folder.upload.open("rb")
        except OSError as exc:
            for name in names:
                self.results[name] = failed_result(name, self.outputs[name], f"cannot read the upload: {exc}")
            return {}
        sendable: dict[str, Input] = {}
        with archive:
            for name in names:
                try:
                    sendable[name] = read_input(archive, self.entries.get(name))
                except ValueError as exc:
                    self.results[name] = failed_result(name, self.outputs[name], str(exc))
        return sendable

    def _segment(self, inputs: dict[str, Input]) -> None:
        """One ML request (POST /segment/batch with geo=true, one image or more); its images' masks,
        overlays and slicks are stored together as one part."""
        started = time.perf_counter()
        names = list(inputs)
        # Base names: the service needs no folders. The slicks it names after them are renamed after the
        # image's path in the upload when stored (backend.worker.outputs).
        files = [(PurePosixPath(name).name, data) for name, (data, _) in inputs.items()]
        ml = self.ctx.ml
        try:
            outcomes: list[Segmentation | MLServiceError] = ml.segment_batch(files)
        except MLServiceError as exc:
            if exc.status_code is None or len(files) == 1:
                outcomes = [exc] * len(files)
            else:  # the request as a whole was refused (e.g. over the service's limits): one by one
                log.warning(
                    "job %s: batch of %d refused (%s); sending one by one", self.job.job_id, len(files), exc
                )
                outcomes = [_segment_alone(ml, filename, data) for filename, data in files]
        share = (time.perf_counter() - started) / len(files)
        checked: dict[str, tuple[ImageResult, parts.Outputs]] = {}
        for name, outcome in zip(names, outcomes, strict=True):
            output = self.outputs[name]
            if isinstance(outcome, MLServiceError):
                self.results[name] = failed_result(name, output, outcome.detail)
                continue
            try:
                checked[name] = checked_outputs(name, output, inputs[name][1], outcome)
            except ValueError as exc:
                self.results[name] = failed_result(name, output, str(exc))
                continue
            self.version = outcome.model_version or self.version
        if checked:
            self._store(parts.part_id(names), checked, share)

    def _segment_scene(self, name: str) -> None:
        """One scene, by path (backend.worker.scenes): its outputs are a part of their own."""
        started, output = time.perf_counter(), self.outputs[name]
        try:
            result, files, version = segment_scene(
                self.ctx.ml, self.ctx.results.root, self.folder, name, self.entries[name], output
            )
        except MLServiceError as exc:
            self.results[name] = failed_result(name, output, exc.detail)
            return
        except ValueError as exc:
            self.results[name] = failed_result(name, output, str(exc))
            return
        self.version = version or self.version
        self._store(parts.part_id([name]), {name: (result, files)}, time.perf_counter() - started)

    def _store(self, part: str, checked: dict[str, tuple[ImageResult, parts.Outputs]], share: float) -> None:
        try:
            parts.write_part(self.folder.part_path(part), (files for _, files in checked.values()))
        except OSError as exc:
            log.error("job %s: cannot write result part %s: %s", self.job.job_id, part, exc)
            for name, (result, _) in checked.items():
                self.results[name] = failed_result(name, result.output, f"cannot store the results: {exc}")
            return
        for name, (result, _) in checked.items():
            self.results[name] = result
            self.parts[result.output] = part
        self.seconds.extend([share] * len(checked))

    def record(self) -> None:
        """The outcomes not yet recorded in one Redis transaction, the metrics in one more (pipelined), one
        log line per image."""
        results = [
            self.results[name] for name in self.outputs if name in self.results and name not in self.recorded
        ]
        if not results:
            return
        self.images.record_results(
            self.job.job_id,
            results,
            model_version=self.version,
            user_hash=self.job.user_hash,
            parts={res.output: self.parts[res.output] for res in results if res.output in self.parts},
        )
        self.recorded.update(res.name for res in results)
        ok = sum(res.status == "ok" for res in results)
        try:
            self.ctx.metrics.record_images({"ok": ok, "failed": len(results) - ok}, self.seconds)
        except redis.RedisError as exc:  # the results are recorded; counters are not worth recording twice
            log.warning("job %s: metrics not recorded: %s", self.job.job_id, exc)
        self.seconds = []
        for res in results:
            if res.status == "ok":
                job_event(
                    "image_done",
                    self.job.job_id,
                    image=res.name,
                    oil_fraction=round(res.oil_fraction or 0.0, 6),
                )
            else:
                job_event("image_failed", self.job.job_id, image=res.name, error=res.error)


def _segment_alone(ml: MLClient, filename: str, data: bytes) -> Segmentation | MLServiceError:
    try:
        return ml.segment_batch([(filename, data)])[0]
    except MLServiceError as exc:
        return exc


def _summary(result: ImageResult) -> dict[str, object]:
    return {"name": result.name, "status": result.status, "error": result.error}


def _skipped(name: str, error: str) -> dict[str, object]:
    return {"name": name, "status": "skipped", "error": error}


def _part_exists(folder: UserDir, part: str) -> bool:
    try:
        return folder.part_path(part).is_file()
    except ValueError:  # not a part id: a tampered record
        return False
