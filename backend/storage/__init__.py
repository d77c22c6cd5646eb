"""Files under RESULTS_DIR: the per-user folders, the result parts and the archive."""
