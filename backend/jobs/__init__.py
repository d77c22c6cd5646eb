"""Job state in Redis: job records, per-image records, the index of recent jobs, waiting for a job's end."""
