"""INT8 model by ONNX Runtime static quantisation, calibrated on training tiles (issue 17: measured).

    python -m ml.training.quantize [--data DIR] [--out runs/slicknet-int8.onnx] [--tiles 256]

Calibration tiles are a spread sample of the training split (never the validation blocks), converted exactly
as the service converts an upload (ml.radiometry). QDQ format, per-channel int8 weights, uint8 activations,
MinMax calibration; the float model's metadata (name, epoch, threshold) is copied. Then score it like the
float model: `python -m ml.training.evaluate --model <out> --split val ...` and
`python -m ml.training.robustness --model <out>`; the speed with `python -m ml.training.quantize --speed`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from ml.inference import DEFAULT_MODEL_PATH, Segmenter
from ml.radiometry import convert
from ml.training.data import DEFAULT_DATA, find_pairs, load_image, split_by_blocks


class Tiles(CalibrationDataReader):
    """Training tiles as the model's input, one per call."""

    def __init__(self, paths: list[Path], input_name: str) -> None:
        self.paths, self.input_name = iter(paths), input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        path = next(self.paths, None)
        if path is None:
            return None
        gray = convert(load_image(path)).gray
        return {self.input_name: (gray.astype(np.float32) / 255.0)[None, None]}


def quantize(data: Path, out: Path, tiles: int, model: Path = DEFAULT_MODEL_PATH) -> None:
    pairs = find_pairs(data / "images", data / "masks")
    train, _val = split_by_blocks([stem for stem, _, _ in pairs])
    chosen = [pairs[i][1] for i in np.linspace(0, len(train) - 1, tiles).round().astype(int).tolist()]
    float_model = onnx.load(str(model))
    input_name = float_model.graph.input[0].name
    out.parent.mkdir(parents=True, exist_ok=True)
    quantize_static(
        str(model),
        str(out),
        Tiles(chosen, input_name),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    quantized = onnx.load(str(out))
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(float_model.metadata_props)
    onnx.save(quantized, str(out))


def speed(model: Path, tiles: int = 200) -> float:
    """Tiles per second of 256 x 256 tiles through the service's Segmenter (2 runners of 1 thread)."""
    segmenter = Segmenter(model, threads=2)
    gray = np.random.default_rng(0).integers(0, 256, (256, 256), dtype=np.uint8)
    list(segmenter.segment_many([gray] * 8))  # warm up
    started = time.perf_counter()
    list(segmenter.segment_many([gray] * tiles))
    segmenter.close()
    return tiles / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=Path("runs/slicknet-int8.onnx"))
    p.add_argument("--tiles", type=int, default=256)
    p.add_argument("--speed", action="store_true", help="only compare the speed of the float and INT8 models")
    args = p.parse_args(argv)
    if not args.speed:
        quantize(args.data, args.out, args.tiles)
    for label, model in (("float", DEFAULT_MODEL_PATH), ("int8", args.out)):
        print(f"{label}: {speed(model):.1f} tiles/s")


if __name__ == "__main__":
    main()
