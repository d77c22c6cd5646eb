"""The command-line client without an API: exit codes, settings from the environment, the progress bar.

Against a real API (upload --wait --out, refusals, a failed job): tests/e2e/test_ops_e2e.py.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import slick_samples

from backend.cli import main as cli
from backend.cli import slicks
from backend.cli.progress import Progress


def test_cli_reports_an_unreachable_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], free_port: Callable[[], int]
) -> None:
    api = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["--api", api, "status", "0" * 32]) == cli.EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot reach the API at {api}") and "OILSPILL_API" in err
    zip_path = tmp_path / "a.zip"
    zip_path.write_bytes(b"PK\x05\x06" + bytes(18))
    assert cli.main(["--api", api, "upload", str(zip_path)]) == cli.EXIT_UNREACHABLE


def test_cli_refuses_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["upload", str(tmp_path / "nope.zip")]) == cli.EXIT_USAGE
    assert "cannot read" in capsys.readouterr().err


def test_cli_takes_the_api_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OILSPILL_API", "http://example.invalid:9")
    assert cli.parser().parse_args(["tasks"]).api == "http://example.invalid:9"
    assert cli.parser().parse_args(["--api", "http://x:1", "tasks"]).api == "http://x:1"


def test_progress_prints_a_line_per_tenth_in_logs() -> None:
    stream = io.StringIO()
    progress = Progress("upload a.zip", unit="bytes", stream=stream)
    for done in range(0, 1024 * 1024 + 1, 1024):
        progress.update(done, 1024 * 1024)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11
    assert lines[-1] == "upload a.zip [" + "#" * 30 + "] 100% 1.0 MB/1.0 MB"


def slick_api(collection: dict[str, object], *, user_hash: str, job_id: str) -> httpx.MockTransport:
    """An API that knows one upload: its slicks by user hash, its status by job id."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == f"/api/results/{user_hash}/slicks":
            assert request.url.params["include_pixel"] == "true"
            return httpx.Response(200, json=collection)
        if request.url.path == f"/api/status/{job_id}":
            return httpx.Response(200, json={"download_url": f"/api/download/{user_hash}"})
        return httpx.Response(404, json={"detail": "No such thing (test)."})

    return httpx.MockTransport(handler)


def test_slicks_table_is_sorted_by_area_georeferenced_first() -> None:
    collection = {
        "type": "FeatureCollection",
        "features": [
            *slick_samples.collection("gulf/small.tif", [0.0421])["features"],
            *slick_samples.collection("tile.png", [5400.0], georeferenced=False)["features"],
            *slick_samples.collection("gulf/big.tif", [14.2103, 1.5])["features"],
        ],
    }
    lines = slicks.table(collection).splitlines()
    assert lines[0].split() == ["image", "id", "area", "length", "centroid", "(lat,", "lon)", "confidence"]
    assert [line.split()[:4] for line in lines[1:-1]] == [
        ["gulf/big.tif", "1", "14.210", "km²"],
        ["gulf/big.tif", "2", "1.500", "km²"],
        ["gulf/small.tif", "1", "0.042", "km²"],
        ["tile.png", "1", "5400", "px"],
    ]
    assert lines[1].split()[4:] == ["1.200", "km", "27.00500,", "51.50500", "0.90"]
    assert lines[4].split()[4:] == ["12.5", "px", "(pixel", "5.0,", "5.0)", "0.90"]
    assert (
        lines[-1]
        == "4 slicks in 3 images: 15.752 km² georeferenced; 1 in pixel coordinates (image not georeferenced)"
    )
    assert len({len(line) for line in lines[:2]}) == 1  # columns line up
    assert slicks.table({"type": "FeatureCollection", "features": []}) == "no slicks found"


def test_slicks_command_takes_a_user_hash_or_a_job_id(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    user_hash, job_id = "a" * 32, "b" * 32
    collection = slick_samples.collection("x.tif", [0.5])
    transport = slick_api(collection, user_hash=user_hash, job_id=job_id)
    monkeypatch.setattr(cli, "_client", lambda args: httpx.Client(base_url="http://api", transport=transport))
    for key in (user_hash, job_id):
        assert cli.main(["slicks", key]) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[1].split()[:3] == ["x.tif", "1", "0.500"] and "1 slick in 1 image" in out
    assert cli.main(["slicks", user_hash, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == collection
    assert cli.main(["slicks", "c" * 32]) == cli.EXIT_REFUSED
    assert f"error: HTTP 404: no upload or job {'c' * 32}" in capsys.readouterr().err
