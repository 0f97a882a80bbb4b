"""Merging layers (Keras's layers/merging)."""
