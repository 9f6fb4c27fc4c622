"""The simulated Charades-STA: class parsing, rendering by the knobs, the store, and the benchmark's four checks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from clirun import assert_one_line_error, run_cli

from momentloc.data.charades_timeline import ActionClass, VideoTimeline, parse_class_name, singular
from momentloc.data.simulate import (
    SimSpec,
    World,
    num_clips,
    phase_weights,
    render,
    simulate_charades,
    slice_ids,
    spec_from,
    videos_to_render,
)

KNOWN = {"cup", "glass", "shoe", "shoes", "dish", "hand", "clothes", "cloth", "clothe", "towel", "door"}
OFF = SimSpec(dim=16, latent_dim=4, rate=2.0, phases=0, actor=0, scene=0, drift=0, objects=0, jitter=0, faint=0,
              nuisance=0, noise=0, smoothing=0, class_part=0, min_gain=1.0)


@pytest.mark.parametrize("name, expected", [
    ("Holding a cup/glass/bottle of something", ("holding", "cup")),
    ("Someone is sneezing", ("sneezing", None)),
    ("Someone is cooking something", ("cooking", None)),
    ("Turning off a light", ("turning off", "light")),
    ("Turning on a light", ("turning on", "light")),
    ("Putting on shoe/shoes", ("putting on", "shoe")),
    ("Putting shoes somewhere", ("putting", "shoe")),
    ("Washing their hands", ("washing", "hand")),
    ("Holding some clothes", ("holding", "clothes")),
    ("Wash a dish/dishes", ("washing", "dish")),
    ("Grasping onto a doorknob", ("grasping", "doorknob")),
    ("Watching/Reading/Looking at a book", ("watching", "book")),
    ("Someone is going from standing to sitting", ("going", None)),
])
def test_class_names_parse_into_verb_and_object(name: str, expected: tuple) -> None:
    assert parse_class_name(name, KNOWN) == expected


def test_singular_only_for_known_objects() -> None:
    assert singular("shoes", KNOWN) == "shoe"
    assert singular("dishes", KNOWN) == "dish"
    assert singular("glass", KNOWN) == "glass"
    assert singular("clothes", KNOWN) == "clothes"


def _one_video(actions, length: float = 10.0, objects=()) -> VideoTimeline:
    return VideoTimeline("VID01", "ACTOR", "Kitchen", tuple(objects), length, tuple(actions))


CLASSES = [ActionClass("c000", "Opening a door", "opening", "door"), ActionClass("c001", "Closing a door", "closing", "door"),
           ActionClass("c002", "Opening a cup", "opening", "cup"), ActionClass("c003", "Someone is sneezing", "sneezing", None)]


def test_with_every_property_off_a_clip_is_exactly_its_action() -> None:
    world = World(OFF, CLASSES)
    feats = render(world, _one_video([("c000", 8.0, 12.0)], length=20.0), KNOWN)
    assert feats.shape == (num_clips(20.0, OFF.rate), OFF.dim) == (40, 16)
    t = (np.arange(40) + 0.5) / OFF.rate
    outside = (t < 4.0) | (t > 16.0)
    np.testing.assert_allclose(feats[outside], 0.0, atol=1e-4)  # nothing happens: no background, no noise
    middle = int(10.0 * OFF.rate)
    expected = world.templates("c000")[1]  # the same look at every phase when phases are off
    np.testing.assert_allclose(feats[middle], expected, atol=5e-3)  # the soft edges leave < 0.3 % off at the middle


def test_phases_make_start_middle_and_end_differ() -> None:
    on = World(replace(OFF, phases=1.0), CLASSES).templates("c000")
    off = World(OFF, CLASSES).templates("c000")
    assert np.abs(on[0] - on[2]).max() > 0.1
    np.testing.assert_allclose(off[0], off[2])
    w = phase_weights(np.array([0.0, 0.5, 1.0]))
    assert w.argmax(1).tolist() == [0, 1, 2]
    np.testing.assert_allclose(w.sum(1), 1.0)


def test_shared_verb_or_object_looks_more_alike_than_neither() -> None:
    world = World(replace(OFF, dim=512, latent_dim=32, class_part=0.5), CLASSES)
    look = {c.cid: world.templates(c.cid)[1] for c in CLASSES}

    def cos(a: str, b: str) -> float:
        return float(look[a] @ look[b] / np.linalg.norm(look[a]) / np.linalg.norm(look[b]))

    # opening a door vs closing a door (object shared), vs opening a cup (verb shared), vs sneezing (neither)
    assert min(cos("c000", "c001"), cos("c000", "c002")) > cos("c000", "c003") + 0.1


def test_actions_at_once_mix_nonlinearly() -> None:
    world = World(OFF, CLASSES)
    a = render(world, _one_video([("c000", 2.0, 8.0)]), KNOWN)
    b = render(world, _one_video([("c003", 2.0, 8.0)]), KNOWN)
    both = render(world, _one_video([("c000", 2.0, 8.0), ("c003", 2.0, 8.0)]), KNOWN)
    mid = 10
    assert np.abs(both[mid] - (a[mid] + b[mid])).max() > 0.05
    assert np.abs(both[mid]).max() <= 1.0  # saturating, never a sum past the range of one action


def test_each_property_has_an_off_switch() -> None:
    video = _one_video([("c000", 2.0, 6.0)], objects=("door", "towel"))
    base = render(World(OFF, CLASSES), video, KNOWN)
    for knob in ("actor", "scene", "drift", "objects", "jitter", "nuisance", "noise"):
        changed = render(World(replace(OFF, **{knob: 0.5}), CLASSES), video, KNOWN)
        assert np.abs(changed - base).max() > 1e-3, knob


def test_same_seed_same_features_other_seed_other_world() -> None:
    spec = replace(OFF, noise=1.0, nuisance=1.0, jitter=1.0, seed=3)
    video = _one_video([("c000", 2.0, 6.0), ("c002", 4.0, 9.0)])
    a = render(World(spec, CLASSES), video, KNOWN)
    np.testing.assert_array_equal(a, render(World(spec, CLASSES), video, KNOWN))
    assert not np.allclose(a, render(World(replace(spec, seed=4), CLASSES), video, KNOWN))


def test_knobs_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown simulation knob"):
        spec_from({"bogus": 1})
    with pytest.raises(ValueError, match="dim"):
        spec_from({"dim": 0})
    with pytest.raises(ValueError, match="integer"):
        spec_from({"dim": 2.5})
    assert spec_from({"dim": 64, "phases": 0}).phases == 0.0


def test_slices_are_stable_and_nested() -> None:
    ids = [f"V{i:03d}" for i in range(50)]
    small, big = slice_ids(ids, 5), slice_ids(ids, 20)
    assert set(small) <= set(big) and len(small) == 5 and small == slice_ids(reversed(ids), 5)


# ---- on the shipped Charades files: the store and the benchmark's four checks, on a slice ----

SLICE = 120  # train videos (and 30 test videos)


@pytest.fixture(scope="module")
def sim_slice(need_file, tmp_path_factory) -> tuple[Path, SimSpec]:
    root = need_file("charades_sta/Charades_v1_classes.txt").parent
    spec = SimSpec(dim=256, max_videos=SLICE)
    out = simulate_charades(root, tmp_path_factory.mktemp("charades_sim"), spec)
    return out, spec


def test_the_classes_of_charades_all_parse(need_file) -> None:
    from momentloc.data.simulate import read_source

    src = read_source(need_file("charades_sta/Charades_v1_classes.txt").parent)
    assert len(src.classes) == 157
    assert len({c.verb for c in src.classes}) >= 30 and len({c.obj for c in src.classes}) >= 30
    assert sum(c.obj is None for c in src.classes) <= 12


def test_store_ids_and_lengths_match_the_csv(sim_slice, need_file) -> None:
    import json

    from momentloc.data.charades_timeline import charades_csvs, read_timelines
    from momentloc.data.features import FeatureStore

    out, spec = sim_slice
    root = need_file("charades_sta/Charades_v1_classes.txt").parent
    timelines = read_timelines(charades_csvs(root))
    store = FeatureStore(out / "features.hdf5", dim=spec.dim)
    assert sorted(store.keys()) == videos_to_render(root, spec)
    for vid in store.keys():
        assert store.get(vid).shape == (num_clips(timelines[vid].length, spec.rate), spec.dim)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["spec"]["max_videos"] == SLICE and len(meta["fingerprint"]) == 16
    assert (out / "classes.tsv").read_text().count("\n") == 158


def _slice_pairs(root: Path, ids: set[str], split: str) -> list:
    from momentloc.data.formats import load_pairs

    return [p for p in load_pairs("charades_sta", split, root=root) if p.video_id in ids]


def _r1(pairs, moments, key: str = "R1@0.5") -> float:
    from momentloc.metrics import evaluate_moments

    return evaluate_moments(pairs, moments, breakdowns=False)[key]


def test_oracle_solves_the_benchmark_and_the_sentence_matters(sim_slice, need_file) -> None:
    from momentloc.data.features import FeatureStore
    from momentloc.data.sim_baselines import oracle_predictions, salient_predictions
    from momentloc.data.simulate import read_source
    from momentloc.models.prior import fit_prior_moments

    out, spec = sim_slice
    root = need_file("charades_sta/Charades_v1_classes.txt").parent
    store = FeatureStore(out / "features.hdf5")
    ids = set(store.keys())
    test, train = _slice_pairs(root, ids, "test"), _slice_pairs(root, ids, "train")
    src = read_source(root)
    oracle = _r1(test, oracle_predictions(test, store, World(spec, src.classes), src.timelines))
    prior = _r1(test, fit_prior_moments(train, test, k=5))
    salient = _r1(test, salient_predictions(test, store))
    assert oracle >= 85.0, oracle
    assert salient <= prior + 5.0, (salient, prior)


def test_prior_scores_exactly_what_it_scores_on_the_real_annotations(sim_slice, need_file, tmp_path) -> None:
    from momentloc.config import load_config
    from momentloc.data.sources import split_pairs
    from momentloc.eval_run import evaluate_checkpoint
    from momentloc.models.prior import fit_prior_moments
    from momentloc.training import train

    out, spec = sim_slice
    configs = Path(__file__).resolve().parents[1] / "configs" / "experiment"
    sets = [f"data.features={out / 'features.hdf5'}", f"data.feature_dim={spec.dim}", f"data.simulate.dim={spec.dim}",
            f"data.simulate.max_videos={SLICE}", f"train.out_dir={tmp_path}", "train.progress=false"]
    cfg = load_config(configs / "prior_charades_sim.yaml", sets)
    result = train(cfg)
    metrics, _, pairs = evaluate_checkpoint(result.checkpoint, "test", [f"train.out_dir={tmp_path}"], breakdowns=False)
    # the same prior fitted on the real annotations of the same videos, no features read
    direct = fit_prior_moments(split_pairs(cfg.data, "train", cfg.train.seed), pairs, k=5)
    for key in ("R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5", "mIoU"):
        # hit rates exactly; mIoU up to the float32 rounding of the decoded seconds
        assert metrics[key] == pytest.approx(_r1(pairs, direct, key), abs=1e-9 if key != "mIoU" else 1e-4), key


@pytest.mark.parametrize("args, needle", [
    (["--knob", "bogus=1"], "unknown simulation knob(s) ['bogus']"),
    (["--knob", "phases"], "expected name=value"),
    (["--knob", "phases=lots"], "is not a number"),
    (["--dim", "0"], "dim: expected a positive number"),
])
def test_simulate_command_refuses_bad_knobs_in_one_line(capsys, tmp_path: Path, args: list, needle: str) -> None:
    res = run_cli(capsys, ["data", "simulate", "charades", "--out", tmp_path / "sim", *args])
    assert_one_line_error(res, needle)
    assert not (tmp_path / "sim").exists()


def test_simulate_command_writes_a_slice(capsys, need_file, tmp_path: Path) -> None:
    root = need_file("charades_sta/Charades_v1_classes.txt").parent
    res = run_cli(capsys, ["data", "simulate", "charades", "--out", tmp_path, "--dim", "8", "--max-videos", "8",
                           "--knob", "phases=0", "--root", root])
    assert res.code == 0, res.err
    assert (tmp_path / "features.hdf5").is_file() and (tmp_path / "classes.tsv").is_file()
    assert '"phases": 0.0' in (tmp_path / "meta.json").read_text()
