"""The built wheel carries the configs, and an installed copy finds, lists and validates them outside the repo."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import tiny_overrides

from momentloc.config_files import configs_root

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> str:
    """Run a command without threads to spare and without the checkout on the path; its stdout, or fail with both streams."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built (offline, no build isolation) from a copy of the project's sources."""
    src = tmp_path_factory.mktemp("project")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)], src)
    (whl,) = out.glob("momentloc-*.whl")
    return whl


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The bin folder of a fresh venv outside the repo with the wheel installed (dependencies from this interpreter)."""
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], venv)
    python = venv / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], venv).strip())
    # Dependencies (and pip) come from this interpreter's site-packages; its editable momentloc does not,
    # as a path in a .pth file is added without processing the .pth files inside it.
    (purelib / "_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], venv)
    return venv / "bin"


def test_wheel_holds_every_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"momentloc/configs/{p.relative_to(configs_root()).as_posix()}" for p in configs_root().rglob("*.yaml")}
    assert shipped and shipped <= names
    assert {"momentloc/configs/experiment/span_synthetic_ci.yaml", "momentloc/configs/data/synthetic_ci.yaml"} <= names


def test_installed_package_resolves_and_validates_a_shipped_config(installed, tmp_path):
    code = ("import momentloc; from pathlib import Path; from momentloc.config import load_config; "
            "from momentloc.config_files import resolve_config; "
            "cfg = load_config(resolve_config(Path('tan2d_sscs_charades_sta'))); "
            "print(momentloc.__file__); print(cfg.name, cfg.model.name, cfg.data.dataset, cfg.objectives[0].name)")
    where, what = _run([str(installed / "python"), "-c", code], tmp_path).split("\n")[:2]
    assert Path(where).is_relative_to(installed.parent), where  # the installed copy, not the checkout
    assert what == "tan2d_sscs_charades_sta tan2d charades_sta sscs"


def test_installed_cli_lists_shipped_configs_from_outside_the_repo(installed, tmp_path):
    listing = _run([str(installed / "momentloc"), "list"], tmp_path)
    section = listing.split("experiment configs", 1)[1].split()
    assert {"span_synthetic_ci", "tan2d_charades_sta", "vlanet_didemo"} <= set(section)
    assert "Usage: momentloc demo" in _run([str(installed / "momentloc"), "demo", "--help"], tmp_path)


def test_installed_cli_trains_a_shipped_config_by_name(installed, tiny_synth, tmp_path):
    sets = [*tiny_overrides(tiny_synth, tmp_path / "runs"), "train.epochs=1", "train.batch_size=16"]
    out = _run([str(installed / "momentloc"), "train", "span_synthetic_ci", *(f"--set={s}" for s in sets)], tmp_path)
    assert "span_synthetic_ci: validation" in out
    assert (tmp_path / "runs" / "span_synthetic_ci" / "checkpoints" / "last.ckpt").is_file()
