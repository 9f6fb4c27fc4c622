"""Where the shipped data is looked for when MOMENTLOC_DATA is not set."""

from pathlib import Path

from momentloc import paths


def test_the_checkout_default_is_beside_the_project(monkeypatch):
    monkeypatch.delenv("MOMENTLOC_DATA", raising=False)
    root = paths.project_root()
    assert root is not None and (root / "pyproject.toml").is_file()
    assert paths.data_root() == (root.parent / "shared" / "data").resolve()


def test_an_installed_package_looks_beside_the_working_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("MOMENTLOC_DATA", raising=False)
    monkeypatch.setattr(paths, "project_root", lambda: None)
    monkeypatch.chdir(tmp_path)
    assert paths.data_root() == (tmp_path.parent / "shared" / "data").resolve()


def test_the_variable_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("MOMENTLOC_DATA", str(tmp_path))
    assert paths.data_root() == Path(tmp_path).resolve()
