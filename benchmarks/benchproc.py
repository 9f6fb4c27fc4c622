"""One measurement per process: its own peak memory, a memory cap, and a kill after a time limit.

On a CPU the peak is the growth of ``ru_maxrss`` over the process's size
before the model was built (tracemalloc does not see torch's allocator); on a
GPU it is ``torch.cuda.max_memory_allocated``. Children come from a fork
server that never ran a torch operation, which is safe with OpenMP and CUDA
and costs a fraction of a second per child.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch

import benchlib as bl

MB = 2**20

KINDS: dict[str, Callable[..., dict[str, Any]]] = {
    "train": lambda model, cfg, shape, opts, clips=None: bl.train_step(model, cfg, shape, opts),
    "infer": bl.infer,
    "throughput": lambda model, cfg, shape, opts, clips=None: bl.throughput(model, cfg, shape, opts),
    "scale": bl.infer,  # one query on a video of ``clips`` clips, the config adapted to take it
}


@dataclass
class Job:
    """One measurement: which kind, which model and config (with overrides), at which shape."""

    kind: str
    model: str
    config: Optional[str]
    overrides: list[str]
    shape: bl.Shape
    opts: bl.Options
    clips: Optional[int] = None


def _statm(field: int) -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[field]) * os.sysconf("SC_PAGE_SIZE")


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _touch() -> None:
    """Page in torch's common code paths (autograd, optimiser) so that the baseline does not count them."""
    lin = torch.nn.Linear(64, 64)
    opt = torch.optim.AdamW(lin.parameters())
    lin(torch.randn(8, 64)).relu().sum().backward()
    opt.step()


def _limit_memory(bound_gb: float) -> None:
    """Cap the address space so that an oversized point fails fast instead of pushing others into swap."""
    cap = _statm(0) + int(bound_gb * 2**30)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or cap < hard:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _is_oom(err: BaseException) -> bool:
    msg = str(err).lower()
    return isinstance(err, MemoryError) or "out of memory" in msg or "can't allocate" in msg


def execute(job: Job, limit_memory: bool = False) -> dict[str, Any]:
    """Run one job in this process; its result carries ``peak_mb``, or ``error`` saying why there is none."""
    opts = job.opts
    if opts.threads:
        torch.set_num_threads(opts.threads)
    cuda = opts.device.startswith("cuda")
    cfg = bl.load(Path(job.config) if job.config else None, job.model, job.overrides)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        _touch()
        base = max(_maxrss_mb(), _statm(1) / MB)
        if limit_memory:
            _limit_memory(opts.mem_bound_gb)
    try:
        res = KINDS[job.kind](job.model, cfg, job.shape, opts, clips=job.clips)
    except Exception as err:  # a model's failure is a table cell, not the end of the suite
        if _is_oom(err):
            return {"error": f"over the {opts.mem_bound_gb:g} GB memory bound", "memory": True}
        first = str(err).splitlines()[0][:200] if str(err) else ""
        return {"error": f"{type(err).__name__}: {first}"}
    peak = (torch.cuda.max_memory_allocated() - base) / MB if cuda else _maxrss_mb() - base
    res["peak_mb"] = max(0.0, peak)
    return res


def _child(job: Job, conn: Any) -> None:
    try:
        conn.send(execute(job, limit_memory=not job.opts.device.startswith("cuda")))
    except BaseException as err:  # the parent must hear back whatever happened
        conn.send({"error": f"{type(err).__name__}: {err}"[:200], "memory": _is_oom(err)})
    finally:
        conn.close()


_CTX: Optional[Any] = None


def _context() -> Any:
    global _CTX
    if _CTX is None:
        methods = mp.get_all_start_methods()
        _CTX = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            _CTX.set_forkserver_preload(["torch", "torch._dynamo", "momentloc.models.build", "momentloc.predict", "benchlib", "benchproc"])
    return _CTX


def run_isolated(job: Job, timeout_s: float) -> dict[str, Any]:
    """Run ``job`` in a fresh process; after ``timeout_s`` kill it and report a stop, not a crash."""
    if not job.opts.isolate:
        return execute(job)
    ctx = _context()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(job, send), daemon=True)
    start = time.perf_counter()
    proc.start()
    send.close()
    result: Optional[dict[str, Any]] = None
    if recv.poll(timeout_s):
        try:
            result = recv.recv()
        except EOFError:
            result = None
    proc.join(5.0)
    if proc.is_alive():
        proc.kill()
        proc.join()
    recv.close()
    if result is None:
        if time.perf_counter() - start >= timeout_s:
            return {"error": f"stopped after {timeout_s:.0f} s", "timeout": True}
        # Killed by the kernel's out-of-memory killer, or a crash in native code.
        return {"error": f"process died (exit {proc.exitcode})", "memory": proc.exitcode == -9}
    return result
