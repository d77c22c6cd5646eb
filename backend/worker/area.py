"""The first stages of an area job, as a plain function of (context, job id): searching, then fetching.

Searching asks the catalogue (backend.sources.search), then the ML service which of the scenes' windows
touch the sea (backend.sources.sea): windows all on land are not read, scenes all on land not fetched.

The scenes' windows are written into the job's upload.zip (stored), as if the analyst had uploaded them,
and recorded as the job's images; the chord that segments and archives them is the uploads' own
(backend.worker.launch.send_chord). A scene that cannot be read fails alone: its windows are recorded as
failed images with the reason, the others go on. Redelivered (a worker died), the stages start again.
"""

from __future__ import annotations

import logging
import re
import time
import zipfile
from dataclasses import dataclass

from backend.core.config import Settings
from backend.core.logging import job_event
from backend.jobs.areas import AreaRecords
from backend.jobs.models import Job, JobState
from backend.sources import netstats
from backend.sources.access import AccessError, asset_url, gdal_headers, redact
from backend.sources.config import SourceConfig
from backend.sources.manifest import AreaManifest, SceneReport, SceneWindow, write_manifest
from backend.sources.request import AreaJobRequest
from backend.sources.sea import SeaSplit, pick_sea_scenes
from backend.sources.search import Scene, SearchFailed, search_scenes
from backend.sources.window import SceneReadError, WindowData, gdal_options, read_windows
from backend.storage.layout import UserDir, output_names
from backend.upload.entries import ZipEntry
from backend.worker.context import WorkerContext
from backend.worker.outputs import failed_result

log = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_EARLY = [JobState.QUEUED, JobState.SEARCHING, JobState.FETCHING]


def window_name(item_id: str, bbox: int) -> str:
    """`<item id>/bbox<n>.tif`: the item id made safe as a folder name (a catalogue's ids are not ours)."""
    safe = _UNSAFE.sub("_", item_id).strip("._")[:120] or "scene"
    return f"{safe}/bbox{bbox + 1}.tif"


@dataclass(frozen=True)
class Outcome:
    """What the task does next: send the chord of `sizes` (window name -> bytes), start the expiry timer
    of a job these stages failed (`expires_at`), or nothing (the job was closed or is past these stages)."""

    sizes: dict[str, int] | None = None
    expires_at: float | None = None


def run(ctx: WorkerContext, job_id: str, settings: Settings) -> Outcome:
    """Search and fetch: the windows read, for the chord; the job failed with the reason where the search
    failed, found nothing or no window could be read."""
    store, areas = ctx.store, AreaRecords(ctx.store)
    job = store.get_job(job_id)
    request = areas.request(job_id)
    if job is None or request is None or job.state not in _EARLY:
        return Outcome()
    if not store.transition(job_id, JobState.SEARCHING, _EARLY):
        return Outcome()
    job_event("searching", job_id, source=request.data_source, bboxes=len(request.bboxes))
    source = settings.AREA_SOURCES.get(request.data_source)
    if source is None:
        return _fail(ctx, job, f"the source {request.data_source!r} is no longer configured")
    try:
        found = search_scenes(
            source,
            request,
            max_items=settings.STAC_MAX_ITEMS,
            timeout=settings.STAC_TIMEOUT_SECONDS,
            retries=settings.STAC_RETRIES,
            backoff=settings.STAC_RETRY_BACKOFF_SECONDS,
        )
    except SearchFailed as exc:
        return _fail(ctx, job, f"search failed: {exc}")
    start, end = (t.isoformat() for t in request.window())
    if not found:
        return _fail(
            ctx,
            job,
            f"no scene found: no Sentinel-1 IW scene with VV in {source.collection} of "
            f"{request.data_source} touches the bboxes between {start} and {end}",
        )
    split = _sea_scenes(ctx, job_id, request, found, settings)
    scenes = split.kept
    if not scenes:
        return _fail(
            ctx,
            job,
            f"no scene found: the {len(split.on_land)} scenes found cover only land inside the bboxes",
        )
    if not store.transition(job_id, JobState.FETCHING, [JobState.SEARCHING]):
        return Outcome()
    areas.update(job_id, scenes_found=len(scenes), scenes_fetched=0, scenes_failed=0, windows=0, bytes_read=0)
    job_event("fetching", job_id, scenes=len(scenes))
    folder = ctx.results.user(job.user_hash)
    folder.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    reports = _fetch(ctx, job, folder, source, request, scenes, settings)
    manifest = AreaManifest(
        job_id=job_id,
        request=request,
        collection=source.collection,
        datetime_window=(start, end),
        scenes=reports,
        sea_check=split.check,
        scenes_on_land=split.on_land,
    )
    write_manifest(folder.root, manifest)
    return _record_images(ctx, job, folder, reports)


def _sea_scenes(
    ctx: WorkerContext, job_id: str, request: AreaJobRequest, found: list[Scene], settings: Settings
) -> SeaSplit:
    """The scenes to read, `max_scenes` of those with a window at sea (backend.sources.sea); those on land
    counted and logged, the check's failure logged (every scene kept then)."""
    split = pick_sea_scenes(
        found, request, ctx.ml.sea_fractions, samples=settings.AREA_SEA_SAMPLES, limit=request.max_scenes
    )
    AreaRecords(ctx.store).update(job_id, scenes_on_land=len(split.on_land), sea_check=split.check)
    if split.problem is not None:
        job_event("sea_check_unavailable", job_id, error=split.problem)
    for scene in split.on_land:
        job_event("scene_on_land", job_id, scene=scene.item_id, bboxes=len(scene.bboxes_on_land))
    return split


def _fetch(
    ctx: WorkerContext,
    job: Job,
    folder: UserDir,
    source: SourceConfig,
    request: AreaJobRequest,
    scenes: list[Scene],
    settings: Settings,
) -> list[SceneReport]:
    """Read every scene's windows into upload.zip; a report per scene (windows read, or why not)."""
    areas = AreaRecords(ctx.store)
    options = gdal_options(
        retries=settings.SCENE_HTTP_RETRIES,
        retry_delay=settings.SCENE_HTTP_RETRY_DELAY_SECONDS,
        timeout=settings.SCENE_HTTP_TIMEOUT_SECONDS,
        extra=gdal_headers(source) if source.access == "bearer" else {},
    )
    reports: list[SceneReport] = []
    total_bytes: int | None = 0
    failed = windows = 0
    tmp = folder.root / ".upload.zip.tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for n, scene in enumerate(scenes, 1):
            report = _read_scene(scene, source, request, settings.AREA_SCENE_MAX_PIXELS, options, zf)
            reports.append(report)
            failed += report.status == "failed"
            windows += sum(w.status == "read" for w in report.windows)
            total_bytes = (
                None if total_bytes is None or report.bytes_read is None else total_bytes + report.bytes_read
            )
            areas.update(
                job.job_id, scenes_fetched=n, scenes_failed=failed, windows=windows, bytes_read=total_bytes
            )
            job_event(
                "scene_read" if report.status == "read" else "scene_failed",
                job.job_id,
                scene=scene.item_id,
                windows=len(report.windows),
                bytes_read=report.bytes_read,
                error=report.error,
            )
    tmp.replace(folder.upload)
    return reports


def _read_scene(
    scene: Scene,
    source: SourceConfig,
    request: AreaJobRequest,
    max_pixels: int,
    options: dict[str, object],
    zf: zipfile.ZipFile,
) -> SceneReport:
    """One scene's windows, written into `zf`; its report (failed as a whole with the reason)."""
    report = SceneReport.model_validate(scene.model_dump() | {"href": scene.href})
    names = [window_name(scene.item_id, k) for k in scene.bboxes]
    netstats.reset()
    try:
        found = read_windows(
            asset_url(source, scene.href),
            [request.bboxes[k] for k in scene.bboxes],
            max_pixels=max_pixels,
            options=options,
        )
    except Exception as exc:  # one scene that cannot be read fails alone, whatever the reason
        known = isinstance(exc, SceneReadError | AccessError)
        reason = redact(str(exc) if known else f"cannot read the scene: {type(exc).__name__}: {exc}", source)
        if not known:
            log.exception("scene %s: unexpected error", scene.item_id)
        report.status, report.error, report.bytes_read = "failed", reason, netstats.downloaded_bytes()
        report.windows = [
            SceneWindow(bbox=k, name=nm, status="failed", error=reason)
            for k, nm in zip(scene.bboxes, names, strict=True)
        ]
        return report
    report.bytes_read = netstats.downloaded_bytes()
    for k, name, window in zip(scene.bboxes, names, found, strict=True):
        if isinstance(window, WindowData):
            zf.writestr(name, window.tiff)
            report.windows.append(
                SceneWindow(
                    bbox=k,
                    name=name,
                    status="read",
                    width=window.width,
                    height=window.height,
                    crs=window.crs,
                    warped=window.warped,
                )
            )
        else:
            report.windows.append(SceneWindow(bbox=k, name=name, status="failed", error=window))
    return report


def _record_images(ctx: WorkerContext, job: Job, folder: UserDir, reports: list[SceneReport]) -> Outcome:
    """The windows become the job's images (the failed ones recorded as failed), then processing."""
    store, areas = ctx.store, AreaRecords(ctx.store)
    windows = [w for report in reports for w in report.windows]
    outputs = output_names(w.name for w in windows)
    with zipfile.ZipFile(folder.upload) as zf:
        infos = {info.filename: info for info in zf.infolist()}
    entries = {name: ZipEntry.from_info(info).to_record() for name, info in infos.items()}
    areas.add_images(job.job_id, job.user_hash, outputs, entries)
    failed = [
        failed_result(w.name, outputs[w.name], f"scene not read: {w.error}")
        for w in windows
        if w.status == "failed"
    ]
    if failed:
        store.images.record_results(job.job_id, failed, model_version=None, user_hash=job.user_hash)
    sizes = {name: infos[name].file_size for name in sorted(outputs) if name in infos}
    if not sizes:
        return _fail(ctx, job, f"none of the {len(reports)} scenes found could be read (see errors)")
    if not store.transition(job.job_id, JobState.PROCESSING, [JobState.FETCHING], started_at=time.time()):
        return Outcome()
    job_event("processing", job.job_id, images=len(sizes), failed=len(failed))
    return Outcome(sizes=sizes)


def fail(ctx: WorkerContext, job_id: str, reason: str) -> Outcome:
    """Close the job as failed with `reason` (the task's last resort when the stages raised)."""
    job = ctx.store.get_job(job_id)
    return Outcome() if job is None or not job.active else _fail(ctx, job, reason)


def _fail(ctx: WorkerContext, job: Job, reason: str) -> Outcome:
    expires_at = AreaRecords(ctx.store).fail(job.job_id, job.user_hash, reason)
    if expires_at is not None:
        job_event("failed", job.job_id, reason=reason)
    return Outcome(expires_at=expires_at)
