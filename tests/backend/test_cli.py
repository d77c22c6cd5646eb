"""The command-line client without an API: exit codes, settings from the environment, the progress bar.

Against a real API (upload --wait --out, refusals, a failed job): tests/e2e/test_ops_e2e.py.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from backend.cli import main as cli
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
