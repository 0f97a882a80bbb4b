"""Normalization layers (Keras's layers/normalization)."""
