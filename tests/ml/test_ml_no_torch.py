"""Serving must not pull in torch: the runtime image installs only requirements.txt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_service_evaluation_and_bench_never_import_torch() -> None:
    code = (
        "import sys\n"
        "import ml.service.main, ml.training.evaluate, bench.ml_latency\n"
        "from fastapi.testclient import TestClient\n"
        "with TestClient(ml.service.main.app) as c:\n"
        "    assert c.get('/health').status_code == 200\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
