"""Reshaping layers (Keras's layers/reshaping)."""
