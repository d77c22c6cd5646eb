"""Per-image records of a job in Redis: inputs, where they lie in the zip, results, parts, deliveries.

The keys (job:<id>:inputs, :entries, :results, :parts, :done, :failed, :deliveries) are listed in
backend.jobs.keys; they belong to the job record and expire together with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import redis
from redis.typing import EncodableT, FieldT

from backend.jobs.keys import hash_fields, job_key, touch
from backend.jobs.models import ImageResult


class ImageRecords:
    """The images of the jobs in one Redis (JobStore.images); writes renew the job's `record_ttl`."""

    def __init__(self, client: redis.Redis, *, record_ttl: int) -> None:
        self.client = client
        self.record_ttl = record_ttl

    def inputs(self, job_id: str) -> dict[str, str]:
        return cast(dict[str, str], self.client.hgetall(job_key(job_id, ":inputs")))

    def batch_inputs(self, job_id: str, names: list[str]) -> tuple[dict[str, str], dict[str, str]]:
        """For a worker's batch, in one round trip (an HMGET each): name -> output name, name -> entry record.

        Only names that are inputs of the job (have a record) appear.
        """
        if not names:
            return {}, {}
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(job_key(job_id, ":inputs"), names)
        pipe.hmget(job_key(job_id, ":entries"), names)
        outputs, entries = pipe.execute()
        return _present(names, outputs), _present(names, entries)

    def results(self, job_id: str) -> dict[str, ImageResult]:
        raw = cast(dict[str, str], self.client.hgetall(job_key(job_id, ":results")))
        return {name: ImageResult.model_validate_json(value) for name, value in raw.items()}

    def recorded(self, job_id: str, names: list[str]) -> dict[str, ImageResult]:
        """The results already recorded for those of `names` that have one (one round trip)."""
        raw = cast(list[str | None], self.client.hmget(job_key(job_id, ":results"), names) if names else [])
        return {
            name: ImageResult.model_validate_json(value)
            for name, value in zip(names, raw, strict=True)
            if value is not None
        }

    def parts(self, job_id: str, outputs: list[str] | None = None) -> dict[str, str]:
        """output name -> part id, for all outputs with a stored part or only those of `outputs`."""
        if outputs is None:
            return cast(dict[str, str], self.client.hgetall(job_key(job_id, ":parts")))
        ids = cast(list[str | None], self.client.hmget(job_key(job_id, ":parts"), outputs) if outputs else [])
        return {out: part for out, part in zip(outputs, ids, strict=True) if part is not None}

    def errors(self, job_id: str) -> dict[str, str]:
        """name -> error of every failed image.

        Reads only the failed images' records (the status endpoint calls this on every poll: a 5000-image job
        must not cost 5000 JSON parses per request).
        """
        names = sorted(self.client.smembers(job_key(job_id, ":failed")))
        if not names:
            return {}
        raw = cast(list[str | None], self.client.hmget(job_key(job_id, ":results"), names))
        found = (ImageResult.model_validate_json(value) for value in raw if value is not None)
        return {res.name: res.error or "failed" for res in found if res.status == "failed"}

    def count_delivery(self, job_id: str, name: str) -> int:
        """How many times a worker has started on this image, this time included."""
        return self.count_deliveries(job_id, [name])[name]

    def count_deliveries(self, job_id: str, names: list[str]) -> dict[str, int]:
        """Count one more start on each of these images (one round trip); name -> starts, this one counted."""
        pipe = self.client.pipeline()
        for name in names:
            pipe.hincrby(job_key(job_id, ":deliveries"), name, 1)
        pipe.expire(job_key(job_id, ":deliveries"), self.record_ttl)
        counts: list[int] = pipe.execute()[:-1]
        return dict(zip(names, counts, strict=True))

    def deliveries(self, job_id: str, names: list[str]) -> dict[str, int]:
        """How many times a worker has started on each of these images so far (0 for none)."""
        found = cast(
            list[str | None], self.client.hmget(job_key(job_id, ":deliveries"), names) if names else []
        )
        return {name: int(count or 0) for name, count in zip(names, found, strict=True)}

    def record_result(
        self, job_id: str, result: ImageResult, *, model_version: str | None, user_hash: str
    ) -> None:
        """Store an image's outcome; the done/failed sets make a repeated record idempotent."""
        self.record_results(job_id, [result], model_version=model_version, user_hash=user_hash)

    def record_results(
        self,
        job_id: str,
        results: list[ImageResult],
        *,
        model_version: str | None,
        user_hash: str,
        parts: Mapping[str, str] | None = None,
    ) -> None:
        """Store images' outcomes and the parts (output -> part id) of the ok ones in one transaction."""
        ok, failed = job_key(job_id, ":done"), job_key(job_id, ":failed")
        pipe = self.client.pipeline()
        if results:
            records: dict[FieldT, EncodableT] = {res.name: res.model_dump_json() for res in results}
            pipe.hset(job_key(job_id, ":results"), mapping=records)
        if parts:
            pipe.hset(job_key(job_id, ":parts"), mapping=hash_fields(parts))
        for into, out_of, names in (
            (ok, failed, [res.name for res in results if res.status == "ok"]),
            (failed, ok, [res.name for res in results if res.status != "ok"]),
        ):
            if names:
                pipe.sadd(into, *names)
                pipe.srem(out_of, *names)
        if model_version:
            pipe.hset(job_key(job_id), "model_version", model_version)
        touch(pipe, job_id, user_hash, self.record_ttl)
        pipe.execute()


def _present(names: list[str], found: list[str | None]) -> dict[str, str]:
    return {name: value for name, value in zip(names, found, strict=True) if value is not None}
