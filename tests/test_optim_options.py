"""Opt-in training options: warm-up + constant schedule, no-decay groups, lr multipliers, weight average (EMA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import CONFIGS
from conftest import tiny_overrides
from torch import nn

from momentloc.checkpoint import EMA_KEY, atomic_save, load_checkpoint
from momentloc.config import OptimConfig, load_config
from momentloc.data.text import Vocabulary
from momentloc.errors import ConfigError
from momentloc.models.base import InputSpec
from momentloc.ema import WeightAverage
from momentloc.eval_run import evaluate_checkpoint
from momentloc.optim import make_optimizer, param_groups, schedule_factor
from momentloc.restore import module_from_checkpoint
from momentloc.training import GroundingModule, train


class Tiny(nn.Module):
    """Named like a LightningModule's parameters: ``model.<part>.<param>``."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Module()
        self.model.text_net = nn.Linear(3, 4)
        self.model.text_netx = nn.Linear(4, 4, bias=False)
        self.model.norm = nn.LayerNorm(4)
        self.model.conv = nn.Conv1d(4, 4, 3, bias=False)
        self.model.scale = nn.Parameter(torch.ones(4))
        self.model.token = nn.Parameter(torch.zeros(1, 1, 4))
        self.model.pos_embed = nn.Parameter(torch.zeros(5, 4))
        self.model.frozen = nn.Parameter(torch.zeros(2, 2), requires_grad=False)


def _names(module: nn.Module, groups: list[dict]) -> list[tuple[set[str], float, float]]:
    """Each group as (parameter names, lr, weight decay)."""
    by_id = {id(p): n for n, p in module.named_parameters()}
    return [({by_id[id(p)] for p in g["params"]}, g["lr"], g["weight_decay"]) for g in groups]


# --------------------------------------------------------------------------- schedule
def test_warmup_constant_factors_by_hand() -> None:
    f = schedule_factor(OptimConfig(scheduler="warmup_constant", warmup_epochs=5), epochs=15)
    assert [f(e) for e in range(9)] == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1, 1, 1, 1])
    # the existing schedules keep their factors
    cos = schedule_factor(OptimConfig(scheduler="warmup_cosine", warmup_epochs=1), epochs=3)
    assert [cos(e) for e in range(3)] == pytest.approx([0.5, 1.0, 0.5])


def test_warmup_constant_sets_the_optimizer_rate_per_epoch() -> None:
    cfg = OptimConfig(lr=0.6, scheduler="warmup_constant", warmup_epochs=2)
    out = make_optimizer(cfg, nn.Linear(2, 2).named_parameters(), epochs=6)
    opt, sched = out["optimizer"], out["lr_scheduler"]["scheduler"]
    assert out["lr_scheduler"]["interval"] == "epoch"
    rates = []
    for _ in range(5):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates == pytest.approx([0.2, 0.4, 0.6, 0.6, 0.6])


# --------------------------------------------------------------------------- param groups
def test_default_is_one_group_as_before() -> None:
    m = Tiny()
    opt = make_optimizer(OptimConfig(weight_decay=0.1), m.named_parameters(), epochs=3)
    assert len(opt.param_groups) == 1
    assert opt.param_groups[0]["params"] == [p for p in m.parameters() if p.requires_grad]
    assert opt.param_groups[0]["weight_decay"] == 0.1


def test_no_decay_groups_biases_norms_and_scales() -> None:
    m = Tiny()
    groups = _names(m, param_groups(OptimConfig(lr=1.0, weight_decay=0.1, no_decay=True), m.named_parameters()))
    decay = {"model.text_net.weight", "model.text_netx.weight", "model.conv.weight", "model.token", "model.pos_embed"}
    exempt = {"model.text_net.bias", "model.norm.weight", "model.norm.bias", "model.scale"}
    assert sorted(groups, key=lambda g: -g[2]) == [(decay, 1.0, 0.1), (exempt, 1.0, 0.0)]
    # names listed in no_decay_names join the exempt group; frozen parameters are in no group
    named = param_groups(OptimConfig(weight_decay=0.1, no_decay=True, no_decay_names=["pos_embed", "token"]),
                         m.named_parameters())
    by_decay = {wd: names for names, _, wd in _names(m, named)}
    assert by_decay[0.0] == exempt | {"model.pos_embed", "model.token"}
    assert "model.frozen" not in by_decay[0.1] | by_decay[0.0]


def test_lr_multipliers_by_longest_prefix() -> None:
    m = Tiny()
    cfg = OptimConfig(lr=1.0, weight_decay=0.1, no_decay=True, lr_multipliers={"model": 0.5, "model.text_net": 0.1})
    groups = _names(m, param_groups(cfg, m.named_parameters()))
    assert ({"model.text_net.weight"}, 0.1, 0.1) in groups
    assert ({"model.text_net.bias"}, 0.1, 0.0) in groups
    # "model.text_netx" is not under "model.text_net": it takes the "model" factor
    assert ({"model.text_netx.weight", "model.conv.weight", "model.token", "model.pos_embed"}, 0.5, 0.1) in groups
    assert ({"model.norm.weight", "model.norm.bias", "model.scale"}, 0.5, 0.0) in groups
    assert len(groups) == 4
    opt = make_optimizer(cfg, m.named_parameters(), epochs=3)
    assert sorted(g["lr"] for g in opt.param_groups) == pytest.approx([0.1, 0.1, 0.5, 0.5])


def test_unknown_lr_prefix_is_a_config_error() -> None:
    m = Tiny()
    with pytest.raises(ConfigError, match=r"optim.lr_multipliers: prefix 'model.txt' matches no parameter"):
        make_optimizer(OptimConfig(lr_multipliers={"model.txt": 0.1}), m.named_parameters(), epochs=3)
    with pytest.raises(ConfigError, match="'model.text_ne'"):  # prefixes end at a dot
        param_groups(OptimConfig(lr_multipliers={"model.text_ne": 0.1}), m.named_parameters())
    with pytest.raises(ConfigError, match="lr_multipliers"):
        load_config(CONFIGS / "span_synthetic_ci.yaml", ["optim.lr_multipliers={model: -1}"])


def _snag_module(name: str) -> GroundingModule:
    cfg = load_config(CONFIGS / f"{name}.yaml")
    vocab = Vocabulary(["<pad>", "<unk>"], np.zeros((2, 300), dtype=np.float32))
    spec = InputSpec(video_dim=cfg.data.feature_dim, text_dim=300, vocab_size=2, num_clips=cfg.data.num_clips)
    return GroundingModule(cfg, spec, vocab)


@pytest.mark.parametrize("name", ["snag_activitynet", "snag_msc_activitynet"])
def test_snag_activitynet_config_lowers_the_text_encoder_rate(name: str) -> None:
    module = _snag_module(name)
    out = module.configure_optimizers()
    opt = out["optimizer"]
    names = {id(p): n for n, p in module.named_parameters()}
    for group in opt.param_groups:
        text = {names[id(p)].startswith("model.text_net.") for p in group["params"]}
        assert len(text) == 1, "a group mixes text-encoder and other parameters"
        assert group["initial_lr"] == pytest.approx(2e-4 if text.pop() else 2e-3)
        assert group["weight_decay"] in (0.0, 0.05)
    exempt = {names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    assert "model.reg_scales" in exempt and "model.fusion_norm.weight" in exempt
    assert "model.text_net.layers.0.ls_attn.scale" in exempt and "model.text_net.proj.bias" in exempt
    assert "model.text_net.proj.weight" not in exempt
    assert module.cfg.train.ema_decay == 0.999
    assert out["lr_scheduler"]["scheduler"].lr_lambdas[0](5) == 1.0


def test_synthetic_snag_configs_take_only_the_release_decay_exemptions() -> None:
    for name in ("snag_synthetic_ci", "snag_msc_synthetic_ci"):
        cfg = load_config(CONFIGS / f"{name}.yaml")
        assert cfg.optim.no_decay and not cfg.optim.lr_multipliers and cfg.train.ema_decay is None


# --------------------------------------------------------------------------- weight average
def test_weight_average_by_hand() -> None:
    lin = nn.Linear(1, 1, bias=False)
    avg = WeightAverage(0.5)
    with torch.no_grad():
        lin.weight.fill_(2.0)
        avg.reset(lin)
        lin.weight.fill_(4.0)
        avg.update(lin)  # 0.5 * 2 + 0.5 * 4
        assert avg.values["weight"].item() == 3.0
        lin.weight.fill_(8.0)
        avg.update(lin)  # 0.5 * 3 + 0.5 * 8
        assert avg.values["weight"].item() == 5.5
    avg.swap(lin)
    assert lin.weight.item() == 5.5 and avg.values["weight"].item() == 8.0
    avg.swap(lin)
    assert lin.weight.item() == 8.0 and avg.values["weight"].item() == 5.5


def _tiny(tiny_synth: Path, out: Path, *extra: str) -> list[str]:
    return tiny_overrides(tiny_synth, out) + list(extra)


def test_one_step_average_by_hand(tiny_synth: Path, tmp_path: Path) -> None:
    # One optimiser step (the whole train split in one batch): average = 0.5 * w0 + 0.5 * w1.
    base = _tiny(tiny_synth, tmp_path, "train.epochs=1", "train.batch_size=100000", "train.ema_decay=0.5")
    still = train(load_config(CONFIGS / "span_synthetic_ci.yaml", base + ["name=still", "optim.lr=0"]))
    moved = train(load_config(CONFIGS / "span_synthetic_ci.yaml", base + ["name=moved"]))
    w0 = load_checkpoint(still.checkpoint)["state_dict"]
    ckpt = load_checkpoint(moved.checkpoint)
    w1, avg = ckpt["state_dict"], ckpt[EMA_KEY]
    assert set(avg) == {n for n, p in module_from_checkpoint(moved.checkpoint).named_parameters() if p.requires_grad}
    assert any(not torch.equal(w0[k], w1[k]) for k in avg)
    for k in avg:
        torch.testing.assert_close(avg[k], 0.5 * w0[k] + 0.5 * w1[k], msg=k)


def test_validation_and_evaluation_use_the_average(tiny_synth: Path, tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "span_synthetic_ci.yaml",
                      _tiny(tiny_synth, tmp_path, "train.epochs=3", "train.batch_size=16", "train.ema_decay=0.99"))
    result = train(cfg)
    ckpt = load_checkpoint(result.checkpoint)
    raw, avg = ckpt["state_dict"], ckpt[EMA_KEY]
    assert any(not torch.equal(raw[k], avg[k]) for k in avg)
    # loading a checkpoint gives the averaged weights, everything else as stored
    loaded = module_from_checkpoint(result.checkpoint).state_dict()
    for k, v in loaded.items():
        torch.testing.assert_close(v, avg.get(k, raw[k]), msg=k)
    from momentloc.predict import Predictor

    model = Predictor.from_checkpoint(result.checkpoint, device="cpu").model
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v.cpu(), avg.get(f"model.{k}", raw[f"model.{k}"]), msg=k)
    # the last validation (the returned metrics) equals evaluating the averaged weights ...
    over = [f"train.out_dir={tmp_path}"]
    with_avg, preds_avg, _ = evaluate_checkpoint(result.checkpoint, "val", over, breakdowns=False)
    assert with_avg == pytest.approx(result.metrics)
    # ... and differs from the raw weights' (decay 0.99: the average is still near the initial weights)
    bare = tmp_path / "raw.ckpt"
    atomic_save({k: v for k, v in ckpt.items() if k != EMA_KEY}, bare)
    without, preds_raw, _ = evaluate_checkpoint(bare, "val", over, breakdowns=False)
    assert without != pytest.approx(with_avg)
    assert [m.score for m in preds_raw[0]] != pytest.approx([m.score for m in preds_avg[0]])


def test_checkpoints_without_the_option_carry_no_average(tiny_synth: Path, tmp_path: Path) -> None:
    result = train(load_config(CONFIGS / "span_synthetic_ci.yaml", _tiny(tiny_synth, tmp_path, "train.epochs=1")))
    assert EMA_KEY not in load_checkpoint(result.checkpoint)


def test_resume_with_average_reaches_the_same_weights(tiny_synth: Path, tmp_path: Path) -> None:
    base = _tiny(tiny_synth, tmp_path, "train.epochs=2", "train.batch_size=16", "train.ema_decay=0.9",
                 "optim.no_decay=true", "optim.weight_decay=0.1", "optim.scheduler=warmup_constant",
                 "optim.warmup_epochs=1", "optim.lr_multipliers={model: 0.5}")
    straight = train(load_config(CONFIGS / "span_synthetic_ci.yaml", base + ["name=straight"]))
    first = train(load_config(CONFIGS / "span_synthetic_ci.yaml", base + ["name=split", "train.epochs=1"]))
    resumed = train(load_config(CONFIGS / "span_synthetic_ci.yaml", base + ["name=split"]), resume=str(first.checkpoint))
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    assert set(a[EMA_KEY]) == set(b[EMA_KEY])
    for part in ("state_dict", EMA_KEY):
        for k in a[part]:
            torch.testing.assert_close(a[part][k], b[part][k], rtol=0, atol=0, msg=f"{part} {k}")
    assert resumed.metrics == straight.metrics


@pytest.mark.parametrize("precision", ["highest", "high"])
def test_the_trainer_applies_the_matmul_precision(precision: str, tmp_path: Path) -> None:
    from momentloc.training import _trainer

    cfg = load_config(CONFIGS / "span_synthetic_ci.yaml", [f"train.matmul_precision={precision}", "train.progress=false"])
    before = torch.get_float32_matmul_precision()
    try:
        _trainer(cfg, tmp_path, [], logger=False)
        assert torch.get_float32_matmul_precision() == precision
    finally:
        torch.set_float32_matmul_precision(before)


def test_matmul_precision_rejects_what_changes_cpu_results() -> None:
    with pytest.raises(ConfigError, match="matmul_precision"):
        load_config(CONFIGS / "span_synthetic_ci.yaml", ["train.matmul_precision=medium"])
