"""The text layer: sentences -> word ids and word vectors, by a registered encoder named in ``data.text.kind``.

One module per encoder (``glove``, ``hash``, ``minilm``) registers a builder
``(sentences, path, dim, oov, lowercase) -> Vocabulary``; ``vocab`` holds the
tokeniser and the ``Vocabulary`` they all return. The names below are the
layer's public ones, importable from ``momentloc.data.text``.
"""

from __future__ import annotations

from typing import Optional

from momentloc.data.text.glove import load_glove_pickle, load_glove_txt, safe_unpickle, write_glove_pickle
from momentloc.data.text.hashed import build_hashed, hashed_vector
from momentloc.data.text.vocab import PAD, UNK, Vocabulary, tokenize
from momentloc.errors import DataError

__all__ = ["PAD", "UNK", "Vocabulary", "build_hashed", "build_vocabulary", "hashed_vector", "load_glove_pickle",
           "load_glove_txt", "safe_unpickle", "tokenize", "write_glove_pickle"]


def build_vocabulary(kind: str, path: Optional[str], sentences: list[str], dim: int, oov: str, lowercase: bool) -> Vocabulary:
    """The vocabulary a data config asks for, from the encoder registered as ``kind``."""
    from momentloc.registry import get_text_encoder

    try:
        encoder = get_text_encoder(kind)
    except KeyError as err:
        raise DataError(None, f"data.text.kind: {err.args[0]}") from None
    return encoder(sentences, path, dim, oov, lowercase)
