"""Command-line client of the API: `python -m backend.cli upload scenes.zip --wait --out masks.zip`."""
