"""Every model on a GPU against the same model on the CPU: outputs, losses, gradients and decoded moments.

Same weights, same random batch (each model's paper config, else its synthetic
one, at a small batch), eval mode throughout (no dropout, no stochastic depth),
so both devices compute the same function. Prints one line per model and
exits non-zero if any differs beyond fp32 tolerances (TF32 matrix products
are switched off so that the GPU computes in true fp32).

    python benchmarks/cuda_parity.py            # needs a CUDA device
    python benchmarks/cuda_parity.py --bf16     # also: bf16 autocast on the GPU, looser bounds
    python benchmarks/cuda_parity.py --models tan2d --dataset tacos --set model.params.hidden_size=64 --pairs 2
                                                # 2D-TAN's banded convolution (N = 128) at a small width
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import benchlib as bl  # noqa: E402


@contextlib.contextmanager
def _draws_on_cpu() -> Iterator[None]:
    """``torch.multinomial`` draws on the CPU's generator whatever the device of its weights."""
    original = torch.multinomial

    def on_cpu(weights: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return original(weights.detach().float().cpu(), *args, **kwargs).to(weights.device)

    torch.multinomial = on_cpu  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.multinomial = original  # type: ignore[assignment]


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    scale = max(float(a.abs().max()), 1e-6)
    return float((a - b).abs().max()) / scale


def compare(model: str, bf16: bool, pairs: int = 4, device: str = "cuda", dataset: str = "charades_sta",
            overrides: tuple[str, ...] = ()) -> dict[str, Any]:
    """Largest relative differences between the CPU and the GPU run of ``model``."""
    path, _ = bl.find_config(model, dataset)
    cfg = bl.load(path, model, list(overrides))
    opts = bl.Options(device="cpu")
    shape = bl.shape_for(cfg, bl.Options(pairs=pairs))
    cpu_net, _, _ = bl.build(model, cfg, opts)
    gpu_net = copy.deepcopy(cpu_net).to(device)
    batch = bl.make_batch(model, shape, shape.pairs, shape.clips, "cpu")
    gbatch = batch.to(device)
    auto = torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16)
    out: dict[str, Any] = {}
    with torch.no_grad():
        cpu_net.eval()
        gpu_net.eval()
        a = cpu_net(batch)
        with auto:
            b = gpu_net(gbatch)
        out["forward"] = max((_max_rel(a.tensors[k], b.tensors[k]) for k in a.tensors
                              if torch.is_tensor(a.tensors[k]) and a.tensors[k].is_floating_point()), default=0.0)
        top_a = [m[0] for m in cpu_net.decode(a, batch, 5) if m]
        with auto:
            top_b = [m[0] for m in gpu_net.decode(b, gbatch, 5) if m]
        dur = float(batch.duration.max())
        out["top1_s"] = max((max(abs(x.start - y.start), abs(x.end - y.end)) for x, y in zip(top_a, top_b)), default=0.0)
        out["top1_of_duration"] = out["top1_s"] / dur
    # Eval mode (no dropout, no stochastic depth) so that both devices compute the same function;
    # random draws of a loss (the weak models' negatives) come from the CPU's generator for both.
    # cuDNN is off for the GPU's loss: its RNN backward refuses eval mode.
    with _draws_on_cpu():
        torch.manual_seed(0)
        la = cpu_net.loss(cpu_net(batch), batch)["total"]
        torch.manual_seed(0)
        with auto, torch.backends.cudnn.flags(enabled=False):
            lb = gpu_net.loss(gpu_net(gbatch), gbatch)["total"]
            lb.backward()
    la.backward()
    out["loss"] = abs(la.item() - lb.item()) / max(abs(la.item()), 1e-6)
    grads = [(p.grad, q.grad) for p, q in zip(cpu_net.parameters(), gpu_net.parameters()) if p.grad is not None]
    num = sum(float((g.float() - h.float().cpu()).norm()) ** 2 for g, h in grads) ** 0.5
    den = sum(float(g.float().norm()) ** 2 for g, _ in grads) ** 0.5
    out["grad"] = num / max(den, 1e-12)
    return out


def main() -> None:
    """Compare every registered model; non-zero exit on a mismatch."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--device", default="cuda", help="the device compared with the CPU (cpu: a self-check of this script)")
    ap.add_argument("--dataset", default="charades_sta", choices=list(bl.DATASETS), help="which paper config to prefer")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override a.b=c (repeatable)")
    ap.add_argument("--pairs", type=int, default=4)
    a = ap.parse_args()
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("cuda_parity: no CUDA device is visible")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    from suite import discover

    names, failed = discover(a.models)
    bad = list(failed)
    for name in failed:
        print(f"{name:<8} import failed: {failed[name]}")
    for bf16 in ([False, True] if a.bf16 else [False]):
        # fp32: rounding-order differences only; bf16: 8-bit mantissa.
        tol = {"forward": 5e-2, "loss": 5e-2, "grad": 0.2, "top1_of_duration": 0.1} if bf16 else \
              {"forward": 1e-3, "loss": 1e-3, "grad": 1e-2, "top1_of_duration": 1e-3}
        for name in names:
            try:
                r = compare(name, bf16, a.pairs, a.device, a.dataset, tuple(a.overrides))
            except Exception as err:  # one model's failure is a line, not the end of the check
                print(f"{name:<8} {'bf16' if bf16 else 'fp32'} ERROR {type(err).__name__}: {err}")
                bad.append(name)
                continue
            ok = all(r[k] <= tol[k] for k in tol)
            bad += [] if ok else [name]
            print(f"{name:<8} {'bf16' if bf16 else 'fp32'} {'ok ' if ok else 'BAD'} "
                  + " ".join(f"{k}={v:.2e}" for k, v in r.items()))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
