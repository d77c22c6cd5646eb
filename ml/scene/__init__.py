"""Whole scenes, window by window (issue 17): a GeoTIFF read in place from the shared results folder.

- `ml.scene.source`: open a scene file by path, safely (inside ML_SCENE_DIR, TIFF header, GTiff driver only,
  limits from the TIFF structure), at a processing resolution (decimation factor).
- `ml.scene.convert`: the scene's grey-level stretch, fitted once on a sample of the scene, applied to each
  window (and to a batch's wide GeoTIFFs, so that they reach the model as the same scene would).
- `ml.scene.range_trend`: the sea's fall across the scene's columns (incidence angle), removed first.
- `ml.scene.strips`: the model over the scene one row of tiles at a time, blended, tiles skipped where
  there is nothing to see (nodata, land).
- `ml.scene.segment`: the products (mask, overlay, COG mask, slicks) of one scene, as a batch answer.
"""
