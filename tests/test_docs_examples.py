"""The runnable examples of docs/api.md run as written (those that need no files of one's own)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("av", reason="PyAV is the [video] extra")

API = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", API.read_text(), flags=re.S)


def test_api_page_examples_run(tmp_path, monkeypatch, capsys) -> None:
    runnable = [b for b in _blocks() if "preds.jsonl" not in b and "load_config(" not in b]
    assert len(runnable) == 2, "the raw-video and the extraction examples"
    monkeypatch.chdir(tmp_path)
    for block in runnable:
        exec(compile(block, str(API), "exec"), {"__name__": "__docs__"})
    out = capsys.readouterr().out.splitlines()
    r1 = float(out[0])
    assert r1 >= 80.0, out
    assert out[-1].startswith("['colours_000'") and out[-1].endswith("[] []"), out[-1]
