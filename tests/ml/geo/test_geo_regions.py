"""ml.geo.regions: the cheap facts vectorising relies on, and that its shortcuts change no slick."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

import ml.geo.vectorise as vectorise_module
from ml.geo.regions import isolated, region_bound, worth_sieving
from ml.geo.vectorise import Slick, vectorise


def components(oil: np.ndarray) -> int:
    """4-connected regions by flood fill, the slow way."""
    seen = np.zeros_like(oil)
    count = 0
    for r, c in zip(*np.nonzero(oil), strict=True):
        if seen[r, c]:
            continue
        count += 1
        queue = deque([(r, c)])
        seen[r, c] = True
        while queue:
            y, x = queue.popleft()
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < oil.shape[0] and 0 <= nx < oil.shape[1] and oil[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
    return count


def top_runs(oil: np.ndarray) -> int:
    """Runs of a row with no oil pixel directly above any of their pixels, row by row."""
    count = 0
    for r in range(oil.shape[0]):
        c = 0
        while c < oil.shape[1]:
            if not oil[r, c]:
                c += 1
                continue
            start = c
            while c < oil.shape[1] and oil[r, c]:
                c += 1
            if r == 0 or not oil[r - 1, start:c].any():
                count += 1
    return count


def test_region_bound_counts_top_runs_and_never_undercounts() -> None:
    rng = np.random.default_rng(4)
    for _ in range(200):
        h, w = rng.integers(1, 30, 2)
        oil = rng.random((h, w)) < rng.random()
        assert region_bound(oil) == top_runs(oil)
        assert region_bound(oil, band_pixels=int(rng.integers(1, 100))) == top_runs(oil)  # a scene's bands
        assert region_bound(oil) >= components(oil)
    blob = np.zeros((50, 60), bool)
    blob[10:40, 5:55] = True
    blob[30:40, 20:30] = False  # a notch from below: still one top run
    assert region_bound(blob) == components(blob) == 1
    assert region_bound(np.zeros((5, 5), bool)) == 0


def test_the_sieve_runs_for_specks_only() -> None:
    rng = np.random.default_rng(0)
    specks = rng.random((256, 256)) < 0.01
    slick = np.zeros((256, 256), bool)
    slick[60:200, 30:220] = True
    assert worth_sieving(specks, 16)
    assert not worth_sieving(slick, 16)
    assert not worth_sieving(specks, 1)  # nothing to sieve away


def test_isolated_boxes() -> None:
    boxes = [(0, 10, 0, 10), (5, 15, 5, 15), (20, 30, 20, 30), (10, 20, 0, 5)]
    assert isolated(boxes).tolist() == [False, False, True, True]  # touching edges do not overlap
    assert isolated([(0, 1, 0, 1)] * 65).tolist() == [False] * 65  # too many to test pairwise


def _same(a: list[Slick], b: list[Slick]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert (x.pixels, x.touches_nodata, x.centroid_px) == (y.pixels, y.touches_nodata, y.centroid_px)
        assert x.confidence == y.confidence and x.confidence_max == y.confidence_max
        assert x.polygon_px.equals(y.polygon_px)


@pytest.mark.parametrize("min_pixels", [1, 16])
def test_shortcuts_change_no_slick(monkeypatch: pytest.MonkeyPatch, min_pixels: int) -> None:
    """Sieve or not, member pixels by box or by polygon: the same slicks, islands in holes included."""
    rng = np.random.default_rng(1)
    mask = np.where(rng.random((200, 240)) < 0.01, 255, 0).astype(np.uint8)
    mask[20:120, 20:140] = 255
    mask[40:100, 40:120] = 0  # a hole
    mask[60:80, 60:90] = 255  # an island in it: its box lies inside the ring's
    mask[150:190, 160:230] = 255
    prob = rng.random(mask.shape).astype(np.float32)
    valid = np.ones(mask.shape, bool)
    valid[:, 235:] = False
    fast = vectorise(mask, prob, valid, min_pixels=min_pixels)
    monkeypatch.setattr(vectorise_module, "worth_sieving", lambda oil, minimum: minimum >= 2)
    monkeypatch.setattr(vectorise_module, "isolated", lambda boxes: np.zeros(len(boxes), bool))
    careful = vectorise(mask, prob, valid, min_pixels=min_pixels)
    _same(fast, careful)
    assert sum(s.pixels >= 100 for s in fast) == 3
