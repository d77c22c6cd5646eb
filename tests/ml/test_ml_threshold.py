"""Threshold choice (cross-validated over the held-out blocks) and the threshold in the model metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml.inference import THRESHOLD, read_model_info
from ml.training.threshold import cross_validate


def counts(tp_fp_fn: list[tuple[int, int, int]]) -> np.ndarray:
    return np.array(tp_fp_fn, np.int64)


THRESHOLDS = (0.4, 0.5, 0.6)


def test_a_threshold_is_adopted_only_when_it_wins_on_every_held_out_block() -> None:
    better_low = counts([(90, 10, 10), (80, 5, 25), (60, 2, 45)])  # 0.4 beats 0.5 here
    verdict = cross_validate([better_low, better_low, better_low], THRESHOLDS)
    assert verdict["adopt"] == 0.4 and verdict["wins_every_block"]
    assert [f["chosen"] for f in verdict["folds"]] == [0.4, 0.4, 0.4]  # type: ignore[attr-defined]

    worse_on_one = counts([(70, 40, 10), (80, 5, 25), (60, 2, 45)])  # 0.4 loses on this block
    verdict = cross_validate([better_low, better_low, worse_on_one], THRESHOLDS)
    assert verdict["adopt"] == THRESHOLD and not verdict["wins_every_block"]


def test_the_model_metadata_names_its_threshold(tmp_path: Path) -> None:
    weights = tmp_path / "m.onnx"
    weights.write_bytes(b"not really a model")
    assert read_model_info(weights, {"threshold": "0.45"}).threshold == 0.45
    assert read_model_info(weights, {}).threshold == THRESHOLD
    assert read_model_info(weights, {"threshold": "7"}).threshold == THRESHOLD  # nonsense is ignored
    assert read_model_info(weights, {"threshold": "high"}).threshold == THRESHOLD
