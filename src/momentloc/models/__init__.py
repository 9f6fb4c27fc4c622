"""Grounding models; each file registers one method."""
