"""How a job's images are grouped into chord members."""

from __future__ import annotations

from backend.worker.launch import plan_batches


def test_plan_batches_groups_tiles_sends_scenes_alone_and_splits_small_jobs() -> None:
    tiles = {f"t{i:02d}.png": 60_000 for i in range(40)}
    groups = plan_batches(tiles, per_task=16, max_bytes=16 << 20, workers=2)
    assert [len(g) for g in groups] == [10, 10, 10, 10]  # 3 of 16 would end on one worker alone
    assert [name for group in groups for name in group] == list(tiles)  # order kept, nothing lost
    scenes = {"big1.tif": 20 << 20, "s1.png": 1 << 20, "s2.png": 1 << 20, "big2.tif": 15 << 20}
    assert plan_batches(scenes, per_task=16, max_bytes=16 << 20, workers=2) == [
        ["big1.tif"],
        ["s1.png", "s2.png"],
        ["big2.tif"],
    ]
    few = {f"{i}.png": 1 for i in range(5)}
    assert [len(g) for g in plan_batches(few, per_task=16, max_bytes=1 << 20, workers=2)] == [3, 2]
    assert plan_batches({}, per_task=16, max_bytes=1, workers=2) == []


def test_plan_batches_ends_the_job_with_a_full_round_of_even_groups() -> None:
    tiles = {f"t{i:03d}.png": 60_000 for i in range(200)}

    def lengths(per_task: int, workers: int) -> list[int]:
        return [len(g) for g in plan_batches(tiles, per_task=per_task, max_bytes=16 << 20, workers=workers)]

    assert lengths(16, 2) == [15] * 4 + [14] * 10  # 14 groups, not 12 of 16 and a last one of 8 alone
    assert lengths(16, 3) == [14] * 5 + [13] * 10
    assert lengths(64, 1) == [50] * 4
