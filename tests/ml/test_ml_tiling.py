"""Tiling, padding and blending as pure NumPy functions, driven by stand-in predictors (no model)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.inference import (
    DEFAULT_MODEL_PATH,
    Segmenter,
    blend_window,
    pad_to_tile,
    sliding_window,
    sliding_window_many,
    tile_positions,
    tile_starts,
    to_mask,
)
from ml.runners import ModelRunners


def identity(batch: np.ndarray) -> np.ndarray:
    return batch


@given(length=st.integers(1, 5000), tile=st.sampled_from([32, 64, 256]), data=st.data())
@settings(max_examples=200, deadline=None)
def test_tile_starts_cover_everything_with_overlap(length: int, tile: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, tile - 1))
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0
    assert starts == sorted(set(starts))
    if length <= tile:
        assert starts == [0]
        return
    assert starts[-1] == length - tile
    gaps = np.diff(starts)
    assert gaps.max() <= tile - overlap  # neighbours overlap by at least `overlap`
    assert gaps.min() > 0


@pytest.mark.parametrize("overlap", [-1, 256, 300])
def test_tile_starts_rejects_bad_overlap(overlap: int) -> None:
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(1000, 256, overlap)


def test_blend_window_is_a_positive_symmetric_tent() -> None:
    window = blend_window(256, 32)
    assert window.dtype == np.float32
    assert window.min() > 0
    assert window.max() == 1.0
    np.testing.assert_array_equal(window, window[::-1])
    assert np.all(np.diff(window[:32]) > 0)
    assert np.all(window[32:-32] == 1.0)
    np.testing.assert_array_equal(blend_window(64, 0), np.ones(64, dtype=np.float32))


def test_pad_to_tile_reflects_and_skips_large_images() -> None:
    small = np.arange(12, dtype=np.uint8).reshape(3, 4)
    padded = pad_to_tile(small, 8)
    assert padded.shape == (8, 8)
    np.testing.assert_array_equal(padded[:3, :4], small)
    np.testing.assert_array_equal(padded[3, :4], small[1])  # reflect, not edge
    assert pad_to_tile(np.zeros((1, 1), np.uint8), 256).shape == (256, 256)
    large = np.zeros((300, 256), np.uint8)
    assert pad_to_tile(large, 256) is large


@pytest.mark.parametrize("shape", [(1, 1), (7, 300), (257, 513), (1250, 650), (256, 256)])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_identity_model_reproduces_the_image(shape: tuple[int, int], batch_size: int) -> None:
    """Weights are normalised exactly: blending a model that echoes its input gives the input back."""
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, size=shape, dtype=np.uint8)
    seen: list[tuple[int, ...]] = []

    def echo(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.shape)
        return batch

    prob = sliding_window(image, echo, tile=256, overlap=32, batch_size=batch_size)
    assert prob.shape == shape
    assert prob.dtype == np.float32
    np.testing.assert_allclose(prob, image / 255.0, atol=1e-5)
    assert all(s[0] <= batch_size and s[1:] == (1, 256, 256) for s in seen)
    padded = (max(shape[0], 256), max(shape[1], 256))
    assert sum(s[0] for s in seen) == len(list(tile_positions(*padded, 256, 32)))


def test_many_images_share_batches_and_match_one_by_one() -> None:
    """Batches are filled across images (fewer model runs), and each map equals the single-image one."""
    rng = np.random.default_rng(5)
    shapes = [(256, 256), (40, 90), (300, 520), (9, 9)]
    images = [rng.integers(0, 256, size=s, dtype=np.uint8) for s in shapes]
    calls: list[int] = []

    def scaled(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return batch * np.float32(0.5) + np.float32(0.1)

    maps = list(sliding_window_many(images, scaled, tile=256, overlap=32, batch_size=4))
    assert [m.shape for m in maps] == [im.shape for im in images]
    tiles = 1 + 1 + len(list(tile_positions(300, 520, 256, 32))) + 1
    assert calls == [4] * (tiles // 4) + ([tiles % 4] if tiles % 4 else [])
    for image, prob in zip(images, maps, strict=True):
        np.testing.assert_allclose(prob, sliding_window(image, scaled, batch_size=1), atol=1e-6)


def test_many_images_are_read_lazily_and_yielded_early() -> None:
    """An image is taken from the iterable only when its tiles are due: a long batch stays bounded."""
    taken = 0

    def images() -> Iterator[np.ndarray]:
        nonlocal taken
        for _ in range(10):
            taken += 1
            yield np.zeros((256, 256), np.uint8)

    maps = sliding_window_many(images(), identity, tile=256, overlap=32, batch_size=2)
    next(maps)
    assert taken == 2
    assert len(list(maps)) == 9


def test_blending_leaves_no_seams() -> None:
    """A model whose answer jumps from tile to tile still yields a smooth map: no step at tile borders."""
    image = np.zeros((700, 900), np.uint8)
    rng = np.random.default_rng(3)

    def blocky(batch: np.ndarray) -> np.ndarray:
        levels = rng.uniform(0, 1, size=(len(batch), 1, 1, 1)).astype(np.float32)
        return np.broadcast_to(levels, batch.shape).copy()

    prob = sliding_window(image, blocky, tile=256, overlap=32, batch_size=4)
    steps = max(np.abs(np.diff(prob, axis=0)).max(), np.abs(np.diff(prob, axis=1)).max())
    assert steps < 0.1  # unblended tiles would step by up to ~1.0


def test_sliding_window_rejects_wrong_model_output() -> None:
    with pytest.raises(ValueError, match="model returned shape"):
        sliding_window(np.zeros((300, 300), np.uint8), lambda b: b[:, :, :128], tile=256, overlap=32)
    with pytest.raises(ValueError, match="2-D"):
        sliding_window(np.zeros((3, 3, 3), np.uint8), identity)


def test_to_mask_thresholds_at_one_half() -> None:
    prob = np.array([[0.0, 0.4999], [0.5, 1.0]], np.float32)
    np.testing.assert_array_equal(to_mask(prob), [[0, 0], [255, 255]])
    assert to_mask(prob).dtype == np.uint8


class LazyRun(Future[np.ndarray]):
    """A model run that happens when its result is asked for, counting how many were queued meanwhile."""

    queued = 0
    most_queued = 0

    def __init__(self, batch: np.ndarray) -> None:
        super().__init__()
        self.batch = batch
        LazyRun.queued += 1
        LazyRun.most_queued = max(LazyRun.most_queued, LazyRun.queued)

    def result(self, timeout: float | None = None) -> np.ndarray:
        if not self.done():
            LazyRun.queued -= 1
            self.set_result(self.batch * np.float32(0.5))
        return super().result(timeout)


@pytest.mark.parametrize("ahead", [1, 3])
def test_queued_runs_give_the_same_maps_and_stay_within_ahead(ahead: int) -> None:
    """With a Future-returning predict, up to `ahead` runs are queued; the maps are a plain predict's."""
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, size=s, dtype=np.uint8) for s in [(256, 256), (300, 520), (9, 9)] * 3]
    LazyRun.queued = LazyRun.most_queued = 0
    maps = list(sliding_window_many(images, LazyRun, tile=256, overlap=32, batch_size=2, ahead=ahead))
    assert LazyRun.most_queued == ahead
    assert LazyRun.queued == 0
    expected = sliding_window_many(images, lambda b: b * np.float32(0.5), tile=256, overlap=32, batch_size=2)
    for got, want in zip(maps, expected, strict=True):
        np.testing.assert_array_equal(got, want)


def overlap_counter(segmenter: Segmenter, seconds: float) -> list[int]:
    """Make every model run of `segmenter` take at least `seconds`; returns [runs now, most at once]."""
    counts = [0, 0]
    lock = threading.Lock()
    for session in segmenter.runners.sessions:
        real_run = session.run

        def run(*args: object, _real: Callable[..., object] = real_run) -> object:
            with lock:
                counts[0] += 1
                counts[1] = max(counts)
            time.sleep(seconds)
            try:
                return _real(*args)
            finally:
                with lock:
                    counts[0] -= 1

        session.run = run  # type: ignore[method-assign]
    return counts


def test_a_lone_segmentation_spreads_its_tiles_over_every_runner() -> None:
    segmenter = Segmenter(threads=2, runners=2)
    counts = overlap_counter(segmenter, 0.02)
    image = np.random.default_rng(1).integers(0, 256, size=(600, 600), dtype=np.uint8)
    mask = segmenter.segment(image)
    assert counts[1] == 2  # both runners busy with the one image
    alone = Segmenter(threads=1)
    np.testing.assert_array_equal(mask, alone.segment(image))  # same mask as one runner, one run at a time
    segmenter.close()
    alone.close()


def test_concurrent_segmentations_share_the_runners_and_get_their_own_masks() -> None:
    segmenter = Segmenter(threads=2, runners=2)
    rng = np.random.default_rng(2)
    groups = [[rng.integers(0, 256, size=(256, 256), dtype=np.uint8) for _ in range(5)] for _ in range(3)]
    expected = [[segmenter.segment(image) for image in group] for group in groups]
    counts = overlap_counter(segmenter, 0.005)
    with ThreadPoolExecutor(3) as pool:
        masks = list(pool.map(lambda group: list(segmenter.segment_many(group)), groups))
    assert counts[1] == 2  # never more runs at once than runners
    for got_group, want_group in zip(masks, expected, strict=True):
        for got, want in zip(got_group, want_group, strict=True):
            np.testing.assert_array_equal(got, want)
    segmenter.close()
    with pytest.raises(RuntimeError):
        segmenter.segment(groups[0][0])  # closed: no runner left


def test_runners_split_the_thread_budget() -> None:
    segmenter = Segmenter(threads=4, runners=2)
    assert (segmenter.runners.count, segmenter.runners.threads) == (2, 2)
    assert [s.get_session_options().intra_op_num_threads for s in segmenter.runners.sessions] == [2, 2]
    segmenter.close()
    with pytest.raises(ValueError, match="runners"):
        Segmenter(threads=2, runners=3)
    with pytest.raises(ValueError, match="at least 1"):
        ModelRunners(DEFAULT_MODEL_PATH, count=0)


def test_runners_serve_the_oldest_ticket_first() -> None:
    """Queued runs go by ticket, then in submission order: an earlier request is finished first."""
    runners = ModelRunners(DEFAULT_MODEL_PATH, count=1)
    gate, served = threading.Event(), []
    real_run = runners.sessions[0].run

    def run(outputs: object, feed: dict[str, np.ndarray]) -> object:
        gate.wait(10)
        served.append(float(feed[runners.input_name][0, 0, 0, 0]))
        return real_run(outputs, feed)  # type: ignore[arg-type]

    runners.sessions[0].run = run  # type: ignore[method-assign]
    first, older, newer = runners.ticket(), runners.ticket(), runners.ticket()

    def tile(value: float) -> np.ndarray:
        return np.full((1, 1, 256, 256), value, np.float32)

    futures = [runners.submit(tile(0.0), first)]  # occupies the runner until the gate opens
    time.sleep(0.05)
    futures += [runners.submit(tile(0.3), newer), runners.submit(tile(0.1), older)]
    futures += [runners.submit(tile(0.2), older), runners.submit(tile(0.4), newer)]
    gate.set()
    for future in futures:
        assert future.result(10).shape == (1, 1, 256, 256)
    assert served == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    runners.close()
    runners.close()  # twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        runners.submit(tile(0.0))
