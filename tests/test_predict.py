"""Predictor on raw videos and on features: a model trained on tiny-encoder features of colour videos."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

pytest.importorskip("av", reason="PyAV is the [video] extra")

from momentloc.data.features import FeatureStore  # noqa: E402
from momentloc.demo_video import colour_config, colour_durations  # noqa: E402
from momentloc.errors import CheckpointError, DataError  # noqa: E402
from momentloc.video import (  # noqa: E402
    TinyEncoder,
    attach_feature_spec,
    extract_features,
    list_videos,
    write_colour_dataset,
)


@pytest.fixture(scope="module")
def colours(tmp_path_factory) -> dict:
    """Colour videos -> tiny features at 2 fps -> one epoch of training: the checkpoint, its store and videos."""
    from momentloc.training import train

    base = tmp_path_factory.mktemp("colours")
    root = write_colour_dataset(base / "data", videos=10, seed=0)
    store = base / "features"
    res = extract_features(list_videos(root / "videos"), TinyEncoder(), 2.0, store, progress=False)
    assert not res.failed
    result = train(colour_config(root, base / "runs", store, hidden=32))
    return {"ckpt": result.checkpoint, "store": store, "videos": root / "videos", "durations": colour_durations(root), "root": root}


def test_raw_video_gives_the_same_moments_as_its_extracted_features(colours) -> None:
    from momentloc.predict import Predictor

    pred = Predictor.from_checkpoint(colours["ckpt"], device="cpu")
    assert pred.feature_spec is not None and pred.feature_spec.encoder == "tiny"
    video = colours["videos"] / "colours_000.mp4"
    queries = ["the screen turns red", "everything is blue for a while"]
    from_video = pred.localize(video, queries, top_k=3)
    feats = FeatureStore(colours["store"]).get("colours_000")
    from_feats = pred.localize(feats, queries, top_k=3, duration=colours["durations"]["colours_000"])
    assert len(from_video) == 2 and all(len(row) == 3 for row in from_video)
    for a, b in zip(from_video, from_feats):
        assert np.allclose([(m.start, m.end, m.score) for m in a], [(m.start, m.end, m.score) for m in b], atol=1e-5)
        assert all(0 <= m.start < m.end <= colours["durations"]["colours_000"] + 1e-6 for m in a)


def test_many_queries_encode_the_video_once(colours) -> None:
    from momentloc.predict import Predictor

    pred = Predictor.from_checkpoint(colours["ckpt"], device="cpu")
    video = colours["videos"] / "colours_001.mp4"
    pred.localize(video, ["red", "green", "a blue picture appears"])
    enc = pred.encode_video(video)
    pred.localize(enc, "the screen turns yellow")
    pred.localize(str(video), "purple")
    assert pred.videos_encoded == 1
    times, curve = pred.score_curve(enc, "red")
    assert times.shape == curve.shape == (200,) and np.isfinite(curve).all()


def test_features_of_the_wrong_dimension_are_refused(colours) -> None:
    from momentloc.predict import Predictor

    pred = Predictor.from_checkpoint(colours["ckpt"], device="cpu")
    with pytest.raises(DataError, match="dimension 16, but this checkpoint takes 32-dim features .*encoder 'tiny'"):
        pred.localize(np.zeros((10, 16), np.float32), "red", duration=5.0)


@pytest.mark.parametrize("encoder, message", [(TinyEncoder(dim=8), "dim 8"), (TinyEncoder(seed=1), "weights")])
def test_raw_video_with_another_encoder_is_refused(colours, encoder, message) -> None:
    from momentloc.predict import Predictor

    pred = Predictor.from_checkpoint(colours["ckpt"], device="cpu", encoder=encoder)
    with pytest.raises(CheckpointError, match=f"trained on features of encoder 'tiny' .*asked to use .*{message}"):
        pred.localize(colours["videos"] / "colours_002.mp4", "red")


def test_a_checkpoint_without_feature_spec_cannot_take_raw_video(colours) -> None:
    from momentloc.predict import Predictor

    base = Predictor.from_checkpoint(colours["ckpt"], device="cpu")
    bare = Predictor.from_model(base.model, base.vocab, base.cfg, feature_spec=None)
    with pytest.raises(CheckpointError, match="carries no feature spec"):
        bare.localize(colours["videos"] / "colours_002.mp4", "red")
    assert len(bare.localize(np.ones((8, 32), np.float32), "red", duration=4.0)[0]) == 5


def test_attached_spec_travels_with_the_checkpoint(colours, tmp_path) -> None:
    from momentloc.predict import Predictor

    ckpt = shutil.copy(colours["ckpt"], tmp_path / "model.ckpt")
    attach_feature_spec(ckpt, colours["store"])
    moved = tmp_path / "elsewhere"
    shutil.copytree(colours["store"], moved)
    (moved / "feature_spec.json").unlink()  # only the checkpoint's own copy of the spec is left
    pred = Predictor.from_checkpoint(ckpt, device="cpu")
    pred.cfg.data.features = str(moved)
    assert pred.feature_spec.encoder == "tiny"
    assert len(pred.localize(colours["videos"] / "colours_003.mp4", "red", top_k=2)[0]) == 2


def test_cli_predict_prints_moments_and_plots(colours, tmp_path) -> None:
    from typer.testing import CliRunner

    from momentloc.cli import app

    feats = tmp_path / "one.npy"
    np.save(feats, FeatureStore(colours["store"]).get("colours_004"))
    plot = tmp_path / "plot.png"
    args = ["predict", "--checkpoint", str(colours["ckpt"]), "--features", str(feats), "--duration",
            str(colours["durations"]["colours_004"]), "--query", "the screen turns red", "--top-k", "3", "--plot", str(plot)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "start (s)" in result.output and result.output.count("│ 3 │") == 1
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    video = CliRunner().invoke(app, ["predict", "--checkpoint", str(colours["ckpt"]), "--video",
                                     str(colours["videos"] / "colours_004.mp4"), "--query", "red", "--query", "green"])
    assert video.exit_code == 0 and video.output.count("score") == 2


def test_cli_predict_many_queries_from_a_file_to_json_lines(colours, tmp_path) -> None:
    from typer.testing import CliRunner

    from momentloc.cli import app

    feats = tmp_path / "one.npy"
    np.save(feats, FeatureStore(colours["store"]).get("colours_004"))
    queries = tmp_path / "queries.txt"
    queries.write_text("the screen turns red\n\n  green  \nblue\n", encoding="utf-8")
    out = tmp_path / "moments.jsonl"
    args = ["predict", "--checkpoint", str(colours["ckpt"]), "--features", str(feats), "--duration",
            str(colours["durations"]["colours_004"]), "--query", "red", "--queries-file", str(queries),
            "--out", str(out), "--top-k", "2", "--batch-size", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert re.search(r"^4 queries in [\d.]+ s \(\d+ queries/s", result.output, re.M), result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["query"] for r in rows] == ["red", "the screen turns red", "green", "blue"]
    duration = colours["durations"]["colours_004"]
    for r in rows:
        assert 1 <= len(r["moments"]) <= 2
        assert all(0 <= s <= e <= duration + 1e-3 for s, e, _ in r["moments"])
    # The same moments as one query at a time.
    from momentloc.predict import Predictor

    pred = Predictor.from_checkpoint(colours["ckpt"], device="cpu")
    enc = pred.encode_video(np.load(feats), duration=duration)
    alone = pred.localize(enc, "green", top_k=2)[0]
    assert rows[2]["moments"] == [[round(m.start, 3), round(m.end, 3), round(m.score, 6)] for m in alone]


def test_shipped_charades_video_through_the_whole_path(colours, need_file, tmp_path) -> None:
    """The real mp4: decoded at the checkpoint's 2 fps, encoded once for two queries, same as extracting it first."""
    from momentloc.demo_video import charades_truth, localize_video_file

    video = need_file("demo/charades_Y1HGC.mp4")
    queries = ["a person walks in a doorway drinking some coffee.", "person drinking a glass of water."]
    truth, water = charades_truth("Y1HGC", queries)
    assert truth == [(0.2, 9.8)] and water == [(1.7, 12.1)]
    from momentloc.predict import Predictor

    answer = localize_video_file(Predictor.from_checkpoint(colours["ckpt"], device="cpu"), video, queries, top_k=3, plot=tmp_path / "y1hgc.png", truth=truth)
    assert 30.0 < answer.duration < 31.5  # 460 frames at 29.97 fps
    assert [len(m) for m in answer.moments] == [3, 3]
    assert all(0 <= m.start < m.end <= answer.duration + 1e-6 for ms in answer.moments for m in ms)
    assert answer.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    store = tmp_path / "store"
    assert not extract_features([video], TinyEncoder(), 2.0, store, progress=False).failed
    feats = FeatureStore(store).get("charades_Y1HGC")
    assert feats.shape == (62, 32)  # one clip per 0.5 s over 30.7 s
    from_feats = Predictor.from_checkpoint(colours["ckpt"], device="cpu").localize(feats, queries, top_k=3, duration=answer.duration)
    for a, b in zip(answer.moments, from_feats):
        assert np.allclose([m.as_list() for m in a], [m.as_list() for m in b], atol=1e-5)


def test_demo_colour_grounder_learns_the_colours(tmp_path) -> None:
    """The demo's trained part: a span model on tiny-encoder features finds colour segments it never saw."""
    from momentloc.demo_video import localize_video_file, train_colour_grounder

    grounder = train_colour_grounder(tmp_path)
    assert grounder.metrics["R1@0.5"] >= 80.0, grounder.metrics
    root = grounder.videos.parent
    test = json.loads((root / "val_2.json").read_text())
    vid, entry = next(iter(test.items()))
    from momentloc.predict import Predictor

    pred = Predictor.from_checkpoint(grounder.checkpoint, device="cpu")
    answer = localize_video_file(pred, grounder.videos / f"{vid}.mp4", entry["sentences"][:1], top_k=1)
    (s, e), best = entry["timestamps"][0], answer.moments[0][0]
    inter = max(0.0, min(e, best.end) - max(s, best.start))
    assert inter / (max(e, best.end) - min(s, best.start)) >= 0.5, (entry, best)


def test_cli_map_of_a_model_without_one_is_a_one_line_error(colours, tmp_path) -> None:
    from typer.testing import CliRunner

    from momentloc.cli import app

    video = colours["videos"] / "colours_004.mp4"
    result = CliRunner().invoke(app, ["predict", "--checkpoint", str(colours["ckpt"]), "--video", str(video),
                                      "--query", "red", "--map", str(tmp_path / "m.png")])
    # main() prints a MomentlocError as one line; through CliRunner it is the result's exception
    assert result.exit_code != 0 and "model 'span' has no map to plot" in str(result.exception)
    assert not (tmp_path / "m.png").exists()
