"""Starting a job: the API's one door to the worker. Record the job, send its chord, or forget it again."""

from __future__ import annotations

from celery import chord

from backend.core.config import settings
from backend.core.logging import job_event
from backend.jobs.store import JobStore
from backend.storage.layout import new_token, output_names
from backend.upload.scan import ZipScan
from backend.worker.lanes import pick_lane
from backend.worker.tasks import finalize_job, segment_images


def start_job(store: JobStore, user_hash: str, scan: ZipScan, owner: str | None = None) -> str:
    """Record the job of an upload's images (and its owner, with auth on), then send its chord; a job whose
    chord cannot be sent is forgotten again. Returns the job id."""
    job_id = new_token()
    outputs = output_names(image.name for image in scan.images)
    store.create_job(
        job_id,
        user_hash,
        outputs,
        {image.name: image.entry.to_record() for image in scan.images},
        owner=owner,
    )
    # Never the user hash; the owner is a key's name or a token's subject, never the credential.
    owned = {"owner": owner} if owner else {}
    job_event("uploaded", job_id, images=len(outputs), skipped=len(scan.skipped), **owned)
    try:
        sizes = {image.name: image.entry.file_size for image in scan.images}
        queue = pick_lane(store.client, owner or job_id, settings.FAIR_LANES)
        send_chord(job_id, {name: sizes[name] for name in sorted(outputs)}, queue)
    except BaseException:
        store.delete_job(job_id, user_hash)
        raise
    return job_id


def send_chord(job_id: str, sizes: dict[str, int], queue: str | None = None) -> None:
    """One segment_images per group of images (on `queue`, the owner's lane), finalize_job once all have
    returned (on the default queue)."""
    groups = plan_batches(
        sizes, settings.IMAGES_PER_TASK, settings.TASK_MAX_MB * 1024 * 1024, settings.WORKER_CONCURRENCY
    )
    options = {"queue": queue} if queue else {}
    chord(segment_images.s(job_id, names).set(**options) for names in groups)(finalize_job.s(job_id))


def plan_batches(sizes: dict[str, int], per_task: int, max_bytes: int, workers: int) -> list[list[str]]:
    """Group a job's images (name -> file size, in order) into chord members.

    A task and an HTTP request per 256x256 tile cost about as much CPU as the model itself, so tiles travel
    in groups of up to `per_task`. The groups are as even as can be and their number is a multiple of the
    `workers` pool processes: the pool works through them in rounds, and a last round of one short group
    would leave the other processes, and half the ML service's cores, idle at the end of the job (~4 % of a
    200-tile job, measured: docs/benchmarks.md). A group is also closed before it passes `max_bytes`, so
    large scenes go alone and spread over the workers.
    """
    count = len(sizes)
    if not count:
        return []
    workers = max(1, workers)
    members = -(-count // max(1, per_task))
    members = min(count, -(-members // workers) * workers)
    share, extra = divmod(count, members)
    targets = [share + 1] * extra + [share] * (members - extra)
    groups: list[list[str]] = []
    group: list[str] = []
    group_bytes = 0
    for name, size in sizes.items():
        if group and (len(group) >= targets[min(len(groups), members - 1)] or group_bytes + size > max_bytes):
            groups.append(group)
            group, group_bytes = [], 0
        group.append(name)
        group_bytes += size
    groups.append(group)
    return groups
