"""An evaluation report: report.md with the metrics table, breakdowns, figures and example queries."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence, Union

import numpy as np

from momentloc.files import write_text_atomic
from momentloc.types import Moment, Pair


def _num(value: object, name: str = "") -> str:
    if name == "n" or (isinstance(value, (int, np.integer)) and not isinstance(value, bool)):
        return str(int(value))  # type: ignore[arg-type]
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    return "-" if np.isnan(f) else f"{f:.2f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _md(text: str) -> str:
    """Keep free text (queries, ids) from breaking a Markdown table."""
    return text.replace("|", "\\|").replace("\n", " ")


def metrics_tables(metrics: Mapping[str, object]) -> list[str]:
    """Markdown lines: the overall metrics row, then one row per breakdown group (keys ``group/metric``)."""
    overall = {k: v for k, v in metrics.items() if "/" not in k}
    lines = ["## Metrics", "", "Recall R@n IoU=m counts a query as a hit when one of its top n moments has IoU >= m "
             "with the ground truth; mIoU is the mean IoU of the top-1 moment.", ""]
    lines += _table(list(overall), [[_num(v, k) for k, v in overall.items()]])
    groups: dict[str, dict[str, object]] = {}
    for key, value in metrics.items():
        if "/" in key:
            group, _, name = key.rpartition("/")
            groups.setdefault(group, {})[name] = value
    if groups:
        columns = list(dict.fromkeys(name for g in groups.values() for name in g))
        lines += ["", "## Breakdowns", "", "Moment length is a fraction of the video; video length is in seconds.", ""]
        lines += _table(["group", *columns], [[g, *[_num(vals.get(c, float("nan")), c) for c in columns]] for g, vals in groups.items()])
    return lines


def _examples(pairs: Sequence[Pair], moments: Sequence[Sequence[Moment]], ious: np.ndarray, n: int) -> list[int]:
    """A few hits and a few misses, so the figure shows both what works and what fails."""
    order = np.argsort(-ious, kind="stable")
    hits = [int(i) for i in order if ious[i] >= 0.5][: (n + 1) // 2]
    misses = [int(i) for i in order[::-1] if ious[i] < 0.5][: n - len(hits)]
    return sorted(hits + misses)


def write_report(out_dir: Union[str, Path], metrics: Mapping[str, object], pairs: Sequence[Pair],
                 moments: Sequence[Sequence[Moment]], title: str = "momentloc evaluation", examples: int = 6) -> Path:
    """Write ``out_dir/report.md`` and its figures (IoU histogram, example timelines); returns the report path."""
    from momentloc.viz import plot_examples, plot_iou_histogram, top1_ious

    out = Path(out_dir)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    scored = [(p, m) for p, m in zip(pairs, moments) if p.windows]
    lines = [f"# {_md(title)}", "", f"{len(pairs)} queries over {len({p.video_id for p in pairs})} videos; "
             f"{len(scored)} with ground-truth windows.", ""]
    lines += metrics_tables(metrics)
    if scored:
        s_pairs, s_moments = [p for p, _ in scored], [m for _, m in scored]
        ious = top1_ious(s_pairs, s_moments)
        plot_iou_histogram(fig_dir / "iou_hist.png", ious)
        lines += ["", "## Top-1 IoU over the split", "", "![IoU histogram](figures/iou_hist.png)"]
        picked = _examples(s_pairs, s_moments, ious, examples)
        if picked:
            plot_examples(fig_dir / "examples.png", [s_pairs[i] for i in picked], [s_moments[i] for i in picked])
            lines += ["", "## Examples", "", "Green: ground truth; blue: predicted moments, best first.", "",
                      "![example timelines](figures/examples.png)", ""]
            rows = []
            for i in picked:
                p, top = s_pairs[i], (s_moments[i][0] if s_moments[i] else None)
                pred = f"{top.start:.1f}-{top.end:.1f}" if top else "-"
                rows.append([_md(p.video_id), _md(p.query), f"{p.window[0]:.1f}-{p.window[1]:.1f}", pred, f"{ious[i]:.2f}"])
            lines += _table(["video", "query", "truth (s)", "top-1 (s)", "IoU"], rows)
    return write_text_atomic(out / "report.md", "\n".join(lines) + "\n")
