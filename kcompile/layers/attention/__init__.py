"""Attention layers (Keras's layers/attention)."""
