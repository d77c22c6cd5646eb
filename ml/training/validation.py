"""Training's own validation: tiles converted as the service converts them, IoU and false alarms.

The figures it logs per epoch choose `best.pt`; the published ones come from ml.training.evaluate and
ml.training.robustness, which run the exported ONNX model through the service's decoding and tiling.
"""

from __future__ import annotations

import numpy as np
import torch

from ml.radiometry import convert
from ml.training.data import LAND_GREY


def normalised(images: np.ndarray, land: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validation tiles as the service converts them (ml.radiometry), and their valid-pixel masks."""
    grays, valids = [], []
    for i, image in enumerate(images):
        has_land = land is not None and bool(land[i].any())
        model_input = convert(image, nodata=LAND_GREY if has_land else None)
        grays.append(model_input.gray)
        valids.append(np.ones(image.shape, bool) if model_input.valid is None else model_input.valid)
    return np.stack(grays), np.stack(valids)


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray, device: torch.device) -> np.ndarray:
    """Boolean oil predictions of uint8 (N, H, W) model-input tiles, 32 at a time."""
    model.eval()
    preds = []
    for i in range(0, len(images), 32):
        x = torch.from_numpy(images[i : i + 32]).float().div_(255).unsqueeze(1).to(device)
        preds.append((model(x) >= 0.5).squeeze(1).cpu().numpy())
    return np.concatenate(preds)


def validate(
    model: torch.nn.Module,
    images: np.ndarray,
    masks: np.ndarray,
    device: torch.device,
    negatives: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """Confusion counts summed over all pixels of all tiles (the CBD-Net protocol), and the share of valid
    pixels of the oil-free chips marked oil (false alarms)."""
    pred = predict(model, images, device)
    gt = masks.astype(bool)
    tp = int((pred & gt).sum())
    fp = int((pred & ~gt).sum())
    fn = int((~pred & gt).sum())
    tn = int((~pred & ~gt).sum())
    oil = tp / max(1, tp + fp + fn)
    bg = tn / max(1, tn + fp + fn)
    metrics = {"oil_iou": oil, "background_iou": bg, "miou": (oil + bg) / 2}
    if negatives is not None:
        chips, valid = negatives
        alarms = predict(model, chips, device) & valid
        metrics["false_alarm"] = float(alarms.sum()) / max(1, int(valid.sum()))
    return metrics
