"""Plug-in training objectives (functions of the embeddings a model exposes)."""
