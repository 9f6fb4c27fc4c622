"""The shipped configs live inside the package and resolve by name from any folder."""

from pathlib import Path

import pytest

import momentloc
from momentloc.config import load_config, validate
from momentloc.config_files import configs_root, experiment_config, experiment_names, experiments_dir, resolve_config
from momentloc.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_configs_are_package_data():
    root = configs_root()
    assert root == Path(momentloc.__file__).parent / "configs"
    assert {p.name for p in root.iterdir() if p.is_dir()} >= {"data", "model", "experiment"}


def test_repo_configs_link_is_the_package_folder():
    # every documented path configs/experiment/<name>.yaml keeps working from a checkout
    assert (ROOT / "configs").resolve() == configs_root().resolve()
    assert (ROOT / "configs" / "experiment" / "span_synthetic_ci.yaml").is_file()


def test_experiment_names_are_the_yaml_files():
    names = experiment_names()
    assert names == sorted(p.stem for p in experiments_dir().glob("*.yaml"))
    assert {"span_synthetic_ci", "tan2d_charades_sta", "sg_sci_tacos"} <= set(names)


def test_experiment_config_by_name_with_or_without_suffix():
    path = experiment_config("span_synthetic_ci")
    assert path == experiments_dir() / "span_synthetic_ci.yaml"
    assert experiment_config("span_synthetic_ci.yaml") == path
    assert load_config(path).name == "span_synthetic_ci"


@pytest.mark.parametrize("name", ["no_such_config", "../data/synthetic_ci", ""])
def test_unknown_experiment_config_is_an_error(name):
    with pytest.raises(ConfigError, match="no shipped experiment config"):
        experiment_config(name)


def test_resolve_config_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_config(Path("tan2d_charades_sta")) == experiments_dir() / "tan2d_charades_sta.yaml"
    assert resolve_config(Path("tan2d_charades_sta.yaml")) == experiments_dir() / "tan2d_charades_sta.yaml"
    # a file of that name in the working folder wins over the shipped one
    own = tmp_path / "tan2d_charades_sta.yaml"
    own.write_text("model: {name: span}\n")
    assert resolve_config(Path("tan2d_charades_sta.yaml")) == Path("tan2d_charades_sta.yaml")
    # a path with a folder, or an unknown name, is left as given (loading it names the missing file)
    assert resolve_config(Path("elsewhere/span_synthetic_ci.yaml")) == Path("elsewhere/span_synthetic_ci.yaml")
    assert resolve_config(Path("nothing_like_it")) == Path("nothing_like_it")


def test_simulated_charades_configs_layer_the_shipped_ones(tmp_path):
    from momentloc.sim_scale import sim_config

    cpu = load_config(sim_config("tan2d", "cpu", 64, 2, tmp_path))  # the CI model on the simulated data
    assert (cpu.data.dataset, cpu.data.feature_dim, cpu.data.simulate["dim"]) == ("charades_sim", 64, 64)
    assert (cpu.model.params["map_size"], cpu.model.params["hidden_size"], cpu.train.epochs) == (16, 64, 2)
    paper = load_config(sim_config("snag", "paper", 64, None, tmp_path))  # the paper's model, through its layer
    assert (paper.model.name, paper.model.params["hidden_dim"], paper.model.params["text_layers"]) == ("snag", 256, 5)
    with pytest.raises(ConfigError, match="no shipped experiment config"):
        sim_config("no_such_method", "paper", 64, None, tmp_path)


def test_the_simulated_dataset_without_knobs_takes_the_default_world():
    raw = {"data": {"dataset": "charades_sim", "feature_dim": 256}, "model": {"name": "prior"}}
    cfg = validate(raw)
    assert cfg.data.simulate == {"dim": 256}
    assert validate({**raw, "data": {"dataset": "charades_sta", "feature_dim": 256}}).data.simulate is None
