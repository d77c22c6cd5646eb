"""A whole scene's far range, which tile benchmarks cannot see: `python -m bench.far_range [--model M]`.

    python -m bench.far_range [--model PATH] [--db 1.1 3 6 8] [--height 6000] [--width 8000]

Every figure of ml.training.robustness is taken on 256x256 tiles, each stretched on its own statistics. A
scene is stretched once (ml.scene.convert), so a tile of its far range, where the sea's backscatter is
several dB lower than at near range (incidence angle; 5-8 dB across a real IW swath), reaches the model
darker than any training tile's sea: a model that learnt "darker than mid-grey" as its oil cue floods the
far range with false slicks (the round 3 candidate of ml/models/MODEL_CARD.md marked 28 % of bench.scene's
GRD-like scene as oil).

For each far-range darkening (`--db`, in power), a GRD-like scene made in code (bench/scene_file.py: uint16
amplitude at 10 m, 4-look speckle, slanted nodata borders, the north of Qatar as bright textured land in
the near range, four -10 dB elliptic slicks at sea) goes
through the service's own scene path in this process (ml.scene.segment.scene_answer: the one stretch, the
tiling, the model) at the service's processing resolution, with its settings (the range trend removed
before the stretch unless `ML_RANGE_TREND=false`: run both to see what it does). Printed per scene: the
share of valid sea pixels marked oil outside the slicks and off land (their false alarms: all, then near,
middle and far thirds of the columns) and the share of slick pixels marked oil (recall). A model fit to
serve keeps the false alarms near zero in every third, and the recall high, whatever the darkening.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench.scene_file import LAND_STEP, SceneSpec, Slick, land_grid, write_scene_tif
from common.wire import mask_entry
from ml.inference import Segmenter
from ml.scene.segment import scene_answer
from ml.scene.source import open_scene
from ml.service.config import Settings

# Top-left corner of the scenes: north-west of Qatar, whose northern tip is land in the near range (bright,
# textured: it widens the scene's stretch as real coasts, ships and platforms do), the rest sea.
QATAR_NORTH = (50.95, 26.45)


def scene_slicks(height: int, width: int) -> list[Slick]:
    """Four slicks across the columns (4-7 km long in an 8,000-column scene), so the far range has its own."""
    return [
        Slick(width * 0.20, height * 0.30, width * 0.062, width * 0.010, 20),
        Slick(width * 0.48, height * 0.20, width * 0.088, width * 0.012, -35),
        Slick(width * 0.68, height * 0.35, width * 0.050, width * 0.009, 70),
        Slick(width * 0.84, height * 0.70, width * 0.075, width * 0.011, 5),
    ]


def far_range_figures(
    spec: SceneSpec, segmenter: Segmenter, config: Settings, folder: Path
) -> dict[str, float]:
    """Scene made, segmented as the service does, scored: false alarms (all, thirds) and recall."""
    path = folder / f"far-range-{spec.far_range_gain:.3f}.tif"
    write_scene_tif(spec, path)
    answer = scene_answer(path, path.name, segmenter, config, None)
    with zipfile.ZipFile(io.BytesIO(answer)) as bundle:
        mask = np.asarray(Image.open(io.BytesIO(bundle.read(mask_entry(0))))) >= 128
    with open_scene(
        path, max_pixels=config.SCENE_MAX_PIXELS, resolution_m=config.SCENE_RESOLUTION_M
    ) as scene:
        _, valid = scene.read(0, scene.height)
        factor = scene.factor
    path.unlink()
    rows = (np.arange(mask.shape[0], dtype=np.float64) + 0.5)[:, None] * factor
    cols = (np.arange(mask.shape[1], dtype=np.float64) + 0.5)[None, :] * factor
    truth = np.zeros(mask.shape, bool)
    near = np.zeros(mask.shape, bool)  # slicks grown by a margin: their edges are no false alarms
    margin = 0.04 * spec.width
    for slick in spec.slicks:
        truth |= slick.inside(rows, cols)
        grown = Slick(slick.col, slick.row, slick.a + margin, slick.b + margin, slick.angle)
        near |= grown.inside(rows, cols)
    sea = valid & ~near
    land = land_grid(spec, spec.transform())
    if land is not None:
        index = (rows // LAND_STEP).astype(int), (cols // LAND_STEP).astype(int)
        sea &= ~land[np.minimum(index[0], land.shape[0] - 1), np.minimum(index[1], land.shape[1] - 1)]
    figures = {"false alarms": marked_share(mask, sea), "recall": marked_share(mask, truth & valid)}
    thirds = np.array_split(np.arange(mask.shape[1]), 3)
    for label, columns in zip(("near", "middle", "far"), thirds, strict=True):
        figures[label] = marked_share(mask[:, columns], sea[:, columns])
    return figures


def marked_share(mask: np.ndarray, where: np.ndarray) -> float:
    """Share of the `where` pixels marked oil (0 when there are none)."""
    count = int(np.count_nonzero(where))
    return int(np.count_nonzero(mask & where)) / count if count else 0.0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="ONNX model (default: the service's ML_MODEL_PATH)")
    p.add_argument(
        "--db", type=float, nargs="+", default=[1.1, 3.0, 6.0, 8.0], help="far-range darkening, dB"
    )
    p.add_argument("--height", type=int, default=6000, help="rows at 10 m (default 6000)")
    p.add_argument("--width", type=int, default=8000, help="columns at 10 m (default 8000)")
    args = p.parse_args(argv)
    config = Settings()
    model = args.model or config.MODEL_PATH
    segmenter = config.segmenter(model)
    print(
        f"model {model} ({segmenter.info.version}), scenes {args.width}x{args.height} at 10 m, "
        f"processed at {config.SCENE_RESOLUTION_M:g} m"
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for db in args.db:
                spec = SceneSpec(
                    args.height,
                    args.width,
                    scene_slicks(args.height, args.width),
                    overviews=False,
                    far_range_gain=10 ** (-db / 20),
                    origin=QATAR_NORTH,
                )
                started = time.perf_counter()
                f = far_range_figures(spec, segmenter, config, Path(tmp))
                print(
                    f"far range -{db:g} dB: false alarms {f['false alarms']:.2%} of the sea (near "
                    f"{f['near']:.2%}, middle {f['middle']:.2%}, far {f['far']:.2%}), slicks found "
                    f"{f['recall']:.1%} ({time.perf_counter() - started:.0f} s)"
                )
    finally:
        segmenter.close()


if __name__ == "__main__":
    main()
