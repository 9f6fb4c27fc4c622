"""Smoke test of the performance suite: tiny shapes, every measurement kind, the JSON keys and the tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import benchlib as bl  # noqa: E402
import suite  # noqa: E402


def _tiny() -> bl.Options:
    return bl.Options(quick=True, warmup=1, repeats=2, budget_s=2.0, point_limit_s=10.0, clips=16, pairs=2,
                      queries=6, query_batch=4, scaling_clips=(16, 32), threads=1, mem_bound_gb=2.0)


@pytest.fixture(scope="module")
def result() -> dict:
    """The suite's JSON for span and prior, each measurement in its own process."""
    names, failed = suite.discover(["span", "prior"])
    assert names == ["prior", "span"] and not failed
    out = suite.run(names, failed, _tiny(), log=lambda *a: None)
    return json.loads(json.dumps(out))  # it must survive the JSON round trip


def test_every_measurement_has_positive_numbers(result: dict) -> None:
    assert {"machine", "settings", "models"} <= result.keys()
    assert result["machine"]["torch"] and result["machine"]["cores"] >= 1
    for name in ("span", "prior"):
        row = result["models"][name]
        assert row["status"] == "ok", row
        assert row["params"] > 0
        assert row["batch"]["pairs"] == 2 and row["batch"]["clips"] == 16 and row["batch"]["scaled"]
        for kind in ("train", "infer", "throughput"):
            assert "error" not in row[kind], (name, kind, row[kind])
            assert row[kind]["ms"] > 0 and row[kind]["peak_mb"] >= 0
        assert row["throughput"]["qps"] > 0 and row["throughput"]["queries"] == 6 and row["throughput"]["one_query_ms"] > 0
        assert [p["clips"] for p in row["scaling"]] == [16, 32]
        for point in row["scaling"]:
            assert point["ms"] > 0 and point["peak_mb"] >= 0, point


def test_markdown_has_both_tables(result: dict) -> None:
    text = suite.markdown(result)
    assert "| span |" in text and "| prior |" in text
    assert "train step" in text and "| 16 | 32 |" in text


def test_config_choice_prefers_the_charades_paper_config() -> None:
    path, note = bl.find_config("tan2d")
    assert path is not None and path.name == "tan2d_charades_sta.yaml" and note == path.name
    path, note = bl.find_config("snag", "tacos")
    assert path is not None and path.name == "snag_tacos.yaml"


def test_quadratic_model_is_stopped_before_it_runs() -> None:
    path, _ = bl.find_config("tan2d")
    cfg = bl.load(path, "tan2d")
    over, note = bl.scaled_overrides("tan2d", cfg, 65536)
    assert note == "N=4096"
    assert bl.quadratic_estimate_gb("tan2d", bl.load(path, "tan2d", over)) > 100


def test_bf16_autocast_runs_in_process() -> None:
    opts = _tiny()
    opts.bf16, opts.isolate = True, False
    path, _ = bl.find_config("span")
    cfg = bl.load(path, "span")
    res = bl.infer("span", cfg, bl.shape_for(cfg, opts), opts)
    assert res["ms"] > 0


def test_a_model_module_that_fails_to_import_is_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    from momentloc import registry

    found = registry.MODELS.modules()
    monkeypatch.setattr(registry.MODELS, "modules", lambda: found + ["momentloc.models.not_a_model"])
    names, failed = suite.discover(None)
    assert "span" in names and "not_a_model" in failed
    out = suite.run([], {"not_a_model": failed["not_a_model"]}, _tiny(), log=lambda *a: None)
    assert out["models"]["not_a_model"]["status"].startswith("import failed: ModuleNotFoundError")
    assert "| not_a_model | import failed" in suite.markdown(out)


def test_trainer_steps_are_timed_against_the_bare_step(tiny_synth, tmp_path) -> None:
    import math

    import trainer_steps

    dims = ["data.feature_dim=16", "data.text.dim=24"]  # the tiny benchmark's
    trainer = trainer_steps.trainer_ms("span", tiny_synth, "cpu", steps=3, skip=1, out=tmp_path, extra=dims)
    bare = trainer_steps.bare_ms("span", tiny_synth, "cpu", extra=dims)
    assert math.isfinite(trainer) and trainer > 0 and bare > 0


def test_op_counts_do_not_grow_with_the_queries_of_one_video() -> None:
    """snag (no RNN) dispatches the same operations for 1 and 5 queries: no per-query loop anywhere."""
    import op_counts

    row = op_counts.measure("snag", 5, train_pairs=2)
    assert row["forward_1"] == row["forward_5"] > 100
    assert row["decode_1"] == row["decode_5"] > 10
    assert row["train_step"] > row["forward_1"]
    assert "| snag |" in op_counts.markdown({"snag": row}, 5)


def test_the_op_counter_leaves_views_out() -> None:
    import op_counts

    x = torch.randn(3, 4)
    counted = op_counts.count(lambda: (x.view(4, 3).t() * 2).sum())
    assert dict(counted.ops) == {"mul": 1, "sum": 1}


def test_the_sim_table_and_plot_average_over_seeds(tmp_path) -> None:
    import sim_results

    def row(name: str, seed: int, r05: float) -> dict:
        return {"config": name, "seed": seed, "train_seconds": 10.0, **{c: r05 for c in sim_results.COLUMNS}}

    rows = [row("tan2d", 1, 70.0), row("tan2d", 0, 74.0), row("tan2d_sscs_control", 0, 60.0)]
    table = sim_results.sim_table(rows)
    assert "| 2D-TAN | 0,1 | 72.0 ± 2.0 |" in table and "| 50.62 |" in table
    assert "control: Sscs" in table and "SnAG" not in table
    out = tmp_path / "sim.png"
    sim_results.sim_plot(rows, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("row", sorted(__import__("sim_results").ROWS))
def test_every_sim_row_builds_its_model_and_objectives(row, tmp_path) -> None:
    """A row's config at CPU scale plus its overrides validates; a misspelt override key fails here."""
    import sim_results

    from momentloc.config import load_config
    from momentloc.models.base import InputSpec
    from momentloc.models.build import WeightedObjectives, build_model
    from momentloc.sim_scale import sim_config

    stem, sets, _ = sim_results.ROWS[row]
    cfg = load_config(sim_config(stem, "cpu", 32, 1, tmp_path), sets)
    # As momentloc.training.input_spec builds it, with a stand-in vocabulary.
    spec = InputSpec(video_dim=cfg.data.feature_dim, text_dim=300, vocab_size=50, num_clips=cfg.data.num_clips)
    model = build_model(cfg, spec)
    assert len(WeightedObjectives(cfg, model).items) == len(cfg.objectives)
