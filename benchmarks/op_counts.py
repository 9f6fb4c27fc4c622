"""Operations each model dispatches: forward and decode for 1 and 100 queries on one video, and a training step's
forward, losses and backward.

    python benchmarks/op_counts.py [--models snag tan2d] [--queries 100] [--md ops.md]

On a GPU every such operation is at least one kernel launch and a few
microseconds of host time, so where a model's work is small (one query,
short videos) these counts, not FLOPs, set its latency; and an operation
count that grows with the number of queries means a per-query loop. They
are counted on the CPU (a ``TorchDispatchMode`` that sees every aten call),
leaving out the calls that only make views. Two CPU artefacts to read past:
the RNN text encoders (2D-TAN, ViGA, SG-SCI, span) run one set of operations
per word step, where cuDNN runs the whole RNN as one call, so their forward
counts grow with the longest query of the batch. The optimiser step is left
out: on a CPU torch's Adam loops over the parameters, on a GPU it updates
them all in a few multi-tensor calls.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import benchlib
from momentloc.registry import model_names

# Calls that only make a view (or metadata) of a tensor: no kernel on any device.
VIEWS = frozenset({"view", "_unsafe_view", "unsqueeze", "squeeze", "transpose", "t", "permute", "expand", "slice",
                   "select", "unbind", "alias", "as_strided", "split", "split_with_sizes", "unsafe_split", "detach",
                   "unfold", "diagonal", "narrow", "view_as_real", "view_as_complex", "lift_fresh"})


class OpCounter(TorchDispatchMode):
    """Counts the aten calls made under it, by name, views apart."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = func.overloadpacket.__name__
        if name not in VIEWS:
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        """Non-view calls counted."""
        return sum(self.ops.values())


def count(fn: Callable[[], Any]) -> OpCounter:
    """The non-view aten calls of one call of ``fn`` (after one uncounted call)."""
    fn()
    counter = OpCounter()
    with counter:
        fn()
    return counter


def _forward_and_backward(net: torch.nn.Module, objectives: Any, batch: Any) -> Callable[[], None]:
    """A training step without its optimiser: forward, the model's loss plus its objectives, backward."""

    def run() -> None:
        net.zero_grad(set_to_none=True)
        out = net(batch)
        objectives(out, batch, net.loss(out, batch)["total"])["total"].backward()

    return run


def measure(model: str, queries: int, train_pairs: int = 4) -> dict[str, Any]:
    """Op counts of forward and decode (1 and ``queries`` queries on one video) and of a training step's
    forward, losses and backward."""
    opts = benchlib.Options(quick=True, quick_pairs=train_pairs)
    path, note = benchlib.find_config(model)
    cfg = benchlib.load(path, model)
    shape = benchlib.shape_for(cfg, opts)
    net, objectives, _ = benchlib.build(model, cfg, opts)
    row: dict[str, Any] = {"config": note, "clips": shape.clips}
    net.eval()
    for q in (1, queries):
        batch = benchlib.make_batch(model, replace(shape, queries_per_video=q), q, shape.clips, "cpu")
        with torch.no_grad():
            out = net(batch)
            row[f"forward_{q}"] = count(lambda: net(batch)).total
            row[f"decode_{q}"] = count(lambda: net.decode(out, batch, 5)).total
    batch = benchlib.make_batch(model, shape, shape.pairs, shape.clips, "cpu")
    net.train()
    objectives.train()
    row["train_pairs"] = shape.pairs
    row["train_step"] = count(_forward_and_backward(net, objectives, batch)).total
    return row


def markdown(rows: dict[str, dict[str, Any]], queries: int) -> str:
    """The table of ``measure`` rows."""
    lines = [f"| model | config | forward, 1 / {queries} queries | decode, 1 / {queries} queries | "
             "training forward + backward (pairs) |",
             "|---|---|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['config']} | {r['forward_1']} / {r[f'forward_{queries}']} | "
                     f"{r['decode_1']} / {r[f'decode_{queries}']} | {r['train_step']} ({r['train_pairs']}) |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=model_names())
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--md", type=Path, help="also write the table here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = {}
    for name in args.models:
        rows[name] = measure(name, args.queries)
        print(f"{name}: {rows[name]}", flush=True)
    table = markdown(rows, args.queries)
    print(table)
    if args.md:
        args.md.write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
