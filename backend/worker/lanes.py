"""Fair shares of the workers between owners: each owner's images wait in a queue ("lane") of their own.

Before, every chord member went to the one `celery` queue, first come first served: a 1-image job sent
after another client's 9,000 images waited for all of them (110 s measured). Now a job's members go to its
owner's lane, one of FAIR_LANES Redis lists, and the worker consumes `celery` and every lane: kombu's Redis
transport asks BRPOP for all of them and moves the queue it just took from to the end of its list, so the
workers take one member from each waiting lane in turn. A newcomer's member waits for one member of the big
job to finish (~0.3-0.7 s for 32 tiles), not for the whole job; the big job loses only the time the small
one really uses. With `worker_prefetch_multiplier=1` and late acks a worker holds no more members than it
runs, so nothing is stuck in a prefetch buffer behind the big job. Chords work as before: only where the
members wait changes; finalize_job, expiry timers and the sweeper stay on `celery`.

An owner keeps its lane while the lane has members waiting or for CLAIM_SECONDS after its last job was
sent; a new owner takes a free lane, and only when every lane is busy shares the shortest one. With auth
off there are no owners: each job is its own owner, so jobs are served in turn.
"""

from __future__ import annotations

import time
from typing import cast

import redis
from kombu.entity import Queue

from backend.jobs.keys import PREFIX

DEFAULT_QUEUE = "celery"
LANE_PREFIX = "oilspill.lane."
CLAIM_SECONDS = 10.0
LANE_OWNERS = f"{PREFIX}lane-owners"  # hash: lane -> owner
LANE_CLAIMS = f"{PREFIX}lane-claims"  # hash: lane -> until when its owner keeps it while it is empty

# KEYS: owners, claims. ARGV: owner, lanes, now, claim seconds, lane name prefix.
# Kombu's list for a queue is the queue's name; priorities 3, 6, 9 add "<name>\x06\x16<p>" (unused here).
_PICK = """
local owner, n, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local function waiting(i) return redis.call('LLEN', ARGV[5] .. i) end
local function claimed(i) return tonumber(redis.call('HGET', KEYS[2], i) or '0') > now end
local function claim(i)
  redis.call('HSET', KEYS[1], i, owner)
  redis.call('HSET', KEYS[2], i, now + tonumber(ARGV[4]))
  return i
end
for i = 0, n - 1 do
  if redis.call('HGET', KEYS[1], i) == owner and (waiting(i) > 0 or claimed(i)) then return claim(i) end
end
local best, fewest = 0, nil
for i = 0, n - 1 do
  local w = waiting(i)
  if w == 0 and not claimed(i) then return claim(i) end
  if fewest == nil or w < fewest then best, fewest = i, w end
end
return best
"""


def lane_name(index: int) -> str:
    return f"{LANE_PREFIX}{index}"


def task_queues(lanes: int) -> list[Queue]:
    """What the workers consume: the default queue and every lane."""
    names = [DEFAULT_QUEUE, *(lane_name(i) for i in range(lanes))]
    return [Queue(name) for name in names]  # type: ignore[no-untyped-call]


def pick_lane(client: redis.Redis, owner: str, lanes: int) -> str | None:
    """The queue for the next job of `owner`; None when FAIR_LANES is 0 (the default queue)."""
    if lanes <= 0:
        return None
    index = client.eval(
        _PICK, 2, LANE_OWNERS, LANE_CLAIMS, owner, lanes, repr(time.time()), CLAIM_SECONDS, LANE_PREFIX
    )
    return lane_name(int(cast(int, index)))
