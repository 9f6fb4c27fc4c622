"""Sentences -> word ids and word vectors: GloVe (shipped pickles or glove.*.txt), MiniLM, hashed."""

from __future__ import annotations

import hashlib
import io
import pickle
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np

from momentloc.errors import DataError
from momentloc.files import atomic_write

PAD, UNK = "<pad>", "<unk>"
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")

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


def tokenize(sentence: str, lowercase: bool = True) -> list[str]:
    """Split a sentence into word tokens (punctuation dropped)."""
    if lowercase:
        sentence = sentence.lower()
    return _TOKEN.findall(sentence)


@dataclass
class Vocabulary:
    """Words with their vectors; id 0 is padding, id 1 the unknown word."""

    words: list[str]
    vectors: np.ndarray  # [V, E] float32, row 0 zeros, row 1 the OOV vector
    lowercase: bool = True

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.words)}

    @property
    def dim(self) -> int:
        """Width of a word vector."""
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, sentence: str, max_words: int) -> tuple[np.ndarray, list[str]]:
        """Word ids (1 = unknown) of the first ``max_words`` tokens, and the tokens."""
        tokens = tokenize(sentence, self.lowercase)[:max_words]
        ids = np.array([self.index.get(t, 1) for t in tokens], dtype=np.int64)
        return ids, tokens

    def to_payload(self) -> dict:
        """A plain dict (lists and one array) for embedding in a checkpoint."""
        import torch

        return {"words": list(self.words), "vectors": torch.from_numpy(self.vectors.copy()), "lowercase": self.lowercase}

    @classmethod
    def from_payload(cls, payload: dict) -> "Vocabulary":
        """Inverse of ``to_payload``."""
        vec = payload["vectors"]
        vec = vec.numpy() if hasattr(vec, "numpy") else np.asarray(vec)
        return cls(list(payload["words"]), vec.astype(np.float32), bool(payload.get("lowercase", True)))


def _finish(words: list[str], vecs: list[np.ndarray], dim: int, oov: str, lowercase: bool) -> Vocabulary:
    unk = np.zeros(dim, np.float32)
    if oov == "unk" and vecs:
        unk = np.mean(vecs, 0).astype(np.float32)
    mat = np.stack([np.zeros(dim, np.float32), unk] + [np.asarray(v, np.float32) for v in vecs]) if vecs else np.stack(
        [np.zeros(dim, np.float32), unk]
    )
    return Vocabulary([PAD, UNK] + words, mat.astype(np.float32), lowercase)


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
    return _finish(words, vecs, dim, oov, lowercase)


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
    return _finish(words, vecs, dim, oov, lowercase)


def hashed_vector(word: str, dim: int) -> np.ndarray:
    """A fixed pseudo-random unit vector per word (stable across runs and machines)."""
    seed = int.from_bytes(hashlib.sha256(word.encode("utf-8")).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def build_hashed(sentences: Iterable[str], dim: int, lowercase: bool = True) -> Vocabulary:
    """A vocabulary of every word in ``sentences`` with hashed vectors (no files needed)."""
    counts = Counter(t for s in sentences for t in tokenize(s, lowercase))
    words = sorted(counts)
    return _finish(words, [hashed_vector(w, dim) for w in words], dim, "zero", lowercase)


def write_glove_pickle(path: Union[str, Path], words: list[str], vectors: np.ndarray, counter: Counter) -> None:
    """Write a GloVe-style pickle in the shipped layout (``<PAD>`` = 0)."""
    w2id = {"<PAD>": 0}
    id2vec = [np.zeros(vectors.shape[1], np.float32)]
    for w, v in zip(words, vectors):
        w2id[w] = len(id2vec)
        id2vec.append(np.asarray(v, np.float32))
    with atomic_write(path) as fh:  # a kill never leaves a torn pickle
        pickle.dump({"w2id": w2id, "id2vec": id2vec, "counter": Counter(counter)}, fh)


def build_vocabulary(kind: str, path: Optional[str], sentences: list[str], dim: int, oov: str, lowercase: bool) -> Vocabulary:
    """The vocabulary a data config asks for, restricted to words that occur where that helps."""
    if kind == "hash":
        return build_hashed(sentences, dim, lowercase)
    if kind == "glove":
        if not path:
            raise DataError(None, "data.text.path: a GloVe pickle or glove.*.txt is required for text.kind=glove")
        if str(path).endswith(".txt"):
            keep = {t for s in sentences for t in tokenize(s, lowercase)}
            return load_glove_txt(path, keep=keep, oov=oov, lowercase=lowercase)
        return load_glove_pickle(path, oov=oov, lowercase=lowercase)
    if kind == "minilm":
        from momentloc.data.minilm import minilm_vocabulary

        return minilm_vocabulary(sentences, lowercase=lowercase, path=path)
    raise DataError(None, f"data.text.kind: unknown text encoder {kind!r}")
