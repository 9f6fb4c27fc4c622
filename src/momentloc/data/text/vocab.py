"""Sentences -> word ids: the tokeniser and the vocabulary (words with their vectors) every text encoder returns."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

PAD, UNK = "<pad>", "<unk>"
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")


def tokenize(sentence: str, lowercase: bool = True) -> list[str]:
    """Split a sentence into word tokens (punctuation dropped)."""
    if lowercase:
        sentence = sentence.lower()
    return _TOKEN.findall(sentence)


def sentence_words(sentences: list[str], lowercase: bool = True) -> set[str]:
    """Every distinct token of ``sentences``."""
    return {t for s in sentences for t in tokenize(s, lowercase)}


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


def vocabulary_from_vectors(words: list[str], vecs: list[np.ndarray], dim: int, oov: str, lowercase: bool) -> Vocabulary:
    """``words`` with their vectors behind the padding row and the unknown-word row (the mean vector for
    ``oov="unk"``, else zeros)."""
    unk = np.zeros(dim, np.float32)
    if oov == "unk" and vecs:
        unk = np.mean(vecs, 0).astype(np.float32)
    mat = np.stack([np.zeros(dim, np.float32), unk] + [np.asarray(v, np.float32) for v in vecs]) if vecs else np.stack(
        [np.zeros(dim, np.float32), unk]
    )
    return Vocabulary([PAD, UNK] + words, mat.astype(np.float32), lowercase)
