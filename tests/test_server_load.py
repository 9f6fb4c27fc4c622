"""A bounded load run against the server on 127.0.0.1 (the benchmark script, small): no errors."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "server_load.py"


def test_bounded_load_has_no_errors(tmp_path):
    out = tmp_path / "load.json"
    cmd = [sys.executable, str(SCRIPT), "--clients", "8", "--requests", "60", "--timeout", "60", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert sum(r["requests"] for r in rows) == 60
    assert all(r["errors"] == 0 for r in rows), rows
    assert all(0 < r["p50_ms"] <= r["p95_ms"] for r in rows)
