"""The synthetic benchmark's generator: layout of the windows, the long-video option, regeneration."""

from __future__ import annotations

import json

import pytest

from momentloc.data.synthetic import (
    SIZES,
    SynthSpec,
    ensure_synthetic,
    generate,
    spec_for,
    spec_record,
)


def _windows(root, split="train"):
    ann = json.loads((root / f"{split}.json").read_text())
    return [(v["duration"], tuple(w)) for v in ann.values() for w in v["timestamps"]]


def test_default_moments_are_a_fraction_of_the_video(tmp_path) -> None:
    root = generate(tmp_path, SynthSpec(train_videos=30, val_videos=2, test_videos=2, feature_dim=8, text_dim=8))
    fractions = []
    for duration, (s, e) in _windows(root):
        assert 0 <= s < e <= duration + 1e-6
        fractions.append((e - s) / duration)
    # 8-40 % each, scaled down together when a video's windows would fill more than 85 % of it
    assert max(fractions) <= 0.4 + 1e-3 and 0.1 < sum(fractions) / len(fractions) < 0.3


def test_long_videos_have_short_moments_in_seconds(tmp_path) -> None:
    spec = SynthSpec(train_videos=6, val_videos=1, test_videos=1, feature_dim=8, text_dim=8, min_duration=2000.0,
                     max_duration=2500.0, min_events=4, max_events=8, moment_seconds=(4.0, 240.0))
    root = generate(tmp_path, spec)
    lengths = [e - s for _, (s, e) in _windows(root)]
    assert all(4.0 - 0.02 <= n <= 240.0 + 0.02 for n in lengths), lengths
    assert min(lengths) < 40 and max(lengths) > 40  # log-uniform: both short and longer moments occur
    assert SIZES["long"].moment_seconds == (4.0, 240.0) and SIZES["long"].min_duration >= 2000


def test_meta_leaves_unset_options_out_and_is_reused(tmp_path) -> None:
    record = spec_record(spec_for("ci"))
    assert "moment_seconds" not in record and record["train_videos"] == 400
    assert spec_record(spec_for("long"))["moment_seconds"] == [4.0, 240.0]
    small = SynthSpec(train_videos=3, val_videos=1, test_videos=1, feature_dim=8, text_dim=8)
    root = generate(tmp_path / "s", small)
    assert json.loads((root / "meta.json").read_text())["spec"] == spec_record(small)


def test_unknown_size_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown synthetic size 'huge'"):
        ensure_synthetic(tmp_path, "huge")
