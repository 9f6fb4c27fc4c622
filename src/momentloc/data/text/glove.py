"""Text encoder ``glove``: GloVe vectors from a shipped-style pickle (restricted unpickler) or a glove.*.txt."""

from __future__ import annotations

import io
import pickle
from collections import Counter
from pathlib import Path
from typing import Optional, Union

import numpy as np

from momentloc.data.text.vocab import PAD, UNK, Vocabulary, sentence_words, vocabulary_from_vectors
from momentloc.errors import DataError
from momentloc.files import atomic_write
from momentloc.registry import register_text_encoder

# Exactly what the shipped GloVe pickles reference: a pickle is code, so
# anything else (os.system, builtins.eval, ...) is refused.
_ALLOWED_GLOBALS = {
    ("collections", "Counter"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D102 - pickle hook
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refused to load global {module}.{name}")
        return super().find_class(module, name)


def safe_unpickle(path: Union[str, Path]):
    """Unpickle a file admitting only numpy arrays, dicts, lists and Counter."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as err:
        raise DataError(path, f"unsafe or invalid pickle: {err}") from None
    except Exception as err:  # truncated or garbage bytes
        raise DataError(path, f"cannot read pickle: {type(err).__name__}: {err}") from None


def load_glove_pickle(path: Union[str, Path], oov: str = "zero", lowercase: bool = True) -> Vocabulary:
    """Load a GloVe subset pickle (``w2id``, ``id2vec``) through the restricted unpickler."""
    obj = safe_unpickle(path)
    if not isinstance(obj, dict) or "w2id" not in obj or "id2vec" not in obj:
        raise DataError(path, "expected a dict with keys 'w2id' and 'id2vec'")
    w2id, id2vec = obj["w2id"], obj["id2vec"]
    words, vecs = [], []
    for word, idx in sorted(w2id.items(), key=lambda kv: kv[1]):
        if word in ("<PAD>", PAD, UNK):
            continue
        words.append(word)
        vecs.append(np.asarray(id2vec[idx], np.float32))
    dim = int(np.asarray(id2vec[0]).shape[-1])
    return vocabulary_from_vectors(words, vecs, dim, oov, lowercase)


def load_glove_txt(
    path: Union[str, Path], keep: Optional[set[str]] = None, oov: str = "zero", lowercase: bool = True
) -> Vocabulary:
    """Load a standard ``glove.*.txt`` (word then floats per line), keeping only ``keep`` words if given."""
    path = Path(path)
    words, vecs, dim = [], [], None
    try:
        fh = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    with fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.rstrip("\n").split(" ")
            if len(parts) < 3:
                continue
            word = parts[0]
            if keep is not None and word not in keep:
                continue
            try:
                vec = np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                raise DataError(path, "expected a word followed by numbers", where=f"line {lineno}") from None
            if dim is None:
                dim = vec.shape[0]
            elif vec.shape[0] != dim:
                raise DataError(path, f"expected {dim} numbers, got {vec.shape[0]}", where=f"line {lineno}")
            words.append(word)
            vecs.append(vec)
    if dim is None:
        raise DataError(path, "no word vectors found")
    return vocabulary_from_vectors(words, vecs, dim, oov, lowercase)


def write_glove_pickle(path: Union[str, Path], words: list[str], vectors: np.ndarray, counter: Counter) -> None:
    """Write a GloVe-style pickle in the shipped layout (``<PAD>`` = 0)."""
    w2id = {"<PAD>": 0}
    id2vec = [np.zeros(vectors.shape[1], np.float32)]
    for w, v in zip(words, vectors):
        w2id[w] = len(id2vec)
        id2vec.append(np.asarray(v, np.float32))
    with atomic_write(path) as fh:  # a kill never leaves a torn pickle
        pickle.dump({"w2id": w2id, "id2vec": id2vec, "counter": Counter(counter)}, fh)


@register_text_encoder("glove")
def glove_vocabulary(sentences: list[str], path: Optional[str], dim: int, oov: str, lowercase: bool) -> Vocabulary:
    """``data.text.kind=glove``: the pickle at ``path``, or the words of ``sentences`` from a ``glove.*.txt``."""
    if not path:
        raise DataError(None, "data.text.path: a GloVe pickle or glove.*.txt is required for text.kind=glove")
    if str(path).endswith(".txt"):
        return load_glove_txt(path, keep=sentence_words(sentences, lowercase), oov=oov, lowercase=lowercase)
    return load_glove_pickle(path, oov=oov, lowercase=lowercase)
