"""What operators see: metrics kept in Redis, worker and queue monitoring, and their response models."""
