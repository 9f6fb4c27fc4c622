"""Bounded load test of the demo server on loopback: latency, throughput, errors and server memory.

The server runs in a process of its own (so its memory is its own) on 127.0.0.1 only, over a few synthetic
colour videos and a small untrained span model on tiny-encoder features (or ``--checkpoint`` and
``--videos`` of your own). Concurrent httpx clients send a fixed number of requests to /api/localize and
/api/videos, then the server is stopped: the run ends by itself.

    python benchmarks/server_load.py                      # 32 clients, 400 requests
    python benchmarks/server_load.py --clients 8 --requests 100 --json load.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

HOST = "127.0.0.1"  # loopback only: the benchmark never listens on or calls any other address
QUERIES = ("the screen turns red", "a green picture appears", "everything is blue for a while",
           "the screen turns yellow", "a white picture appears")
SENTENCES = [q + "." for q in QUERIES]


# ---- server side (a child process) ---------------------------------------------------------------------------


def _small_predictor():
    """An untrained span model over tiny-encoder features at 2 fps: the whole request path, no training needed."""
    import torch

    from momentloc.config import validate
    from momentloc.data.text import build_hashed
    from momentloc.models.base import InputSpec
    from momentloc.models.build import build_model
    from momentloc.predict import Predictor
    from momentloc.video import TinyEncoder

    cfg = validate({"data": {"dataset": "activitynet", "feature_dim": 32, "text": {"kind": "hash", "dim": 24}},
                    "model": {"name": "span", "params": {"hidden": 32}}})
    vocab = build_hashed(SENTENCES, 24)
    torch.manual_seed(0)
    model = build_model(cfg, InputSpec(video_dim=32, text_dim=24, vocab_size=len(vocab), num_clips=None))
    enc = TinyEncoder()
    return Predictor.from_model(model, vocab, cfg, feature_spec=enc.spec(2.0), encoder=enc)


def serve(port: int, videos: Path, checkpoint: Optional[Path]) -> None:
    """Build the predictor and the app, and serve on loopback until terminated."""
    from momentloc.predict import Predictor
    from momentloc.server.app import create_app, run_app

    predictor = Predictor.from_checkpoint(checkpoint, device="cpu") if checkpoint else _small_predictor()
    run_app(create_app(predictor, videos), host=HOST, port=port, log_level="warning")


# ---- client side ---------------------------------------------------------------------------------------------


def write_videos(folder: Path, n: int) -> list[str]:
    """``n`` short colour videos (6-9 s, 160x120) to serve."""
    from momentloc.video import COLOURS, write_synthetic_video

    names = list(COLOURS)
    out = []
    for i in range(n):
        segments = [(names[(i + j) % len(names)], 2.0 + (i + j) % 2) for j in range(3)]
        path = folder / f"clip_{i}.webm"
        write_synthetic_video(path, segments, fps=10, size=(160, 120))
        out.append(path.name)
    return out


def free_port() -> int:
    """A TCP port that is free on loopback right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> dict[str, float]:
    """Resident memory of a process now and at its peak, in MiB (Linux /proc; empty elsewhere)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return {"rss": values.get("VmRSS", float("nan")), "peak": values.get("VmHWM", float("nan"))}


@dataclass
class Tally:
    """Latencies (s) and failures of one endpoint."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def row(self, name: str) -> dict[str, object]:
        """Count, errors and latency percentiles in ms."""
        lat = sorted(self.latencies)

        def pct(q: float) -> float:
            return 1000 * lat[min(len(lat) - 1, int(round(q * (len(lat) - 1))))] if lat else float("nan")

        return {"endpoint": name, "requests": len(lat) + len(self.errors), "errors": len(self.errors),
                "p50_ms": pct(0.50), "p95_ms": pct(0.95), "max_ms": 1000 * lat[-1] if lat else float("nan"),
                "mean_ms": 1000 * statistics.fmean(lat) if lat else float("nan")}


async def wait_ready(client, timeout: float) -> None:
    """Poll /api/health until the server answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if (await client.get("/api/health")).status_code == 200:
                return
        except Exception:  # not listening yet
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server did not answer /api/health within {timeout:.0f} s")
        await asyncio.sleep(0.2)


async def one(client, job: tuple[str, dict], tallies: dict[str, Tally]) -> None:
    """Send one request and record its latency, or why it failed."""
    kind, body = job
    start = time.perf_counter()
    try:
        if kind == "localize":
            r = await client.post("/api/localize", json=body)
            ok = r.status_code == 200 and len(r.json()["moments"]) == body["top_k"]
        else:
            r = await client.get("/api/videos")
            ok = r.status_code == 200 and len(r.json()["videos"]) > 0
        if ok:
            tallies[kind].latencies.append(time.perf_counter() - start)
        else:
            tallies[kind].errors.append(f"HTTP {r.status_code}: {r.text[:120]}")
    except Exception as err:  # a dropped connection or a timeout is an error of the run, not a crash of it
        tallies[kind].errors.append(f"{type(err).__name__}: {err}"[:160])


def jobs(n: int, videos: list[str], localize_share: float) -> list[tuple[str, dict]]:
    """A fixed, interleaved mix of localize and list requests."""
    out = []
    for i in range(n):
        if int((i + 1) * localize_share) > int(i * localize_share):  # spreads the share evenly over the run
            out.append(("localize", {"video": videos[i % len(videos)], "query": QUERIES[i % len(QUERIES)], "top_k": 5}))
        else:
            out.append(("videos", {}))
    return out


async def load(port: int, videos: list[str], clients: int, requests: int, localize_share: float,
               timeout: float) -> dict[str, object]:
    """Warm up (one encode per video), then ``requests`` requests from ``clients`` concurrent clients."""
    import httpx

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", limits=limits, timeout=timeout) as client:
        await wait_ready(client, 180.0)
        warm = {"localize": Tally(), "videos": Tally()}
        for name in videos:  # the first query on a video decodes and encodes it; later ones hit the cache
            await one(client, ("localize", {"video": name, "query": QUERIES[0], "top_k": 5}), warm)
        queue: asyncio.Queue = asyncio.Queue()
        for job in jobs(requests, videos, localize_share):
            queue.put_nowait(job)
        tallies = {"localize": Tally(), "videos": Tally()}

        async def worker() -> None:
            while not queue.empty():
                await one(client, queue.get_nowait(), tallies)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = time.perf_counter() - start
    done = sum(len(t.latencies) + len(t.errors) for t in tallies.values())
    return {"seconds": seconds, "requests_per_s": done / seconds, "rows": [t.row(k) for k, t in tallies.items()],
            "warmup": warm["localize"].row("localize (first, encodes the video)"),
            "error_samples": [e for t in tallies.values() for e in t.errors[:3]]}


def stop(proc: subprocess.Popen) -> None:
    """Ask the server to stop; kill it if it does not within 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def report(result: dict[str, object], mem: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    """A Markdown table of the run."""
    lines = [f"{args.clients} concurrent clients, {args.requests} requests "
             f"({args.localize_share:.0%} /api/localize), {len(result['videos'])} videos, 127.0.0.1",
             "",
             "| endpoint | requests | errors | p50 ms | p95 ms | max ms |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in [*result["rows"], result["warmup"]]:
        lines.append(f"| {row['endpoint']} | {row['requests']} | {row['errors']} | {row['p50_ms']:.1f} | "
                     f"{row['p95_ms']:.1f} | {row['max_ms']:.1f} |")
    lines += ["", f"throughput: {result['requests_per_s']:.1f} requests/s over {result['seconds']:.1f} s",
              f"server RSS: {mem['before'].get('rss', float('nan')):.0f} MiB before, "
              f"{mem['after'].get('rss', float('nan')):.0f} MiB after, peak {mem['after'].get('peak', float('nan')):.0f} MiB"]
    for sample in result["error_samples"]:
        lines.append(f"error: {sample}")
    return "\n".join(lines)


def main() -> None:
    """Parse options; run the server child or the whole benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--localize-share", type=float, default=0.75, help="Fraction of requests to /api/localize.")
    ap.add_argument("--videos", type=Path, help="Folder of videos to serve (default: write 3 synthetic ones).")
    ap.add_argument("--checkpoint", type=Path, help="A checkpoint with a feature spec (default: a small untrained model).")
    ap.add_argument("--timeout", type=float, default=60.0, help="Per-request timeout, seconds.")
    ap.add_argument("--json", type=Path, help="Also write the numbers here.")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the server child
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.port, args.videos, args.checkpoint)
        return
    with tempfile.TemporaryDirectory(prefix="momentloc-load-") as tmp:
        folder = args.videos or Path(tmp)
        from momentloc.video import list_videos

        names = [p.relative_to(folder).as_posix() for p in list_videos(folder)] if args.videos else write_videos(folder, 3)
        port = free_port()
        cmd = [sys.executable, __file__, "--serve", "--port", str(port), "--videos", str(folder)]
        if args.checkpoint:
            cmd += ["--checkpoint", str(args.checkpoint)]
        proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            mem = {}
            asyncio.run(_ready_only(port))
            mem["before"] = rss_mb(proc.pid)
            result = asyncio.run(load(port, names, args.clients, args.requests, args.localize_share, args.timeout))
            mem["after"] = rss_mb(proc.pid)
        finally:
            stop(proc)
    result["videos"] = names
    print(report(result, mem, args))
    if args.json:
        args.json.write_text(json.dumps({**result, "memory_mib": mem, "options": {k: str(v) for k, v in vars(args).items()}},
                                        indent=1, default=float))


async def _ready_only(port: int) -> None:
    """Wait until the server answers (so 'before' memory is of a started, idle server)."""
    import httpx

    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=5.0) as client:
        await wait_ready(client, 180.0)


if __name__ == "__main__":
    main()
