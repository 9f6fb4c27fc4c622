"""Run the `momentloc` command in-process, exactly as its console script does, and check one-line errors."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Sequence

from momentloc.cli import main


@dataclass
class CliResult:
    """Exit code and captured output of one command."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        """Non-empty stderr lines."""
        return [line for line in self.err.splitlines() if line.strip()]


def run_cli(capsys: Any, args: Sequence[Any]) -> CliResult:
    """Call ``momentloc.cli.main`` with ``args`` (the console-script path, so its error handling is tested)."""
    capsys.readouterr()  # drop whatever earlier steps printed
    saved = sys.argv
    sys.argv = ["momentloc", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    out, err = capsys.readouterr()
    return CliResult(code, out, err)


def assert_one_line_error(res: CliResult, *needles: str, code: int = 2) -> str:
    """Exit ``code``, no traceback, stderr exactly one ``error:`` line containing every needle; returns that line."""
    assert "Traceback" not in res.out + res.err, res.err[-3000:]
    assert res.code == code, f"exit {res.code}, stderr: {res.err[-2000:]}"
    assert len(res.err_lines) == 1, res.err[-2000:]
    line = res.err_lines[0]
    assert line.startswith("error: "), line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line
