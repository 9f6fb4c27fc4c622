"""Weak supervision contract: weak models learn from (video, sentence) pairs and nothing about time.

Batches of a weak dataset carry no window and no point; permuting every
pair's window changes neither the batches nor a few seeded training steps of
any registered weak model (each built from its CI config), bit for bit; and
the converse: which sentence goes with which video does change the losses.
"""

from dataclasses import fields, replace

import pytest
import torch
from _models import ci_model, tiny_parts
from torch.utils.data import DataLoader

from momentloc.data.dataset import GroundingDataset
from momentloc.registry import models_by_supervision
from momentloc.types import Batch

WEAK_MODELS = models_by_supervision("weak")
ITEM_KEYS = {"index", "video_id", "video", "word_ids", "duration"}


@pytest.fixture(scope="module")
def parts(tiny_synth):
    p = tiny_parts(tiny_synth)
    return p.pairs, p.store, p.vocab


def _permuted(pairs):
    """Every pair gets another pair's window (as the same fraction of its own video) and a point."""
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(pairs), generator=g).tolist()
    out = []
    for p, src in zip(pairs, order):
        s, e = pairs[src].window
        frac = (s / pairs[src].duration, e / pairs[src].duration)
        new = (round(frac[0] * p.duration, 2), round(frac[1] * p.duration, 2))
        out.append(replace(p, windows=(new,), point=(new[0] + new[1]) / 2))
    assert sum(a.windows != b.windows for a, b in zip(pairs, out)) > len(pairs) // 2
    return out


def _dataset(pairs, store, vocab) -> GroundingDataset:
    return GroundingDataset(pairs, store, vocab, "weak")


def _loader(ds: GroundingDataset, batch_size: int = 8) -> DataLoader:
    return DataLoader(ds, batch_size=batch_size, shuffle=True, collate_fn=ds.collate,
                      generator=torch.Generator().manual_seed(7))


def _train_losses(name, ds, vocab, steps: int = 3) -> list[dict[str, torch.Tensor]]:
    model = ci_model(name, vocab).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    torch.manual_seed(11)  # negatives and dropout draw from the global generator
    history = []
    for step, batch in zip(range(steps), _loader(ds)):
        losses = model.loss(model(batch), batch)
        opt.zero_grad()
        losses["total"].backward()
        opt.step()
        history.append({k: v.detach().clone() for k, v in losses.items()})
    return history


def test_every_weak_model_is_checked():
    assert {"vlanet", "fsan"} <= set(WEAK_MODELS)


def test_weak_items_and_batches_carry_no_time(parts):
    pairs, store, vocab = parts
    ds = _dataset(_permuted(pairs), store, vocab)  # pairs that do have a window and a point
    for i in range(6):
        assert set(ds[i]) <= ITEM_KEYS, set(ds[i]) - ITEM_KEYS
    batch = ds.collate([ds[i] for i in range(8)])
    assert batch.windows is None and batch.point is None and batch.extras == {}
    labels = {f.name for f in fields(Batch)} - {"windows", "point", "extras"}
    assert labels == {"video", "video_mask", "words", "word_mask", "word_ids", "duration", "video_group", "index",
                      "num_videos", "word_lengths", "video_lengths"}  # counts only: no time


def test_permuting_windows_keeps_every_batch(parts):
    pairs, store, vocab = parts
    a_ds, b_ds = _dataset(pairs, store, vocab), _dataset(_permuted(pairs), store, vocab)
    for a, b in zip(_loader(a_ds), _loader(b_ds)):
        for f in fields(Batch):
            va, vb = getattr(a, f.name), getattr(b, f.name)
            if isinstance(va, torch.Tensor):
                assert torch.equal(va, vb), f.name
            else:
                assert va == vb, f.name


@pytest.mark.parametrize("name", WEAK_MODELS)
def test_permuting_windows_gives_bit_identical_training(parts, name):
    pairs, store, vocab = parts
    clean = _train_losses(name, _dataset(pairs, store, vocab), vocab)
    shuffled = _train_losses(name, _dataset(_permuted(pairs), store, vocab), vocab)
    assert len(clean) == len(shuffled) == 3
    for a, b in zip(clean, shuffled):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k


@torch.no_grad()
def _seeded_loss(model, batch) -> torch.Tensor:
    """The total loss with the same random draws (negative sampling) every call."""
    torch.manual_seed(2)
    return model.loss(model(batch), batch)["total"]


@pytest.mark.parametrize("name", WEAK_MODELS)
def test_a_time_label_in_the_batch_is_never_read(parts, name):
    pairs, store, vocab = parts
    ds = _dataset(pairs, store, vocab)
    batch = ds.collate([ds[i] for i in range(8)])
    model = ci_model(name, vocab).eval()
    clean = _seeded_loss(model, batch)
    batch.windows = torch.rand(batch.size, 2) * batch.duration[:, None]
    batch.point = torch.rand(batch.size) * batch.duration
    assert torch.equal(clean, _seeded_loss(model, batch))


@pytest.mark.parametrize("name", WEAK_MODELS)
def test_swapping_sentences_between_videos_changes_the_loss(parts, name):
    # The converse: the pairing of sentences with videos is the signal (the tests above are not vacuous).
    pairs, store, vocab = parts
    ds = _dataset(pairs, store, vocab)
    batch = ds.collate([ds[i] for i in range(8)])
    model = ci_model(name, vocab).eval()
    before = _seeded_loss(model, batch)
    perm = torch.roll(torch.arange(batch.size), 3)
    batch.words, batch.word_mask, batch.word_ids = batch.words[perm], batch.word_mask[perm], batch.word_ids[perm]
    assert not torch.equal(before, _seeded_loss(model, batch))
