"""Training, resuming and export on a tiny synthetic dataset (needs torch: requirements-train.txt)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.training.data import find_pairs, split_by_blocks

pytestmark = pytest.mark.train


def write_dataset(root: Path, count: int, make_scene: Callable[..., tuple[np.ndarray, np.ndarray]]) -> None:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(count):
        image, slick = make_scene(256, 256, seed=i)
        Image.fromarray(np.stack([image] * 3, axis=-1)).save(root / "images" / f"{1000 + i}.jpg", quality=95)
        Image.fromarray(slick.astype(np.uint8) * 255).save(root / "masks" / f"{1000 + i}.png")


def write_negatives(root: Path, count: int) -> Path:
    """Oil-free chips as the CSIRO set ships them: 300x300 JPEGs, land as white, and chips.csv."""
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["file,scene_id,region,land_fraction,mean_grey"]
    for i in range(count):
        chip = np.clip(140 * rng.gamma(4.0, 1 / 4.0, (300, 300)), 0, 254).astype(np.uint8)
        land = 0.0
        if i % 3 == 0:
            chip[:60] = 255
            land = 0.2
        Image.fromarray(chip).save(root / "images" / f"chip{i}.jpg", quality=95)
        lines.append(f"chip{i}.jpg,scene{i // 2},GBR,{land},{chip.mean():.1f}")
    (root / "chips.csv").write_text("\n".join(lines) + "\n")
    return root


def test_negatives_split_by_scene_and_land_is_marked(tmp_path: Path) -> None:
    from ml.training.data import load_negatives, split_negatives

    chips, land, scenes = load_negatives(write_negatives(tmp_path / "neg", 14))
    assert chips.shape == (14, 300, 300) and land.shape == chips.shape
    assert land[0, :60].mean() > 0.9 and not land[1].any()  # JPEG blurs the coast a little
    train, val = split_negatives(scenes)
    assert sorted(train + val) == list(range(14)) and val
    assert not {scenes[i] for i in train} & {scenes[i] for i in val}


def test_validation_split_is_contiguous_blocks() -> None:
    stems = [str(i) for i in range(1000)]
    train, val = split_by_blocks(stems, chunks=10, val_blocks=(2, 7))
    assert val == list(range(200, 300)) + list(range(700, 800))
    assert sorted(train + val) == list(range(1000))


def test_train_resume_and_export(tmp_path: Path, scene: Callable[..., tuple[np.ndarray, np.ndarray]]) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from ml.training import export, train

    data, out = tmp_path / "data", tmp_path / "run"
    write_dataset(data, 40, scene)
    assert len(find_pairs(data / "images", data / "masks")) == 40
    negatives = write_negatives(tmp_path / "neg", 8)
    common = ["--data", str(data), "--out", str(out), "--batch-size", "8", "--threads", "1", "--lr", "3e-3"]
    common += ["--negatives", str(negatives), "--negatives-per-batch", "2", "--hard-negatives", "0.5"]
    common += ["--synthetic-slicks", "0.5"]
    train.main([*common, "--epochs", "1"])
    first = torch.load(out / "last.pt", weights_only=False)
    assert first["epoch"] == 0 and len(first["history"]) == 1
    scored = out / "hard_negatives.npy"  # the chips scored once by the starting weights, kept for --resume
    kept_scores = scored.read_bytes()

    assert not list(out.glob("epoch-*.pt"))
    train.main([*common, "--epochs", "2", "--resume", "--keep-epochs"])
    second = torch.load(out / "last.pt", weights_only=False)
    assert scored.read_bytes() == kept_scores
    assert second["epoch"] == 1 and [h["epoch"] for h in second["history"]] == [1, 2]
    assert (out / "best.pt").exists()
    kept = torch.load(out / "epoch-02.pt", weights_only=False)  # the scored (EMA) weights of that epoch
    assert kept["epoch"] == 1 and [p.name for p in out.glob("epoch-*.pt")] == ["epoch-02.pt"]
    assert all(torch.equal(v, second["ema"][f"module.{k}"]) for k, v in kept["model"].items())

    onnx_path = tmp_path / "model.onnx"
    info = export.export(out / "best.pt", onnx_path)
    assert onnx_path.stat().st_size == info["bytes"] < 20 * 1024 * 1024
    assert set(json.loads(info["validation"])) == {"oil_iou", "background_iou", "miou", "false_alarm"}


def test_zoom_keeps_shapes_and_binary_masks() -> None:
    torch = pytest.importorskip("torch")
    from ml.training import augment

    x = torch.rand(4, 1, 64, 64)
    y = (torch.rand(4, 1, 64, 64) > 0.7).float()
    gen = torch.Generator().manual_seed(0)
    assert augment.zoom(x, y, gen, 1.0) == (x, y)  # off: the same tensors, no random draw
    assert torch.equal(gen.get_state(), torch.Generator().manual_seed(0).get_state())
    zoomed = [augment.zoom(x, y, gen, 2.0) for _ in range(8)]
    assert any(not torch.equal(zx, x) for zx, _ in zoomed)  # about half of the batches are zoomed
    for zx, zy in zoomed:
        assert zx.shape == x.shape and zy.shape == y.shape
        assert set(zy.unique().tolist()) <= {0.0, 1.0}


def test_crop_cuts_the_same_window_of_image_and_mask() -> None:
    torch = pytest.importorskip("torch")
    from ml.training import augment

    # Each pixel's value says where it was, so a crop can be traced back to its window.
    x = torch.arange(3 * 64 * 64, dtype=torch.float32).reshape(3, 1, 64, 64)
    y = x.clone()
    gen = torch.Generator().manual_seed(1)
    assert augment.crop(x, y, gen, 0) == (x, y)
    assert augment.crop(x, y, gen, 64) == (x, y)
    cx, cy = augment.crop(x, y, gen, 16)
    assert cx.shape == cy.shape == (3, 1, 16, 16)
    assert torch.equal(cx, cy)  # image and mask cut at the same place
    for i in range(3):
        first = int(cx[i, 0, 0, 0]) - i * 64 * 64
        top, left = divmod(first, 64)
        assert torch.equal(cx[i, 0], x[i, 0, top : top + 16, left : left + 16])


def test_other_widths_train_and_export(
    tmp_path: Path, scene: Callable[..., tuple[np.ndarray, np.ndarray]]
) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from ml.training import export, options, train
    from ml.training.model import SlickNet, count_parameters

    data, out = tmp_path / "data", tmp_path / "run"
    write_dataset(data, 40, scene)
    args = ["--data", str(data), "--out", str(out), "--batch-size", "8", "--threads", "1", "--epochs", "1"]
    args += ["--negatives", "none", "--ema", "0"]
    train.main([*args, "--channels", "8,16,24", "--zoom", "1.5", "--loss", "lovasz"])
    ckpt = torch.load(out / "best.pt", weights_only=False)
    assert ckpt["channels"] == [8, 16, 24]
    info = export.export(out / "best.pt", tmp_path / "model.onnx")
    assert info["bytes"] < 4 * count_parameters(SlickNet((16, 32, 64, 128, 256)))
    # A fine-tune from the exported file: unfolded (checked against ORT inside, SystemExit if it differs).
    tuned = tmp_path / "tuned"
    args[args.index(str(out))] = str(tuned)
    train.main([*args, "--channels", "8,16,24", "--init", str(tmp_path / "model.onnx"), "--log-share", "0.5"])
    assert torch.load(tuned / "last.pt", weights_only=False)["epoch"] == 0
    with pytest.raises(ValueError, match="shape mismatch"):
        train.main([*args, "--channels", "8,16,32", "--init", str(tmp_path / "model.onnx")])
    with pytest.raises(SystemExit):
        options.parse_args(["--channels", "8"])


def test_lovasz_hinge_is_zero_when_right_and_grows_with_errors() -> None:
    torch = pytest.importorskip("torch")
    from ml.training import losses

    truth = torch.zeros(2, 1, 8, 8)
    truth[0, 0, 2:5, 2:6] = 1  # the second image has no oil at all
    right = (truth * 2 - 1) * 3  # margins of 3 on the correct side
    assert float(losses.lovasz_hinge(right, truth)) == 0.0
    one_wrong = right.clone()
    one_wrong[0, 0, 2, 2] = -3
    many_wrong = right.clone()
    many_wrong[0, 0, 2:5, 2:4] = -3
    assert 0 < float(losses.lovasz_hinge(one_wrong, truth)) < float(losses.lovasz_hinge(many_wrong, truth))
    logits = right.clone().requires_grad_(True)
    losses.bce_lovasz_loss(logits - 1, truth).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
