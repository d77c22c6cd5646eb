"""Georeferenced in, georeferenced out: the pure geospatial core (issue 16).

One concern per module, no FastAPI, no Celery, no files on disk (bytes in, bytes/dicts out):

- `ml.geo.raster`: read an uploaded GeoTIFF/COG from bytes, safely (GTiff driver only, limits checked from the
  TIFF structure before GDAL reads a pixel) -> `GeoRaster` (band, nodata, valid mask, `Georef`, acquisition
  time).
- `ml.geo.georef`: `Georef`, a CRS with an affine transform or ground control points: pixel -> lon/lat,
  footprint, bounds, pixel size in metres, JSON round trip.
- `ml.geo.vectorise`: oil mask + probabilities -> `Slick` polygons with geodesic area, perimeter, length,
  centroid, confidence and a nodata-edge flag.
- `ml.geo.landmask`: drop slicks on land (GSHHG via roaring-landmask, loaded once).
- `ml.geo.geojson`: RFC 7946 FeatureCollections (per image, merged per job) and the CSV table.
- `ml.geo.cog`: the 0/255 mask as a Cloud-Optimized GeoTIFF with the input's georeferencing.

Typical use (what the ML service does per image)::

    raster = read_geotiff(data)
    mask, prob = segment(raster.band, raster.valid)            # the model (not here)
    slicks = vectorise(mask, prob, raster.valid, raster.georef, min_area_km2=0.05)
    slicks, on_land = drop_land(slicks)
    collection = feature_collection(
        slicks, image=name, georeferenced=raster.georeferenced, acquired=raster.acquired
    )
    about = raster.georef.summary() if raster.georef else {"georeferenced": False}
    cog_bytes = write_mask_cog(mask, raster.valid, raster.georef)
"""
