"""A training step's forward and loss never read a tensor back to the host (on a GPU, each read waits for the
device): no ``.item()``, ``.tolist()``, ``.cpu()``, ``bool()`` / ``int()`` / ``float()`` of a tensor, boolean indexing or ``torch.unique`` from
momentloc's own code, given a batch as ``collate`` makes it (host-side lengths and video numbering)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from _models import ci_config_name, config_path

import momentloc
import momentloc.models
from momentloc.config import load_config
from momentloc.data.random_batch import random_batch
from momentloc.models.base import InputSpec
from momentloc.models.build import WeightedObjectives, build_model
from momentloc.registry import get_model_class, model_names

# Every registered model's CI config, and configs that switch on more: paper sizes, plug-in objectives.
MORE = ["tan2d_charades_sta", "snag_msc_synthetic_ci", "tan2d_sscs_synthetic_ci"]
ALL = [ci_config_name(name) for name in model_names()] + MORE
# The prior's training step counts windows into a histogram (torch.nonzero); it trains no weight.
READS_IN_TRAINING = {"prior_synthetic_ci"}


def _our_folders() -> tuple[str, ...]:
    """Where momentloc's code lives: the package, and every folder its models are found in."""
    return tuple(str(Path(p).resolve()) for p in (*momentloc.__path__, *momentloc.models.__path__))


def _caller_is_ours(ours: tuple[str, ...]) -> bool:
    frame = sys._getframe(2)
    return frame.f_code.co_filename.startswith(ours)


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """Host reads made by momentloc's code (method name and file:line)."""
    seen: list[str] = []
    ours = _our_folders()

    def spy(name: str, original):
        def wrapped(*args, **kwargs):
            if _caller_is_ours(ours):
                f = sys._getframe(1)
                seen.append(f"{name} at {Path(f.f_code.co_filename).name}:{f.f_lineno}")
            return original(*args, **kwargs)
        return wrapped

    for name in ("item", "tolist", "cpu", "__bool__", "__int__", "__float__", "nonzero"):
        monkeypatch.setattr(torch.Tensor, name, spy(name, getattr(torch.Tensor, name)))
    monkeypatch.setattr(torch, "unique", spy("torch.unique", torch.unique))
    return seen


@pytest.mark.parametrize("config", [c for c in ALL if c not in READS_IN_TRAINING])
def test_training_forward_and_loss_read_nothing_back(config: str, reads: list[str]) -> None:
    cfg = load_config(config_path(config))
    model_cls = get_model_class(cfg.model.name)
    torch.manual_seed(0)
    model = build_model(cfg, InputSpec(video_dim=cfg.data.feature_dim, text_dim=cfg.data.text.dim, vocab_size=50,
                                       num_clips=cfg.data.num_clips))
    objectives = WeightedObjectives(cfg, model)
    qpv = max(1, cfg.data.queries_per_video)
    batch = random_batch(8, cfg.data.num_clips or 40, cfg.data.feature_dim, 9, cfg.data.text.dim, 50,
                         supervision=model_cls.supervision, variable_length=cfg.data.num_clips is None,
                         queries_per_video=qpv)

    def forward_and_loss() -> torch.Tensor:
        out = model(batch)
        return objectives(out, batch, model.loss(out, batch)["total"])["total"]

    forward_and_loss().backward()  # a first step may check its inputs once
    reads.clear()
    total = forward_and_loss()
    assert reads == [], reads
    total.backward()


def test_the_watch_sees_a_read(reads: list[str]) -> None:
    """The check above can fail: a length counted on the device and read back is seen."""
    from momentloc.models.base import host_lengths

    mask = torch.ones(2, 3, dtype=torch.bool)
    assert host_lengths(mask, (3, 3)).tolist() == [3, 3] and reads == []
    host_lengths(mask)
    assert reads and reads[0].startswith("cpu at base.py")


@pytest.mark.parametrize("config", ALL)
def test_inference_reads_back_per_batch_not_per_query(config: str, reads: list[str]) -> None:
    """Forward + decode of many queries on one video reads the device as often as for two queries: the moments
    come back in a few whole-batch copies, never number by number (each read waits for a GPU)."""
    cfg = load_config(config_path(config))
    model_cls = get_model_class(cfg.model.name)
    torch.manual_seed(0)
    model = build_model(cfg, InputSpec(video_dim=cfg.data.feature_dim, text_dim=cfg.data.text.dim, vocab_size=50,
                                       num_clips=cfg.data.num_clips)).eval()
    counts = []
    for queries in (2, 9):
        batch = random_batch(queries, cfg.data.num_clips or 40, cfg.data.feature_dim, 9, cfg.data.text.dim, 50,
                             supervision=model_cls.supervision, queries_per_video=queries)
        with torch.no_grad():
            model.decode(model(batch), batch, 5)  # a first call may check its inputs once
            reads.clear()
            moments = model.decode(model(batch), batch, 5)
        assert len(moments) == queries and all(moments)
        counts.append(list(reads))
    assert len(counts[1]) == len(counts[0]), counts[1]
