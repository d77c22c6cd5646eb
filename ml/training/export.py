"""Export a checkpoint to ONNX and check it against torch: `python -m ml.training.export`.

The graph takes `image` (N, 1, H, W) float32 grey levels in [0, 1] (ml.radiometry's stretch / 255) and
returns `oil_probability` of the same shape; batch, height and width are dynamic. Training metadata (epoch,
validation figures) goes into the model's metadata_props so that the service can report it without torch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from ml.training.model import CHANNELS, build_model

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "models" / "slicknet.onnx"


def export(
    checkpoint: Path,
    out: Path,
    opset: int = 17,
    threshold: float | None = None,
    validation: dict[str, float] | None = None,
) -> dict[str, Any]:
    """`validation` (ml.training.evaluate's figures of these weights) replaces the checkpoint's own.

    A `last.pt` of a run with EMA holds the raw weights but the EMA's validation figures (training
    validates the average): its figures would describe other weights, so they must be given.
    """
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if validation is None and ckpt.get("ema") is not None:
        raise SystemExit(f"{checkpoint} holds raw weights scored as their EMA: pass --validation")
    metrics = validation if validation is not None else ckpt["metrics"]
    arch = ckpt.get("arch", "slicknet")
    model = build_model(arch, tuple(ckpt.get("channels", CHANNELS)), pretrained=False)
    model.load_state_dict(ckpt["model"])
    model.eval()
    dummy = torch.rand(2, 1, 256, 256)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (dummy,),
        str(out),
        input_names=["image"],
        output_names=["oil_probability"],
        dynamic_axes={
            "image": {0: "batch", 2: "height", 3: "width"},
            "oil_probability": {0: "batch", 2: "height", 3: "width"},
        },
        opset_version=opset,
        dynamo=False,
    )
    proto = onnx.load(str(out))
    meta = {
        "name": "slicknet" if arch == "slicknet" else arch,
        "epoch": str(ckpt["epoch"] + 1),
        "validation": json.dumps({k: round(float(v), 4) for k, v in metrics.items()}),
    }
    if threshold is not None:  # chosen by ml.training.threshold; the service thresholds at 0.5 otherwise
        meta["threshold"] = f"{threshold:g}"
    for key, value in meta.items():
        proto.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for shape in [(2, 1, 256, 256), (1, 1, 300, 420)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {"image": x.numpy()})[0]
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    return {"onnx": str(out), "bytes": out.stat().st_size, "sha256": digest, **meta}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", type=Path, default=Path("runs/slicknet/best.pt"))
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--threshold", type=float, help="oil threshold to record in the model (default 0.5)")
    p.add_argument(
        "--validation",
        type=Path,
        help="ml.training.evaluate's JSON line for these weights (recorded instead of the checkpoint's)",
    )
    args = p.parse_args(argv)
    validation = None
    if args.validation is not None:
        report = json.loads(args.validation.read_text())
        validation = {k: float(report[k]) for k in ("oil_iou", "background_iou", "miou")}
    print(json.dumps(export(args.checkpoint, args.out, threshold=args.threshold, validation=validation)))


if __name__ == "__main__":
    main()
