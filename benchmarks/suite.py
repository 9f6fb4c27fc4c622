"""Performance suite: parameters, training step, inference, throughput, memory and clip scaling of every model.

Each model is measured at the batch size and feature shape of its paper
config (Charades-STA where one exists). Every number comes from its own
process, so peak memory is that measurement's alone, and a point that runs
past the time limit stops its row instead of the suite.

    python benchmarks/suite.py --quick --json perf.json --md perf.md
    python benchmarks/suite.py --models snag tan2d --device cuda --bf16
    python benchmarks/suite.py --dataset tacos --models snag tan2d
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import benchlib as bl  # noqa: E402
import benchproc as bp  # noqa: E402


def discover(wanted: Optional[list[str]]) -> tuple[list[str], dict[str, str]]:
    """Registered model names, and the modules that failed to import (name -> error)."""
    from momentloc import registry

    failed: dict[str, str] = {}
    for mod in registry.MODELS.modules():
        try:
            importlib.import_module(mod)
        except Exception as err:  # a broken model module is a table row, not the end of the suite
            failed[mod.rsplit(".", 1)[1]] = f"{type(err).__name__}: {err}".splitlines()[0][:160]
    names = sorted(registry.MODELS.entries)
    if wanted:
        unknown = [w for w in wanted if w not in names and w not in failed]
        if unknown:
            raise SystemExit(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(names)}")
        names = [n for n in names if n in wanted]
        failed = {k: v for k, v in failed.items() if k in wanted}
    return names, failed


def machine(opts: bl.Options) -> dict[str, Any]:
    """Where the numbers were taken: CPU, cores, torch, device."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "torch_threads": opts.threads or torch.get_num_threads(),
        "python": platform.python_version(), "device": opts.device, "bf16": opts.bf16, "compile": opts.compile,
        "matmul_precision": opts.matmul_precision or "each config's train.matmul_precision",
        "load_average": [round(x, 1) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
    if opts.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(opts.device))
    return info


def _timeout(opts: bl.Options) -> float:
    # Room for one run past the limit after the repeats' budget, and to build the model.
    return opts.budget_s + opts.point_limit_s + 20.0


def measure_model(model: str, opts: bl.Options, log: Any = print) -> dict[str, Any]:
    """Every measurement of one model: params, train step, 1-query latency, throughput, scaling."""
    path, note = bl.find_config(model, opts.dataset)
    try:
        cfg = bl.load(path, model)
    except Exception as err:
        return {"status": f"config error: {err}"}
    shape = bl.shape_for(cfg, opts)
    cfg_name = str(path) if path else None
    row: dict[str, Any] = {"status": "ok", "config": note, "batch": bl.as_dict(shape)}

    def job(kind: str, overrides: Optional[list[str]] = None, clips: Optional[int] = None) -> bp.Job:
        return bp.Job(kind, model, cfg_name, overrides or [], shape, opts, clips)

    for kind in ("train", "infer", "throughput"):
        t0 = time.perf_counter()
        row[kind] = bp.run_isolated(job(kind), _timeout(opts))
        log(f"  {model:<8} {kind:<10} {_cell(row[kind]):>22}  ({time.perf_counter() - t0:.1f} s)")
    if "params" in row["train"]:
        row["params"] = row["train"].pop("params")
    row["scaling"] = []
    stop: Optional[str] = None
    for clips in opts.scaling_clips:
        point: dict[str, Any] = {"clips": clips}
        row["scaling"].append(point)
        if stop:
            point["skipped"] = f"after: {stop}"
            continue
        over, what = bl.scaled_overrides(model, cfg, clips)
        if what:
            point["note"] = what
        try:
            scaled = bl.load(path, model, over)
        except Exception as err:
            point["error"], stop = f"config: {err}", "the model does not take this length"
            continue
        est = bl.quadratic_estimate_gb(model, scaled)
        if est > opts.mem_bound_gb:
            point["skipped"] = stop = f"quadratic by design ({bl.QUADRATIC[model]}: ~{est:.0f} GB > {opts.mem_bound_gb:g} GB)"
            continue
        guess = _predicted_s(model, row["scaling"][:-1], clips)
        if guess > opts.point_limit_s:
            point["skipped"] = stop = (f"predicted {guess:.0f} s > {opts.point_limit_s:g} s from the {row['scaling'][-2]['clips']:,}-clip "
                                       f"point (time grows at least {'as clips^2' if model in bl.QUADRATIC else 'linearly'})")
            if model in bl.QUADRATIC:
                point["skipped"] = "quadratic by design: " + point["skipped"]
            continue
        t0 = time.perf_counter()
        point.update(bp.run_isolated(job("scale", over, clips), _timeout(opts)))
        log(f"  {model:<8} {clips:>6} clips {_cell(point):>22}  ({time.perf_counter() - t0:.1f} s)")
        if "error" in point or point.get("over_limit"):
            why = "over the time limit" if point.get("timeout") or point.get("over_limit") else "failed"
            if point.get("memory"):
                why = "over the memory bound"
            stop = f"{why} at {clips} clips"
    row["growth_exponent"] = bl.exponent(row["scaling"])
    return row


def _predicted_s(model: str, done: list[dict[str, Any]], clips: int) -> float:
    """A lower-bound guess of the next point's seconds from the last one (linear, or N^2 for quadratic models)."""
    if not done or "ms" not in done[-1]:
        return 0.0
    power = 2.0 if model in bl.QUADRATIC else 1.0
    return done[-1]["ms"] / 1e3 * (clips / done[-1]["clips"]) ** power


def _mb(v: Optional[float]) -> str:
    if v is None:
        return "—"
    return f"{v / 1024:.1f} GB" if v >= 1024 else f"{v:.0f} MB"


def _ms(v: float) -> str:
    return f"{v / 1e3:.1f} s" if v >= 1e4 else f"{v:.0f} ms" if v >= 10 else f"{v:.1f} ms"


def _cell(r: dict[str, Any], memory: bool = True) -> str:
    """One table cell: time (and peak memory), or why there is none."""
    if "skipped" in r:
        if r["skipped"].startswith("quadratic"):
            return "quadratic by design"
        return "predicted > limit" if r["skipped"].startswith("predicted") else "skipped"
    if "error" in r:
        if r.get("timeout"):
            return r["error"].replace("stopped after", ">")
        if r.get("memory"):
            return "over memory bound"
        return "error"
    if "ms" not in r:
        return "—"
    text = _ms(r["ms"])
    return f"{text} / {_mb(r.get('peak_mb'))}" if memory else text


def _batch(b: dict[str, Any]) -> str:
    q = b["queries_per_video"]
    pairs = f"{b['videos']} x {q}" if q > 1 else f"{b['pairs']}"
    paper = f" (paper {b['paper_videos']}{' x ' + str(q) if q > 1 else ''})" if b["scaled"] else ""
    return f"{pairs}{paper} x {b['clips']} x {b['feature_dim']}"


def markdown(result: dict[str, Any]) -> str:
    """The two tables (and their notes) as Markdown."""
    m, s, rows = result["machine"], result["settings"], result["models"]
    dev = m.get("gpu") or f"{m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads"
    flags = ", ".join(f for f, on in (("bf16 autocast", m["bf16"]), ("torch.compile", m["compile"])) if on) or "fp32, eager"
    if m["device"].startswith("cuda") and not m["bf16"]:
        flags += f"; fp32 matrix products at precision {m.get('matmul_precision', 'highest')} (high: TF32)"
    load = f" Load average at the start: {m['load_average'][0]:g} (other processes share the machine)." if m.get("load_average") else ""
    lines = [f"Device: {m['device']} ({dev}); torch {m['torch']}; {flags}.{load}"]
    if s["quick"]:
        lines.append(f"--quick: training batches cut to at most {s['quick_pairs']} query-video pairs "
                     "(paper batch in brackets); fewer repeats.")
    lines += ["", f"Times are medians after warm-up (at most {s['repeats']} runs or {s['budget_s']:g} s per point; "
              f"a run over {s['point_limit_s']:g} s stops its scaling row). "
              "Peak memory: " + ("torch.cuda.max_memory_allocated" if m["device"].startswith("cuda")
                                 else "growth of ru_maxrss of the measuring process over its size before the model was built") + ".",
              "",
              "| model | config | params | train batch (pairs x clips x dim) | train step / peak | 1 query / peak "
              f"| {s['queries']} queries on one video / peak | queries/s | {s['queries']} / 1 query |",
              "|---|---|---:|---|---:|---:|---:|---:|---:|"]
    notes: list[str] = []
    for name, r in rows.items():
        if r["status"] != "ok":
            lines.append(f"| {name} | {r['status']} | | | | | | | |")
            continue
        tp = r["throughput"]
        qps = f"{tp['qps']:.1f}" if "qps" in tp else "—"
        ratio = f"{tp['ms'] / tp['one_query_ms']:.1f}x" if tp.get("one_query_ms") else "—"
        params = f"{r['params'] / 1e6:.2f} M" if "params" in r else "—"
        lines.append(f"| {name} | {r['config']} | {params} | {_batch(r['batch'])} | {_cell(r['train'])} "
                     f"| {_cell(r['infer'])} | {_cell(tp)} | {qps} | {ratio} |")
        for kind in ("train", "infer", "throughput"):
            if "error" in r[kind] and not r[kind].get("timeout"):
                notes.append(f"{name} {kind}: {r[kind]['error']}")
        if tp.get("measured_queries", tp.get("queries")) != tp.get("queries"):
            notes.append(f"{name}: {tp['queries']}-query time extrapolated from the first {tp['measured_queries']} queries "
                         f"(the time budget ran out)")
        notes += [f"{name}: {n}" for n in r["batch"]["notes"]]
        if "flops" in r["train"]:
            notes.append(f"{name}: one training step is {r['train']['flops'] / 1e12:.3g} TFLOP (FlopCounterMode: matrix "
                         f"products and convolutions, forward and backward): {r['train']['tflop_per_s']:.1f} TFLOP/s")
    clips = s["scaling_clips"]
    if not clips:
        if notes:
            lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
        return "\n".join(lines) + "\n"
    lines += ["", "Inference of one query (forward + top-5 decode) against the clips of one video, time / peak memory:", "",
              "| model | " + " | ".join(f"{c:,}" for c in clips) + " | time ~ clips^k |",
              "|---|" + "---:|" * len(clips) + "---:|"]
    for name, r in rows.items():
        if r["status"] != "ok":
            continue
        cells = []
        for p in r["scaling"]:
            cell = _cell(p)
            if p.get("note") and "ms" in p:
                cell += f" ({p['note']})"
            cells.append(cell)
            if "error" in p and not p.get("timeout") and not p.get("memory"):
                notes.append(f"{name} at {p['clips']} clips: {p['error']}")
        k = r.get("growth_exponent")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'—' if k is None else f'{k:.1f}'} |")
        stops = [p["skipped"] for p in r["scaling"] if "skipped" in p and not p["skipped"].startswith("after:")]
        if stops:
            notes.append(f"{name}: rest of the row skipped: {stops[0]}")
    if "tan2d" in rows:
        notes.append("tan2d: the map size N grows with the video at the config's clips per cell; its cost grows as N^2.")
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def parse(argv: Optional[list[str]] = None) -> tuple[argparse.Namespace, bl.Options]:
    """Command-line flags -> Options."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", help="model names (default: every registered model)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    ap.add_argument("--dataset", default="charades_sta", choices=list(bl.DATASETS), help="which paper config to prefer")
    ap.add_argument("--quick", action="store_true", help="small training batches and few repeats (CPU)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast around forward, loss and decode")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model's forward")
    ap.add_argument("--repeats", type=int, help="timed runs per point (default 10, 3 with --quick)")
    ap.add_argument("--limit", type=float, default=30.0, help="seconds of one run that stop the rest of its scaling row")
    ap.add_argument("--budget", type=float, help="seconds spent repeating one point (default 60, 10 with --quick)")
    ap.add_argument("--mem-bound-gb", type=float, help="memory bound of one point (default 4 on CPU, the GPU's size on cuda)")
    ap.add_argument("--clips", type=int, nargs="*", help="clip counts of the scaling table")
    ap.add_argument("--no-scaling", action="store_true", help="skip the scaling table")
    ap.add_argument("--flops", action="store_true", help="count the training step's FLOPs and report TFLOP/s")
    ap.add_argument("--matmul-precision", choices=["highest", "high"],
                    help="fp32 matrix products: high = TF32 on a GPU, highest = IEEE fp32 (default: each config's train.matmul_precision)")
    ap.add_argument("--train-clips", type=int, help="clips of the training / 1-query / throughput video (default: the config's)")
    ap.add_argument("--pairs", type=int, help="query-video pairs of the training batch (default: the config's)")
    ap.add_argument("--query-batch", type=int, default=bl.Options.query_batch, help="queries per Predictor batch in the throughput row")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's; 1 is steadier on a shared machine)")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--md", type=Path, help="write the Markdown tables here")
    a = ap.parse_args(argv)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is visible")
    bound = a.mem_bound_gb
    if bound is None:
        bound = 4.0 if a.device == "cpu" else 0.9 * torch.cuda.get_device_properties(torch.device(a.device)).total_memory / 2**30
    opts = bl.Options(device=a.device, bf16=a.bf16, compile=a.compile, quick=a.quick, dataset=a.dataset,
                      warmup=1 if a.quick else 2, repeats=a.repeats or (3 if a.quick else 10),
                      point_limit_s=a.limit, budget_s=a.budget or (10.0 if a.quick else 60.0), mem_bound_gb=bound,
                      threads=a.threads, clips=a.train_clips, pairs=a.pairs, flops=a.flops, query_batch=a.query_batch,
                      matmul_precision=a.matmul_precision)
    if a.clips:
        opts.scaling_clips = tuple(a.clips)
    if a.no_scaling:
        opts.scaling_clips = ()
    return a, opts


def run(names: list[str], failed: dict[str, str], opts: bl.Options, log: Any = print,
        on_row: Optional[Callable[[dict[str, Any]], None]] = None) -> dict[str, Any]:
    """Measure every model; import failures become rows of their own. ``on_row`` sees the result after each model."""
    settings = {k: v for k, v in vars(opts).items() if k not in ("isolate",)}
    settings["scaling_clips"] = list(opts.scaling_clips)
    result: dict[str, Any] = {"machine": machine(opts), "settings": settings, "models": {}}
    for name in sorted(set(names) | set(failed)):
        if name in failed:
            result["models"][name] = {"status": f"import failed: {failed[name]}"}
            log(f"{name}: import failed: {failed[name]}")
            continue
        log(f"{name}:")
        result["models"][name] = measure_model(name, opts, log)
        if on_row:
            on_row(result)
    return result


def main(argv: Optional[list[str]] = None) -> None:
    """Run the suite and print (and optionally write) its tables."""
    args, opts = parse(argv)
    names, failed = discover(args.models)
    start = time.perf_counter()

    def save(result: dict[str, Any]) -> None:  # after every model, so a stopped run keeps what it measured
        result["seconds"] = round(time.perf_counter() - start, 1)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
        if args.md:
            args.md.parent.mkdir(parents=True, exist_ok=True)
            args.md.write_text(markdown(result))

    result = run(names, failed, opts, on_row=save)
    save(result)
    print()
    print(markdown(result))
    print(f"({result['seconds']:.0f} s in all)")


if __name__ == "__main__":
    main()
