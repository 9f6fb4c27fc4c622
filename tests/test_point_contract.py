"""Point supervision contract: point models see the glance and nothing else about time.

Batches of a point dataset carry ``point`` and no window; moving every
window while keeping its glance changes neither the batch nor the losses of
any registered point model (each built from its CI config), bit for bit.
"""

from dataclasses import replace

import pytest
import torch
from _models import ci_model, tiny_parts

from momentloc.data.dataset import GroundingDataset
from momentloc.models.point_layers import PointGroundingModel
from momentloc.registry import get_model_class, models_by_supervision

POINT_MODELS = models_by_supervision("point")
# Models built on the shared point encoder (the encoding-sharing test hooks its video projection).
ENCODER_MODELS = [n for n in POINT_MODELS if issubclass(get_model_class(n), PointGroundingModel)]


@pytest.fixture(scope="module")
def parts(tiny_synth):
    p = tiny_parts(tiny_synth)
    return p.pairs, p.store, p.vocab


def _moved(pairs):
    """Every window replaced by another one that still holds the glance (shorter on the left, longer on the right)."""
    out = []
    for p in pairs:
        s, e = p.window
        new = (p.point - 0.25 * (p.point - s), min(p.duration, e + 0.5 * (p.duration - e) + 0.1))
        assert new != (s, e) and new[0] <= p.point <= new[1]
        out.append(replace(p, windows=(new,)))
    return out


def _batch(pairs, store, vocab, n=8):
    ds = GroundingDataset(pairs, store, vocab, "point")
    return ds.collate([ds[i] for i in range(n)])


def test_every_point_model_is_checked():
    assert {"viga", "sg_sci"} <= set(POINT_MODELS)


def test_point_batches_carry_the_point_and_no_window(parts):
    pairs, store, vocab = parts
    ds = GroundingDataset(pairs, store, vocab, "point")
    assert all("window" not in ds[i] for i in range(4))
    b = ds.collate([ds[i] for i in range(8)])
    assert b.windows is None and b.point is not None and b.point.shape == (8,)
    for i in range(8):
        s, e = pairs[i].window
        assert s <= float(b.point[i]) <= e


def test_moving_windows_keeps_the_batch(parts):
    pairs, store, vocab = parts
    a, b = _batch(pairs, store, vocab), _batch(_moved(pairs), store, vocab)
    for field in ("video", "video_mask", "words", "word_mask", "word_ids", "duration", "point", "index"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert a.windows is None and b.windows is None


@pytest.mark.parametrize("name", POINT_MODELS)
@pytest.mark.parametrize("train_mode", [False, True])
def test_moving_windows_gives_bit_identical_losses(parts, name, train_mode):
    pairs, store, vocab = parts
    losses = []
    for ps in (pairs, _moved(pairs)):
        batch = _batch(ps, store, vocab)
        model = ci_model(name, vocab).train(train_mode)
        torch.manual_seed(1)  # the same dropout masks in training mode
        out = model(batch)
        losses.append({k: v.detach() for k, v in model.loss(out, batch).items()})
    assert losses[0].keys() == losses[1].keys()
    for k in losses[0]:
        assert torch.equal(losses[0][k], losses[1][k]), k


@pytest.mark.parametrize("name", POINT_MODELS)
def test_a_window_in_the_batch_is_never_read(parts, name):
    pairs, store, vocab = parts
    batch = _batch(pairs, store, vocab)
    model = ci_model(name, vocab).eval()
    with torch.no_grad():
        clean = model.loss(model(batch), batch)["total"]
        batch.windows = torch.rand(batch.size, 2) * 5.0
        dirty = model.loss(model(batch), batch)["total"]
    assert torch.equal(clean, dirty)


@pytest.mark.parametrize("name", POINT_MODELS)
def test_moving_the_glance_changes_the_loss(parts, name):
    # The converse: the loss does depend on the point (the test above is not vacuous).
    pairs, store, vocab = parts
    batch = _batch(pairs, store, vocab)
    model = ci_model(name, vocab).eval()
    with torch.no_grad():
        before = model.loss(model(batch), batch)["total"]
        batch.point = (batch.point + 0.3 * batch.duration) % batch.duration
        after = model.loss(model(batch), batch)["total"]
    assert not torch.equal(before, after)


@pytest.mark.parametrize("name", ENCODER_MODELS)
def test_queries_on_one_video_share_its_encoding(name, parts):
    """At inference the clips of a video are encoded once for all its queries, with the same outputs."""
    pairs, store, vocab = parts
    one_video = [p for p in pairs if p.video_id == pairs[0].video_id]
    assert len(one_video) >= 2
    batch = _batch(one_video, store, vocab, n=len(one_video))
    assert batch.video_group.unique().numel() == 1
    model = ci_model(name, vocab).eval()
    calls = []
    model.encoder.video_proj.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    with torch.no_grad():
        shared = model(batch)
        alone = model(replace(batch, video_group=torch.arange(batch.size), num_videos=batch.size))
    assert calls == [1, batch.size]  # one video encoded, then every row on its own
    torch.testing.assert_close(shared["clip_sim"], alone["clip_sim"], rtol=1e-5, atol=1e-6)
