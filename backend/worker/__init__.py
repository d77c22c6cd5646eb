"""The Celery side: starting a job, its tasks, segmenting images through the ML service, archiving, expiry."""
