"""Preprocessing layers (Keras's layers/preprocessing)."""
