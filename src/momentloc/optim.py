"""The optimiser and learning-rate schedule of a run: parameter groups (lr factors, weight-decay exemptions) and schedules."""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

import torch

from momentloc.config import OptimConfig
from momentloc.errors import ConfigError
from momentloc.metrics.protocol import MOMENTS

NamedParams = Iterable[tuple[str, torch.nn.Parameter]]


def decay_exempt(name: str, param: torch.Tensor, names: Sequence[str] = ()) -> bool:
    """Whether ``optim.no_decay`` exempts a parameter: a bias, any 1-D (or scalar) parameter — norm
    weights, scales — or a name containing one of ``names``."""
    return name.endswith("bias") or param.ndim <= 1 or any(n in name for n in names)


def lr_factor(multipliers: dict[str, float], name: str) -> float:
    """The ``optim.lr_multipliers`` factor of a parameter: its longest matching name prefix's, else 1."""
    hits = [prefix for prefix in multipliers if _under(name, prefix)]
    return multipliers[max(hits, key=len)] if hits else 1.0


def _under(name: str, prefix: str) -> bool:
    """``name`` is ``prefix`` or lies under it (prefixes end at a dot: "model.text" is not under "model.te")."""
    return name == prefix or name.startswith(prefix.rstrip(".") + ".")


def _check_prefixes(multipliers: dict[str, float], names: Sequence[str]) -> None:
    """A prefix of ``optim.lr_multipliers`` that matches no parameter is a config error."""
    for prefix in multipliers:
        if not any(_under(n, prefix) for n in names):
            tops = sorted({".".join(n.split(".")[:2]) for n in names})
            raise ConfigError(f"optim.lr_multipliers: prefix {prefix!r} matches no parameter "
                              f"(parameter names start with e.g. {', '.join(tops[:8])})")


def param_groups(cfg: OptimConfig, named: NamedParams) -> list[dict[str, Any]]:
    """Trainable parameters grouped by lr factor and weight decay (``optim.lr_multipliers``, ``optim.no_decay``)."""
    named = list(named)
    _check_prefixes(cfg.lr_multipliers, [n for n, _ in named])
    groups: dict[tuple[float, bool], list[torch.nn.Parameter]] = {}
    for name, param in named:
        if param.requires_grad:
            exempt = cfg.no_decay and decay_exempt(name, param, cfg.no_decay_names)
            groups.setdefault((lr_factor(cfg.lr_multipliers, name), exempt), []).append(param)
    return [{"params": ps, "lr": cfg.lr * factor, "weight_decay": 0.0 if exempt else cfg.weight_decay}
            for (factor, exempt), ps in groups.items()]


def schedule_factor(cfg: OptimConfig, epochs: int, steps_per_epoch: int = 1) -> Callable[[int], float]:
    """The lr factor of the ``cosine``, ``warmup_cosine`` and ``warmup_constant`` schedules, per epoch or,
    with ``schedule_interval: step``, per optimiser step (``steps_per_epoch`` of them in an epoch).

    Warm-up: epoch ``e < warmup_epochs`` gets ``(e + 1) / (warmup_epochs + 1)``; then ``warmup_constant``
    keeps 1 and the cosine ones decay from 1 to 0 over the remaining epochs (in steps when per step).
    """
    per = steps_per_epoch if cfg.schedule_interval == "step" else 1
    epochs = epochs * per
    warm = (cfg.warmup_epochs if cfg.scheduler in ("warmup_cosine", "warmup_constant") else 0.0) * per
    constant = cfg.scheduler == "warmup_constant"

    def factor(epoch: int) -> float:
        if epoch < warm:
            return (epoch + 1) / (warm + 1)
        if constant:
            return 1.0
        span = max(1.0, epochs - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (epoch - warm) / span)))

    return factor


def make_optimizer(
    cfg: OptimConfig, named: NamedParams, epochs: int, monitor: str = MOMENTS.monitor_key, steps_per_epoch: int = 1
) -> Any:
    """The configured optimiser and (per-epoch) learning-rate schedule over ``named_parameters()``."""
    named = list(named)
    params: Any = [p for _, p in named if p.requires_grad]
    if cfg.no_decay or cfg.lr_multipliers:
        params = param_groups(cfg, named)
    if cfg.name == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    elif cfg.name == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.scheduler == "none":
        return opt
    if cfg.scheduler == "plateau":
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=cfg.gamma, patience=cfg.patience)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": plateau, "monitor": monitor, "interval": "epoch"}}
    if cfg.scheduler == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, cfg.step_size, cfg.gamma)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule_factor(cfg, epochs, steps_per_epoch))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": cfg.schedule_interval}}
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
