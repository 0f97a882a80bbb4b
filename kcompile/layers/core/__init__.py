"""Core layers (Keras's layers/core)."""
