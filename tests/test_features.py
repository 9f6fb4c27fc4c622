"""Feature stores (npy folder, npz, hdf5), conversion, resampling and their errors."""

import numpy as np
import pytest

from momentloc.data.features import FeatureStore, convert_store, resample, write_store
from momentloc.errors import DataError


def _items():
    rng = np.random.default_rng(0)
    return [("a", rng.standard_normal((5, 3)).astype(np.float32)), ("b", rng.standard_normal((9, 3)).astype(np.float32))]


@pytest.mark.parametrize("name", ["feats", "feats.npz", "feats.hdf5"])
def test_round_trip_and_convert(tmp_path, name):
    items = dict(_items())
    write_store(tmp_path / name, items.items())
    store = FeatureStore(tmp_path / name, dim=3)
    assert sorted(store.keys()) == ["a", "b"]
    np.testing.assert_array_equal(store.get("b"), items["b"])
    for other in ("x_dir", "x.npz", "x.h5"):
        n = convert_store(tmp_path / name, tmp_path / other)
        assert n == 2
        np.testing.assert_array_equal(FeatureStore(tmp_path / other).get("a"), items["a"])


def test_missing_ids_are_counted_and_named(tmp_path):
    write_store(tmp_path / "f.npz", _items())
    store = FeatureStore(tmp_path / "f.npz")
    with pytest.raises(DataError, match=r"7 video\(s\) missing .*: m0, m1, m2, m3, m4 and 2 more"):
        store.check_ids(["a"] + [f"m{i}" for i in range(7)])


@pytest.mark.parametrize(
    "arr,msg",
    [
        (np.zeros((0, 3)), "zero-length"),
        (np.zeros((4, 5)), "dimension 3"),
        (np.array([[0.0, np.nan, 1.0]]), "NaN"),
        (np.array([[0.0, np.inf, 1.0]]), "NaN or infinite"),
    ],
)
def test_bad_features(tmp_path, arr, msg):
    write_store(tmp_path / "f.npz", [("v", arr.astype(np.float32))])
    with pytest.raises(DataError, match=msg) as err:
        FeatureStore(tmp_path / "f.npz", dim=3).get("v")
    assert "key v" in str(err.value)


def test_resample_mean_pools_down_and_interpolates_up():
    x = np.arange(8, dtype=np.float32)[:, None]
    np.testing.assert_allclose(resample(x, 4)[:, 0], [0.5, 2.5, 4.5, 6.5])
    np.testing.assert_allclose(resample(x, 8), x)
    up = resample(np.array([[0.0], [4.0]], np.float32), 4)[:, 0]
    # centres of 4 output clips map to input positions -0.25, 0.25, 0.75, 1.25 (clamped)
    np.testing.assert_allclose(up, [0.0, 1.0, 3.0, 4.0])


def test_unknown_store_type(tmp_path):
    p = tmp_path / "f.csv"
    p.write_text("x")
    with pytest.raises(DataError, match="unknown feature store type"):
        FeatureStore(p)
