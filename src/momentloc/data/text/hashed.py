"""Text encoder ``hash``: a fixed pseudo-random unit vector per word (no files needed)."""

from __future__ import annotations

import hashlib
from typing import Iterable, Optional

import numpy as np

from momentloc.data.text.vocab import Vocabulary, sentence_words, vocabulary_from_vectors
from momentloc.registry import register_text_encoder


def hashed_vector(word: str, dim: int) -> np.ndarray:
    """A fixed pseudo-random unit vector per word (stable across runs and machines)."""
    seed = int.from_bytes(hashlib.sha256(word.encode("utf-8")).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def build_hashed(sentences: Iterable[str], dim: int, lowercase: bool = True) -> Vocabulary:
    """A vocabulary of every word in ``sentences`` with hashed vectors (no files needed)."""
    words = sorted(sentence_words(list(sentences), lowercase))
    return vocabulary_from_vectors(words, [hashed_vector(w, dim) for w in words], dim, "zero", lowercase)


@register_text_encoder("hash")
def hashed_vocabulary(sentences: list[str], path: Optional[str], dim: int, oov: str, lowercase: bool) -> Vocabulary:
    """``data.text.kind=hash``: hashed vectors of width ``dim`` (``path`` and ``oov`` unused: unknown words are zero)."""
    return build_hashed(sentences, dim, lowercase)
