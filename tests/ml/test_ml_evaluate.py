"""Evaluation metrics (pure) and the `python -m ml.training.evaluate` CLI on folders made in code."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ml.inference import DEFAULT_MODEL_PATH
from ml.service.config import Settings
from ml.service.main import create_app
from ml.training.data import split_by_blocks
from ml.training.evaluate import (
    Confusion,
    evaluate,
    local_predictor,
    main,
    scores,
    select_pairs,
    service_predictor,
)

Scene = Callable[..., tuple[np.ndarray, np.ndarray]]


def test_confusion_counts_pixels_with_oil_positive() -> None:
    pred = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], bool)
    truth = np.array([[1, 0, 1, 0], [1, 0, 0, 0]], np.uint8)
    c = Confusion()
    c.add(pred, truth)
    c.add(pred, truth)
    assert (c.tp, c.fp, c.fn, c.tn) == (4, 2, 2, 8)


def test_confusion_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        Confusion().add(np.zeros((2, 3), bool), np.zeros((3, 2), bool))


def test_scores_from_known_counts() -> None:
    report = scores(Confusion(tp=6, fp=2, fn=4, tn=88), tiles=5)
    assert report.tiles == 5
    assert report.oil_iou == 0.5
    assert report.background_iou == round(88 / 94, 4)
    assert report.miou == round((0.5 + 88 / 94) / 2, 4)
    assert (report.precision, report.recall) == (0.75, 0.6)
    assert report.f1 == round(12 / 18, 4)


def test_scores_with_empty_denominators_are_zero_not_an_error() -> None:
    report = scores(Confusion(tn=100), tiles=1)
    assert (report.oil_iou, report.precision, report.recall, report.f1) == (0, 0, 0, 0)
    assert report.background_iou == 1.0


def write_pairs(root: Path, scene: Scene) -> tuple[Path, Path]:
    """Three pairs of different sizes and formats, anti-aliased masks, plus files without a partner."""
    images, masks = root / "images", root / "masks"
    images.mkdir()
    masks.mkdir()
    for stem, (h, w), fmt in [("1", (256, 256), "png"), ("2", (300, 520), "jpg"), ("3", (200, 260), "tif")]:
        image, slick = scene(h, w, seed=int(stem))
        pil = Image.fromarray(image.astype(np.uint16) * 257) if fmt == "tif" else Image.fromarray(image)
        pil.save(images / f"{stem}.{fmt}")
        mask = np.where(slick, 255, 0).astype(np.uint8)
        mask[0, :] = 127  # anti-aliasing below the 128 threshold counts as sea
        Image.fromarray(mask).convert("RGB").save(masks / f"{stem}.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(images / "orphan.png")
    return images, masks


def test_cli_prints_one_json_line(tmp_path: Path, scene: Scene, capsys: pytest.CaptureFixture[str]) -> None:
    images, masks = write_pairs(tmp_path, scene)
    main(["--images", str(images), "--masks", str(masks), "--threads", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert list(report) == ["tiles", "oil_iou", "background_iou", "miou", "f1", "precision", "recall"]
    assert report["tiles"] == 3
    assert report["oil_iou"] >= 0.6  # the synthetic slicks are easy
    assert report["miou"] == pytest.approx((report["oil_iou"] + report["background_iou"]) / 2, abs=1e-4)


def test_cli_without_pairs_exits_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(SystemExit, match="no image/mask pairs"):
        main(["--images", str(tmp_path / "a"), "--masks", str(tmp_path / "b")])


def test_service_scores_equal_local_scores(tmp_path: Path, scene: Scene) -> None:
    images, masks = write_pairs(tmp_path, scene)
    pairs = select_pairs(images, masks, "all")
    local = evaluate(pairs, local_predictor(DEFAULT_MODEL_PATH, threads=1))
    with TestClient(create_app(Settings())) as client:
        remote = evaluate(pairs, service_predictor("http://testserver", client))
    assert remote == local


def test_val_split_selects_the_training_validation_blocks(tmp_path: Path) -> None:
    images, masks = tmp_path / "i", tmp_path / "m"
    images.mkdir()
    masks.mkdir()
    stems = [str(100 + 3 * i) for i in range(60)]
    for stem in stems:
        (images / f"{stem}.jpg").touch()
        (masks / f"{stem}.png").touch()
    _, val = split_by_blocks(stems)
    chosen = [stem for stem, _, _ in select_pairs(images, masks, "val")]
    assert chosen == [stems[i] for i in val]
    assert 0 < len(chosen) < len(stems)
    assert len(select_pairs(images, masks, "all")) == 60
